//! etcd's v2 members API, served on the client port with `--enable-v2` (what
//! `ETCDCTL_API=2 etcdctl member ...` and `cluster-health` use): `/v2/members`
//! (list, add, remove, update peer URLs), `/v2/members/leader` and
//! `/v2/machines`, with etcd 3.4's status codes, headers and JSON. Changes run
//! through `Replica::reconfigure`, as the v3 Cluster service's do. The rest of
//! v2 (keys, stats, auth) is not served: those paths answer 404 as unknown ones.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::cluster::{members as cluster_members, peer_urls};
use super::go_json::{self, quote};
use super::http::go_error;
use super::Context;
use crate::proto::etcdserverpb::Member;
use crate::raft::{MembershipChange, ReconfigError};

const MEMBERS: &str = "/v2/members";
/// A member change is a few hundred bytes; larger bodies are refused.
const MAX_BODY_BYTES: usize = 1 << 20;
const JSON: &str = "application/json";

/// The v2 routes, added to the client port's router.
pub fn routes(router: Router, context: Arc<Context>) -> Router {
    let (list, machines_context) = (context.clone(), context);
    let handler = any(move |request: Request| members(list.clone(), request));
    router
        .route(MEMBERS, handler.clone())
        .route("/v2/members/", handler.clone())
        .route("/v2/members/{*rest}", handler)
        .route(
            "/v2/machines",
            any(move |request: Request| machines(machines_context.clone(), request)),
        )
}

/// etcd's membersHandler: the method, then the cluster ID header on every answer.
async fn members(context: Arc<Context>, request: Request) -> Response {
    let method = request.method().clone();
    if ![Method::GET, Method::POST, Method::DELETE, Method::PUT].contains(&method) {
        return method_not_allowed("GET,POST,DELETE,PUT");
    }
    // As etcd's trimPrefix: what follows `/v2/members`, without one leading `/`.
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix(MEMBERS).unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let mut response = match method {
        Method::GET => match rest {
            "" => json(StatusCode::OK, &list_json(&cluster_members(&context))),
            "leader" => leader(&context),
            _ => v2_error(StatusCode::NOT_FOUND, "Not found"),
        },
        Method::POST => add(&context, request).await,
        // etcd's getID: a hex member ID after `/v2/members/`.
        _ => match member_id(rest) {
            Some(id) if method == Method::DELETE => remove(&context, id).await,
            Some(id) => update(&context, id, request).await,
            None if rest.is_empty() => go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            None => v2_error(StatusCode::NOT_FOUND, &format!("No such member: {rest}")),
        },
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{:x}", context.cluster_id)) {
        response.headers_mut().insert("x-etcd-cluster-id", value);
    }
    response
}

/// `/v2/members/leader`: the leader, or 503 while there is none.
fn leader(context: &Context) -> Response {
    let leader = context.replica.leader().filter(|_| context.replica.has_leader());
    match cluster_members(context).iter().find(|m| Some(m.id) == leader) {
        Some(member) => json(StatusCode::OK, &member_json(member)),
        None => v2_error(StatusCode::SERVICE_UNAVAILABLE, "During election"),
    }
}

async fn add(context: &Context, request: Request) -> Response {
    let peer_urls = match read_peer_urls(request).await {
        Ok(urls) => urls,
        Err(response) => return response,
    };
    let change = MembershipChange::Add {
        peer_urls: peer_urls.clone(),
        learner: false,
    };
    match context.replica.reconfigure(change).await {
        Ok(done) => {
            let member = Member {
                id: done.id,
                peer_ur_ls: peer_urls,
                ..Default::default()
            };
            json(StatusCode::CREATED, &member_json(&member))
        }
        Err(e) => change_error(e, "adding a member"),
    }
}

async fn remove(context: &Context, id: u64) -> Response {
    match context.replica.reconfigure(MembershipChange::Remove { id }).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(ReconfigError::MemberNotFound) if is_removed(context, id) => {
            v2_error(StatusCode::GONE, &format!("Member permanently removed: {id:x}"))
        }
        Err(ReconfigError::MemberNotFound) => no_such_member(id),
        Err(e) => change_error(e, &format!("removing member {id:x}")),
    }
}

async fn update(context: &Context, id: u64, request: Request) -> Response {
    let peer_urls = match read_peer_urls(request).await {
        Ok(urls) => urls,
        Err(response) => return response,
    };
    match context
        .replica
        .reconfigure(MembershipChange::Update { id, peer_urls })
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        // etcd has no answer of its own for a removed member here: a 500.
        Err(ReconfigError::MemberNotFound) if !is_removed(context, id) => no_such_member(id),
        Err(e) => change_error(e, &format!("updating member {id:x}")),
    }
}

