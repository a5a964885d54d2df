//! etcd's JSON gateway on the client port: `POST /v3/<service>/<method>`
//! (and the `/v3beta` aliases etcd 3.4 keeps). As in etcd, the gateway is a
//! gRPC client of this member's own gRPC services, called in-process through
//! the same routes (and so the same limits, interceptors and metrics) that
//! network clients use: every RPC has exactly one implementation. The
//! `Authorization` header travels as the `token` metadata etcd reads.

mod json;

use std::future::Future;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Router;
use futures::future::BoxFuture;
use futures::stream;
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status, Streaming};

use json::JsonReader;

use crate::proto::etcdserverpb::auth_client::AuthClient;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::*;
use crate::proto::v3electionpb::election_client::ElectionClient;
use crate::proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use crate::proto::v3lockpb::lock_client::LockClient;
use crate::proto::v3lockpb::{LockRequest, UnlockRequest};

/// The client port's gRPC routes, which the gateway calls in-process (boxed:
/// with the router's own future type the compiler cannot prove the
/// streaming calls' futures `Send`).
pub type Grpc = tower::util::BoxCloneSyncService<
    axum::http::Request<tonic::body::Body>,
    axum::http::Response<Body>,
    std::convert::Infallible,
>;

/// Path prefixes etcd 3.4 serves the gateway under.
const PREFIXES: [&str; 2] = ["/v3", "/v3beta"];

/// A unary RPC: `unary!(grpc, Client, method, Request)`.
macro_rules! unary {
    ($grpc:expr, $client:ident, $method:ident, $request:ty) => {{
        let grpc = $grpc.clone();
        post(move |headers: HeaderMap, body: Body| {
            let client = $client::new(grpc.clone()).max_decoding_message_size(usize::MAX);
            unary::<$request, _, _>(headers, body, move |request| async move {
                let mut client = client;
                client.$method(request).await
            })
        })
    }};
}

/// A server-streaming RPC.
macro_rules! server_stream {
    ($grpc:expr, $client:ident, $method:ident, $request:ty) => {{
        let grpc = $grpc.clone();
        post(move |headers: HeaderMap, body: Body| {
            let client = $client::new(grpc.clone()).max_decoding_message_size(usize::MAX);
            server_stream::<$request, _, _>(headers, body, move |request| async move {
                let mut client = client;
                client.$method(request).await
            })
        })
    }};
}

/// A bidirectional stream, called through `$call(grpc, request)`;
/// `$keep_open` keeps the request side open after the body ends (etcd's
/// watch streams outlive the client's half-close).
macro_rules! bidi {
    ($grpc:expr, $call:ident, $request:ty, $keep_open:expr) => {{
        let grpc = $grpc.clone();
        post(move |headers: HeaderMap, body: Body| {
            let grpc = grpc.clone();
            bidi::<$request, _>(headers, body, $keep_open, move |request| $call(grpc, request).boxed())
        })
    }};
}

async fn watch(grpc: Grpc, request: tonic::Request<Requests<WatchRequest>>) -> BidiResult<WatchResponse> {
    WatchClient::new(grpc)
        .max_decoding_message_size(usize::MAX)
        .watch(request)
        .await
}

async fn keep_alive(
    grpc: Grpc,
    request: tonic::Request<Requests<LeaseKeepAliveRequest>>,
) -> BidiResult<LeaseKeepAliveResponse> {
    LeaseClient::new(grpc).lease_keep_alive(request).await
}

