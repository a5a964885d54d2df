//! Plain HTTP on the client port, beside gRPC and the JSON gateway:
//! `/health`, `/livez`, `/readyz`, `/version` and `/metrics`, the answers
//! Go's muxes give for unknown paths, and etcd's default CORS headers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::Uri;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{Context, ETCD_CLUSTER_VERSION, ETCD_VERSION};
use crate::metrics;
use crate::proto::etcdserverpb::AlarmType;

/// How long `/health` waits for a quorum-confirmed read.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The plain-text content type Go's net/http uses.
const TEXT: &str = "text/plain; charset=utf-8";

/// `/health` and `/metrics`: what `--listen-metrics-urls` serves too.
pub fn monitoring_routes(context: Arc<Context>) -> Router {
    let health_context = context.clone();
    Router::new()
        .route(
            "/health",
            get(move |query| health(health_context.clone(), query)).fallback(method_not_allowed),
        )
        .route("/metrics", get(move || serve_metrics(context.clone())))
}

/// Every plain HTTP endpoint of the client port.
pub fn routes(router: Router, context: Arc<Context>) -> Router {
    let (live, ready) = (context.clone(), context.clone());
    router
        .merge(monitoring_routes(context))
        .route("/livez", get(move |query| livez(live.clone(), query)))
        .route("/readyz", get(move |query| readyz(ready.clone(), query)))
        .route("/version", get(version).fallback(method_not_allowed))
        .fallback(not_found)
}

/// `?serializable=true`, `?exclude=NOSPACE` (repeatable), `?verbose`.
#[derive(Default)]
struct Params {
    serializable: bool,
    exclude: HashSet<String>,
    verbose: bool,
}

impl Params {
    fn parse(uri: &Uri) -> Params {
        let mut params = Params::default();
        let query = uri.query().unwrap_or("").as_bytes();
        for (name, value) in url::form_urlencoded::parse(query) {
            match name.as_ref() {
                "serializable" => params.serializable = value == "true",
                "exclude" => {
                    params.exclude.insert(value.into_owned());
                }
                "verbose" => params.verbose = true,
                _ => {}
            }
        }
        params
    }
}

/// etcd's health check: no alarm (but the excluded ones), a leader, and
/// unless serializable, a linearizable read within a second.
async fn health(context: Arc<Context>, uri: Uri) -> Response {
    let params = Params::parse(&uri);
    let alarms = active_alarms(&context).await;
    // As etcd: no leader is unhealthy at once, before any read.
    let healthy = context.replica.has_leader()
        && alarms.iter().all(|alarm| params.exclude.contains(alarm))
        && (params.serializable || linearizable_read(&context).await.is_ok());
    if healthy {
        metrics::HEALTH_SUCCESS.inc();
        ([(header::CONTENT_TYPE, TEXT)], r#"{"health":"true"}"#).into_response()
    } else {
        metrics::HEALTH_FAILURES.inc();
        go_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    }
}

async fn linearizable_read(context: &Context) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_TIMEOUT, context.replica.linearize()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(crate::api::EtcdError::Timeout.message().to_string()),
    }
}

/// The names of the alarms raised in the cluster, as this member applied
/// them (etcd reads its local alarm store, without a round trip).
async fn active_alarms(context: &Arc<Context>) -> Vec<String> {
    context
        .applier
        .read()
        .alarms()
        .list()
        .iter()
        .filter_map(|alarm| AlarmType::try_from(alarm.alarm).ok())
        .map(|alarm| alarm.as_str_name().to_string())
        .collect()
}

