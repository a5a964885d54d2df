//! The middleware on the client port's gRPC routes that counts every call as
//! grpc-prometheus does in etcd (`grpc_server_started_total`,
//! `grpc_server_handled_total` by status code, handling time with
//! `--metrics=extensive`) and the bytes exchanged with gRPC clients.

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

use crate::metrics::{GrpcCall, CLIENT_RECEIVED_BYTES, CLIENT_SENT_BYTES};

pub async fn count(request: Request, next: Next) -> Response {
    let Some(call) = GrpcCall::start(request.uri().path()) else {
        return next.run(request).await;
    };
    let request = request.map(|body| {
        Body::new(body.map_frame(|frame| {
            if let Some(data) = frame.data_ref() {
                CLIENT_RECEIVED_BYTES.inc_by(data.len() as u64);
            }
            frame
        }))
    });
    let response = next.run(request).await;
    // A call that failed at once has its status in the headers
    // ("trailers-only"); otherwise it comes in the trailers, after the
    // last message. A stream dropped before then was cancelled.
    let mut call = match grpc_code(response.headers()) {
        Some(code) => {
            call.finish(code);
            None
        }
        None => Some(call),
    };
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                CLIENT_SENT_BYTES.inc_by(data.len() as u64);
            }
            if let Some(trailers) = frame.trailers_ref() {
                if let Some(call) = call.take() {
                    call.finish(grpc_code(trailers).unwrap_or(2));
                }
            }
            frame
        }))
    })
}

fn grpc_code(headers: &HeaderMap) -> Option<usize> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}