/// The gateway's routes, each calling the gRPC method etcd maps it to on
/// the `grpc` routes.
pub fn routes(grpc: Router) -> Router {
    let grpc: Grpc = tower::util::BoxCloneSyncService::new(grpc);
    let endpoints: Vec<(&str, MethodRouter)> = vec![
        ("/kv/range", unary!(grpc, KvClient, range, RangeRequest)),
        ("/kv/put", unary!(grpc, KvClient, put, PutRequest)),
        (
            "/kv/deleterange",
            unary!(grpc, KvClient, delete_range, DeleteRangeRequest),
        ),
        ("/kv/txn", unary!(grpc, KvClient, txn, TxnRequest)),
        ("/kv/compaction", unary!(grpc, KvClient, compact, CompactionRequest)),
        ("/watch", bidi!(grpc, watch, WatchRequest, true)),
        (
            "/lease/grant",
            unary!(grpc, LeaseClient, lease_grant, LeaseGrantRequest),
        ),
        (
            "/lease/revoke",
            unary!(grpc, LeaseClient, lease_revoke, LeaseRevokeRequest),
        ),
        (
            "/kv/lease/revoke",
            unary!(grpc, LeaseClient, lease_revoke, LeaseRevokeRequest),
        ),
        (
            "/lease/keepalive",
            bidi!(grpc, keep_alive, LeaseKeepAliveRequest, false),
        ),
        (
            "/lease/timetolive",
            unary!(grpc, LeaseClient, lease_time_to_live, LeaseTimeToLiveRequest),
        ),
        (
            "/kv/lease/timetolive",
            unary!(grpc, LeaseClient, lease_time_to_live, LeaseTimeToLiveRequest),
        ),
        (
            "/lease/leases",
            unary!(grpc, LeaseClient, lease_leases, LeaseLeasesRequest),
        ),
        (
            "/kv/lease/leases",
            unary!(grpc, LeaseClient, lease_leases, LeaseLeasesRequest),
        ),
        (
            "/cluster/member/add",
            unary!(grpc, ClusterClient, member_add, MemberAddRequest),
        ),
        (
            "/cluster/member/remove",
            unary!(grpc, ClusterClient, member_remove, MemberRemoveRequest),
        ),
        (
            "/cluster/member/update",
            unary!(grpc, ClusterClient, member_update, MemberUpdateRequest),
        ),
        (
            "/cluster/member/list",
            unary!(grpc, ClusterClient, member_list, MemberListRequest),
        ),
        (
            "/cluster/member/promote",
            unary!(grpc, ClusterClient, member_promote, MemberPromoteRequest),
        ),
        (
            "/maintenance/alarm",
            unary!(grpc, MaintenanceClient, alarm, AlarmRequest),
        ),
        (
            "/maintenance/status",
            unary!(grpc, MaintenanceClient, status, StatusRequest),
        ),
        (
            "/maintenance/defragment",
            unary!(grpc, MaintenanceClient, defragment, DefragmentRequest),
        ),
        // etcd 3.4 maps HashKV to the same path as Hash; Hash wins.
        ("/maintenance/hash", unary!(grpc, MaintenanceClient, hash, HashRequest)),
        (
            "/maintenance/snapshot",
            server_stream!(grpc, MaintenanceClient, snapshot, SnapshotRequest),
        ),
        (
            "/maintenance/transfer-leadership",
            unary!(grpc, MaintenanceClient, move_leader, MoveLeaderRequest),
        ),
        ("/lock/lock", unary!(grpc, LockClient, lock, LockRequest)),
        ("/lock/unlock", unary!(grpc, LockClient, unlock, UnlockRequest)),
        (
            "/election/campaign",
            unary!(grpc, ElectionClient, campaign, CampaignRequest),
        ),
        (
            "/election/proclaim",
            unary!(grpc, ElectionClient, proclaim, ProclaimRequest),
        ),
        ("/election/leader", unary!(grpc, ElectionClient, leader, LeaderRequest)),
        (
            "/election/observe",
            server_stream!(grpc, ElectionClient, observe, LeaderRequest),
        ),
        ("/election/resign", unary!(grpc, ElectionClient, resign, ResignRequest)),
        ("/auth/enable", unary!(grpc, AuthClient, auth_enable, AuthEnableRequest)),
        (
            "/auth/disable",
            unary!(grpc, AuthClient, auth_disable, AuthDisableRequest),
        ),
        // etcd 3.5's; 3.4 has no status call.
        ("/auth/status", unary!(grpc, AuthClient, auth_status, AuthStatusRequest)),
        (
            "/auth/authenticate",
            unary!(grpc, AuthClient, authenticate, AuthenticateRequest),
        ),
        ("/auth/user/add", unary!(grpc, AuthClient, user_add, AuthUserAddRequest)),
        ("/auth/user/get", unary!(grpc, AuthClient, user_get, AuthUserGetRequest)),
        (
            "/auth/user/list",
            unary!(grpc, AuthClient, user_list, AuthUserListRequest),
        ),
        (
            "/auth/user/delete",
            unary!(grpc, AuthClient, user_delete, AuthUserDeleteRequest),
        ),
        (
            "/auth/user/changepw",
            unary!(grpc, AuthClient, user_change_password, AuthUserChangePasswordRequest),
        ),
        (
            "/auth/user/grant",
            unary!(grpc, AuthClient, user_grant_role, AuthUserGrantRoleRequest),
        ),
        (
            "/auth/user/revoke",
            unary!(grpc, AuthClient, user_revoke_role, AuthUserRevokeRoleRequest),
        ),
        ("/auth/role/add", unary!(grpc, AuthClient, role_add, AuthRoleAddRequest)),
        ("/auth/role/get", unary!(grpc, AuthClient, role_get, AuthRoleGetRequest)),
        (
            "/auth/role/list",
            unary!(grpc, AuthClient, role_list, AuthRoleListRequest),
        ),
        (
            "/auth/role/delete",
            unary!(grpc, AuthClient, role_delete, AuthRoleDeleteRequest),
        ),
        (
            "/auth/role/grant",
            unary!(grpc, AuthClient, role_grant_permission, AuthRoleGrantPermissionRequest),
        ),
        (
            "/auth/role/revoke",
            unary!(
                grpc,
                AuthClient,
                role_revoke_permission,
                AuthRoleRevokePermissionRequest
            ),
        ),
    ];
    let mut router = Router::new();
    for prefix in PREFIXES {
        for (path, handler) in &endpoints {
            router = router.route(&format!("{prefix}{path}"), handler.clone().fallback(method_not_allowed));
        }
    }
    router
}

