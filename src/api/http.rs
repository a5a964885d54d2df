//! Plain HTTP on the client port, beside gRPC: `/health` and `/version`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::{Context, ETCD_CLUSTER_VERSION, ETCD_VERSION};

/// How long `/health` waits for a quorum-confirmed read.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

pub fn routes(router: Router, context: Arc<Context>) -> Router {
    router
        .route("/health", get(move || health(context.clone())))
        .route("/version", get(version))
}

/// Healthy when a leader is known and a linearizable read goes through, as
/// etcd's check does with its quorum read.
async fn health(context: Arc<Context>) -> impl IntoResponse {
    let healthy = context.replica.leader().is_some()
        && tokio::time::timeout(HEALTH_TIMEOUT, context.replica.linearize())
            .await
            .is_ok_and(|r| r.is_ok());
    let (status, body) = if healthy {
        (StatusCode::OK, r#"{"health":"true"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    };
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

async fn version() -> impl IntoResponse {
    let body = format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}"}}"#);
    ([(header::CONTENT_TYPE, "application/json")], body)
}
