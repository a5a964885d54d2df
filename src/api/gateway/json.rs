//! The gateway's wire format, as etcd's grpc-gateway writes it: requests are
//! JSON values read one after another from the body (a stream for bidi
//! RPCs), responses the protobuf JSON mapping generated from our .proto
//! files, and errors `{"error":..,"message":..,"code":N}` with the HTTP
//! status grpc-gateway gives each gRPC code.

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

/// Reads JSON values from a request body as they arrive, as Go's
/// `json.Decoder` does: each value is one request; whatever follows the last
/// complete value is ignored once the body ends.
pub struct JsonReader {
    body: BodyDataStream,
    buffer: Vec<u8>,
    ended: bool,
}

impl JsonReader {
    pub fn new(body: Body) -> Self {
        JsonReader {
            body: body.into_data_stream(),
            buffer: Vec::new(),
            ended: false,
        }
    }

    /// The next request; `None` at the end of the body. JSON `null` is an
    /// empty request, as in grpc-gateway.
    pub async fn next<T: DeserializeOwned + Default>(&mut self) -> Option<Result<T, String>> {
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<serde_json::Value>();
            match values.next() {
                Some(Ok(value)) => {
                    let used = values.byte_offset();
                    self.buffer.drain(..used);
                    return Some(message(value));
                }
                Some(Err(e)) if !e.is_eof() || self.ended => {
                    self.ended = true;
                    self.buffer.clear();
                    return Some(Err(if e.is_eof() {
                        "unexpected EOF".to_string()
                    } else {
                        e.to_string()
                    }));
                }
                None if self.ended => return None,
                _ => {}
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }
}

fn message<T: DeserializeOwned + Default>(value: serde_json::Value) -> Result<T, String> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(value).map_err(|e| go_text(&e.to_string()))
}

/// Go's text for a bad base64 field, which is what etcd's clients see.
fn go_text(error: &str) -> String {
    let base64 = [
        "Invalid symbol",
        "Invalid last symbol",
        "Invalid input length",
        "Invalid padding",
    ];
    if !base64.iter().any(|p| error.starts_with(p)) {
        return error.to_string();
    }
    let offset = error
        .split("offset ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    format!("illegal base64 data at input byte {offset}")
}

/// The HTTP status grpc-gateway (v1, as in etcd 3.4) answers for a code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"error":..,"message":..,"code":N}` with the code's HTTP status.
pub fn error(status: &Status) -> Response {
    error_as(http_status(status.code()), status.code(), status.message())
}

/// An error body with an explicit HTTP status (a stream's first request
/// that does not decode is a 500 with code 2 in grpc-gateway).
pub fn error_as(http: StatusCode, code: Code, message: &str) -> Response {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        message: &'a str,
        code: i32,
    }
    let body = serde_json::to_vec(&ErrorBody {
        error: message,
        message,
        code: code as i32,
    })
    .unwrap_or_default();
    (http, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A successful unary response.
pub fn ok<T: Serialize>(message: &T) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => {
            let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            grpc_metadata(&mut response);
            response
        }
        Err(e) => error(&Status::internal(e.to_string())),
    }
}

/// grpc-gateway passes the gRPC response's headers on as `Grpc-Metadata-*`.
pub fn grpc_metadata(response: &mut Response) {
    response.headers_mut().insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
}

/// One line of a response stream: `{"result":..}` and a newline.
pub fn result_line<T: Serialize>(message: &T) -> Bytes {
    #[derive(Serialize)]
    struct Chunk<'a, T> {
        result: &'a T,
    }
    let mut line = serde_json::to_vec(&Chunk { result: message }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// What ends a response stream that failed: grpc-gateway's stream error,
/// without a newline.
pub fn error_chunk(status: &Status) -> Bytes {
    #[derive(Serialize)]
    struct StreamError<'a> {
        grpc_code: i32,
        http_code: u16,
        message: &'a str,
        http_status: &'a str,
    }
    #[derive(Serialize)]
    struct Chunk<'a> {
        error: StreamError<'a>,
    }
    let http = http_status(status.code());
    let chunk = Chunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or(""),
        },
    };
    Bytes::from(serde_json::to_vec(&chunk).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{range_request::SortOrder, RangeRequest, RangeResponse, ResponseHeader};
    use crate::proto::mvccpb::KeyValue;

    async fn read_all(body: &'static str) -> Vec<Result<RangeRequest, String>> {
        let mut reader = JsonReader::new(Body::from(body));
        let mut out = Vec::new();
        while let Some(next) = reader.next().await {
            out.push(next);
        }
        out
    }

    #[tokio::test]
    async fn requests_follow_the_protobuf_json_mapping() {
        let read = read_all(r#"{"key":"Zm9v","limit":"5","sort_order":"DESCEND"} {"keysOnly":true} null"#).await;
        let first = read[0].as_ref().unwrap();
        assert_eq!(first.key, b"foo");
        assert_eq!(first.limit, 5);
        assert_eq!(first.sort_order, SortOrder::Descend as i32);
        assert!(read[1].as_ref().unwrap().keys_only);
        assert_eq!(read[2].as_ref().unwrap(), &RangeRequest::default());
        assert_eq!(read.len(), 3);
    }

    #[tokio::test]
    async fn bad_input_is_reported() {
        let read = read_all(r#"{"key":"!!!"}"#).await;
        assert_eq!(read[0].as_ref().unwrap_err(), "illegal base64 data at input byte 0");
        assert!(read_all("{bad").await[0].is_err());
        assert!(read_all(r#"{"key":"Zm9v""#).await[0]
            .as_ref()
            .unwrap_err()
            .contains("EOF"));
        assert!(read_all("").await.is_empty());
    }

    #[test]
    fn responses_use_proto_names_and_omit_defaults() {
        let response = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 0,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }
}