/// Whether `path` is under the gateway's prefixes (Go's gateway mux answers
/// unknown paths there, net/http's mux elsewhere).
pub fn is_gateway_path(path: &str) -> bool {
    PREFIXES
        .iter()
        .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')))
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "Method Not Allowed\n",
    )
        .into_response()
}

/// A gRPC request carrying `message` and the caller's auth token.
fn grpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| MetadataValue::try_from(value.as_bytes()).ok())
    {
        request.metadata_mut().insert("token", token);
    }
    request
}

/// The request of a unary or server-streaming call: the body's first JSON
/// value, or an empty request for an empty body.
async fn single_request<Req: DeserializeOwned + Default>(body: Body) -> Result<Req, Response> {
    match JsonReader::new(body).next().await {
        None => Ok(Req::default()),
        Some(Ok(request)) => Ok(request),
        Some(Err(e)) => Err(json::error(&Status::invalid_argument(e))),
    }
}

async fn unary<Req, Resp, Fut>(
    headers: HeaderMap,
    body: Body,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = match single_request(body).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    match call(grpc_request(&headers, request)).await {
        Ok(response) => json::ok(response.get_ref()),
        Err(status) => json::error(&status),
    }
}

async fn server_stream<Req, Resp, Fut>(
    headers: HeaderMap,
    body: Body,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<Streaming<Resp>>, Status>>,
{
    let request = match single_request(body).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    match call(grpc_request(&headers, request)).await {
        Ok(responses) => stream_response(responses.into_inner()).await,
        Err(status) => json::error(&status),
    }
}

/// The requests of a bidi stream, as the body delivers them.
type Requests<Req> = ReceiverStream<Req>;

type BidiResult<Resp> = Result<tonic::Response<Streaming<Resp>>, Status>;

async fn bidi<Req, Resp>(
    headers: HeaderMap,
    body: Body,
    keep_open: bool,
    call: impl FnOnce(tonic::Request<Requests<Req>>) -> BoxFuture<'static, BidiResult<Resp>>,
) -> Response
where
    Req: DeserializeOwned + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    let mut reader = JsonReader::new(body);
    // grpc-gateway reports a first request that does not decode as a
    // failed call (Unknown, 500); a later one only ends the requests.
    let first = match reader.next::<Req>().await {
        Some(Ok(request)) => Some(request),
        Some(Err(e)) => return json::error_as(StatusCode::INTERNAL_SERVER_ERROR, Code::Unknown, &e),
        None => None,
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut next = first;
        while let Some(request) = next {
            if sender.send(request).await.is_err() {
                return;
            }
            next = match reader.next::<Req>().await {
                Some(Ok(request)) => Some(request),
                _ => None,
            };
        }
        if keep_open {
            sender.closed().await;
        }
    });
    let requests = ReceiverStream::new(receiver);
    match call(grpc_request(&headers, requests)).await {
        Ok(responses) => stream_response(responses.into_inner()).await,
        Err(status) => json::error(&status),
    }
}

/// Newline-delimited `{"result":..}` objects, sent as they come; the HTTP
/// status is decided by the first one, as in grpc-gateway.
async fn stream_response<Resp: Serialize + Send + 'static>(mut responses: Streaming<Resp>) -> Response {
    let first = match responses.next().await {
        Some(Ok(message)) => Some(json::result_line(&message)),
        Some(Err(status)) => {
            let http = json::http_status(status.code());
            return (
                http,
                [(header::CONTENT_TYPE, "application/json")],
                json::error_chunk(&status),
            )
                .into_response();
        }
        None => None,
    };
    let rest = stream::unfold(Some(responses), |responses| async move {
        let mut responses = responses?;
        match responses.next().await {
            Some(Ok(message)) => Some((json::result_line(&message), Some(responses))),
            Some(Err(status)) => Some((json::error_chunk(&status), None)),
            None => None,
        }
    });
    let chunks = stream::iter(first).chain(rest).map(Ok::<_, std::convert::Infallible>);
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(chunks),
    )
        .into_response();
    json::grpc_metadata(&mut response);
    response
}