fn is_removed(context: &Context, id: u64) -> bool {
    context.applier.read().members().is_removed(id)
}

fn no_such_member(id: u64) -> Response {
    v2_error(StatusCode::NOT_FOUND, &format!("No such member: {id:x}"))
}

/// etcd's answers to a refused change: a conflict for a taken peer URL or ID,
/// a bare 500 for the rest (unhealthy cluster, no quorum, timeouts), logged.
fn change_error(e: ReconfigError, doing: &str) -> Response {
    match e {
        ReconfigError::PeerUrlExists => v2_error(StatusCode::CONFLICT, "membership: peerURL exists"),
        ReconfigError::MemberExists => v2_error(StatusCode::CONFLICT, "membership: ID exists"),
        e => {
            tracing::warn!(error = %e, "v2 members API: error {doing}");
            v2_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Go's `strconv.ParseUint(s, 16, 64)`: hex digits only, no sign or prefix.
fn member_id(text: &str) -> Option<u64> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// etcd's unmarshalRequest: a JSON body (415 otherwise) of `{"peerURLs": [...]}` whose URLs
/// pass etcd's checks (400 with Go's or etcd's text otherwise).
async fn read_peer_urls(request: Request) -> Result<Vec<String>, Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    // As etcd: only a type with parameters is lower-cased and trimmed.
    let content_type = match content_type.split_once(';') {
        Some((media_type, _)) => media_type.to_lowercase().trim().to_string(),
        None => content_type,
    };
    if content_type != JSON {
        let message = format!("Bad Content-Type {content_type}, accept application/json");
        return Err(v2_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message));
    }
    let body: Bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| v2_error(StatusCode::BAD_REQUEST, "http: request body too large"))?;
    go_json::peer_urls(&body)
        .and_then(|urls| peer_urls(&urls))
        .map_err(|message| v2_error(StatusCode::BAD_REQUEST, &message))
}

/// `/v2/machines`: every member's client URLs, sorted, as plain text.
async fn machines(context: Arc<Context>, request: Request) -> Response {
    if ![Method::GET, Method::HEAD].contains(request.method()) {
        return method_not_allowed("GET,HEAD");
    }
    let mut urls: Vec<String> = cluster_members(&context)
        .into_iter()
        .flat_map(|member| member.client_ur_ls)
        .collect();
    urls.sort();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], urls.join(", ")).into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// etcd's httptypes.Member: hex ID, name, and both URL lists (empty, never null).
fn member_json(member: &Member) -> String {
    let list = |urls: &[String]| urls.iter().map(|url| quote(url)).collect::<Vec<_>>().join(",");
    format!(
        r#"{{"id":"{:x}","name":{},"peerURLs":[{}],"clientURLs":[{}]}}"#,
        member.id,
        quote(&member.name),
        list(&member.peer_ur_ls),
        list(&member.client_ur_ls)
    )
}

fn list_json(members: &[Member]) -> String {
    let members: Vec<String> = members.iter().map(member_json).collect();
    format!(r#"{{"members":[{}]}}"#, members.join(","))
}

/// A JSON answer as Go's json.Encoder writes it: with a final newline.
fn json(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], format!("{body}\n")).into_response()
}

/// etcd's httptypes.HTTPError: `{"message":...}`, without a newline.
fn v2_error(status: StatusCode, message: &str) -> Response {
    let body = format!(r#"{{"message":{}}}"#, quote(message));
    (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_written_as_etcd_writes_them() {
        let member = Member {
            id: 0x628170c800dbcee,
            name: "m1".into(),
            peer_ur_ls: vec!["http://127.0.0.1:32380".into()],
            client_ur_ls: vec![],
            is_learner: false,
        };
        assert_eq!(
            list_json(&[member]),
            r#"{"members":[{"id":"628170c800dbcee","name":"m1","peerURLs":["http://127.0.0.1:32380"],"clientURLs":[]}]}"#
        );
    }

    #[test]
    fn member_ids_parse_as_go_parses_hex() {
        assert_eq!(member_id("00ABC"), Some(0xabc));
        for bad in ["", "+12", "0x12", "zz", "1/2", "ffffffffffffffffff"] {
            assert_eq!(member_id(bad), None, "{bad}");
        }
    }
}
