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

/// Reports a request over the gRPC size limit as etcd (grpc-go) does:
/// `ResourceExhausted` and grpc-go's text, where tonic says `OutOfRange`.
pub async fn oversized_as_grpc_go(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let tonic_text = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .filter(|m| m.starts_with("Error,%20decoded%20message%20length%20too%20large"))
        .map(str::to_string);
    if let (Some(text), Some("11")) = (tonic_text, headers.get("grpc-status").and_then(|s| s.to_str().ok())) {
        let numbers: Vec<&str> = text
            .split("%20")
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty())
            .collect();
        if let [found, limit] = numbers[..] {
            let message = format!("grpc:%20received%20message%20larger%20than%20max%20({found}%20vs.%20{limit})");
            headers.insert("grpc-status", header::HeaderValue::from_static("8"));
            if let Ok(value) = header::HeaderValue::from_str(&message) {
                headers.insert("grpc-message", value);
            }
        }
    }
    response
}