/// One named check of `/livez` or `/readyz` and why it failed.
type Check = (&'static str, Result<(), String>);

/// etcd 3.5's `/livez`: the member's state can be read locally.
async fn livez(context: Arc<Context>, uri: Uri) -> Response {
    let checks = vec![("serializable_read", serializable_read(&context))];
    checks_response("livez", checks, &Params::parse(&uri))
}

/// etcd 3.5's `/readyz`: no data corruption alarm, local reads work, and a
/// linearizable read goes through the leader.
async fn readyz(context: Arc<Context>, uri: Uri) -> Response {
    let params = Params::parse(&uri);
    let mut checks: Vec<Check> = Vec::new();
    let corrupt = active_alarms(&context).await.iter().any(|a| a == "CORRUPT");
    checks.push((
        "data_corruption",
        if corrupt {
            Err("alarm activated: CORRUPT".into())
        } else {
            Ok(())
        },
    ));
    checks.push(("serializable_read", serializable_read(&context)));
    let linearizable = if params.exclude.contains("linearizable_read") {
        Ok(())
    } else if context.replica.has_leader() {
        linearizable_read(&context).await
    } else {
        Err(crate::api::EtcdError::NoLeader.message().to_string())
    };
    checks.push(("linearizable_read", linearizable));
    checks_response("readyz", checks, &params)
}

fn serializable_read(context: &Context) -> Result<(), String> {
    let applier = context.applier.read();
    applier
        .store()
        .get_at(b"health", applier.store().revision())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `ok`, or each check with `[+]`/`[-]` and `<name> check failed`, as
/// etcd's (Kubernetes-style) probes print them.
fn checks_response(name: &str, checks: Vec<Check>, params: &Params) -> Response {
    let checks: Vec<Check> = checks
        .into_iter()
        .filter(|(check, _)| !params.exclude.contains(*check))
        .collect();
    let failed = checks.iter().any(|(_, result)| result.is_err());
    let mut text = String::new();
    if failed || params.verbose {
        for (check, result) in &checks {
            match result {
                Ok(()) => text.push_str(&format!("[+]{check} ok\n")),
                Err(why) => text.push_str(&format!("[-]{check} failed: {why}\n")),
            }
        }
    }
    if failed {
        text.push_str(&format!("{name} check failed"));
        go_error(StatusCode::SERVICE_UNAVAILABLE, &text)
    } else {
        text.push_str("ok");
        ([(header::CONTENT_TYPE, TEXT)], text).into_response()
    }
}

/// Sets the series that read the current state, then renders them all.
async fn serve_metrics(context: Arc<Context>) -> Response {
    sample(&context);
    let (content_type, text) = metrics::render();
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

fn sample(context: &Context) {
    let replica = &context.replica;
    let member_id = replica.member_id();
    {
        let raft = replica.raft().metrics();
        let raft = raft.borrow();
        metrics::IS_LEADER.set((raft.current_leader == Some(member_id)) as i64);
        metrics::IS_LEARNER.set(!crate::raft::counts_as_voter(raft.membership_config.membership(), member_id) as i64);
        metrics::PROPOSALS_APPLIED.set(raft.last_applied.map_or(0, |id| id.index) as i64);
    }
    metrics::HAS_LEADER.set(replica.has_leader() as i64);
    let size = context.backend.size_on_disk() as i64;
    metrics::DB_TOTAL_SIZE.set(size);
    let applier = context.applier.read();
    let store = applier.store();
    // As the Status RPC: the live key-value data (see `maintenance`).
    metrics::DB_SIZE_IN_USE.set(store.size_in_use() as i64);
    if context.quota_backend_bytes != u64::MAX {
        metrics::QUOTA_BACKEND_BYTES.set(context.quota_backend_bytes as i64);
    }
    metrics::CURRENT_REVISION.set(store.revision());
    metrics::COMPACT_REVISION.set(store.compact_revision());
    metrics::KEYS.set(store.key_count() as i64);
}

async fn version() -> impl IntoResponse {
    let body = format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}"}}"#);
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// Go's `http.Error`: the text with a newline, as plain text not to sniff.
pub(super) fn go_error(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, TEXT),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    let mut response = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

/// Unknown paths: a gRPC client gets `Unimplemented` as from grpc-go; the
/// gateway's prefixes answer as grpc-gateway does, the rest as net/http.
async fn not_found(request: Request) -> Response {
    if is_grpc(&request) {
        let service = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let status = tonic::Status::unimplemented(format!("unknown service {service}"));
        let (parts, ()) = status.into_http::<()>().into_parts();
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    if super::gateway::is_gateway_path(request.uri().path()) {
        go_error(StatusCode::NOT_FOUND, "Not Found")
    } else {
        go_error(StatusCode::NOT_FOUND, "404 page not found")
    }
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// etcd's default `--cors=*` on its HTTP endpoints: every answer allows any
/// origin, and a preflight `OPTIONS` is answered with just that.
pub async fn cors(request: Request, next: Next) -> Response {
    if is_grpc(&request) {
        return next.run(request).await;
    }
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
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
