//! The HTTP/JSON gateway etcd serves beside gRPC on the client port: `POST /v3/kv/range` with
//! `{"key":"Zm9v"}` answers as the KV.Range RPC does, in etcd's JSON (`json`). The port carries
//! both, split as etcd's cmux splits them: a request whose content type is `application/grpc`
//! goes to the gRPC services, anything else to the gateway's paths (`/v3/` and etcd 3.4's older
//! `/v3beta/`), and an unknown path is 404.
//!
//! Each gateway request becomes a gRPC call on the very services a gRPC client reaches (the
//! same `Routes`, called in-process with a pass-through codec), so there is no second copy of
//! any service's logic and whatever those services check (authentication included) applies to
//! JSON clients alike; the `Authorization` header travels as the call's token metadata.
//! Streams follow grpc-gateway: a streaming request body is a sequence of JSON objects, each a
//! message; a streaming answer is one `{"result": ...}` line per message, and an error ends it
//! as `{"error": {"grpc_code": ..., ...}}`. An error of a unary call is etcd's
//! `{"error": ..., "message": ..., "code": ...}` with grpc-gateway's HTTP status for the code.
//!
//! What it deliberately does not do: websocket upgrades of the streams (etcd's wsproxy), and
//! the paths of services detcd does not serve (those are 404, as in an etcd without them).

mod auth_routes;
mod json;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use http_body_util::BodyExt as _;
use prost_reflect::{MessageDescriptor, MethodDescriptor};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::Service as _;
use tonic::service::Routes;
use tonic::{Code, Status};

/// One HTTP path of the gateway and the RPC it calls (etcd 3.4's `google.api.http` bindings).
struct Binding {
    /// The path after `/v3/`.
    path: &'static str,
    /// The service's full protobuf name.
    service: &'static str,
    /// The method's name.
    method: &'static str,
}

const fn bind(path: &'static str, service: &'static str, method: &'static str) -> Binding {
    Binding {
        path,
        service,
        method,
    }
}

/// Every path etcd 3.4 binds for the services detcd serves, but the auth service's, which are
/// in `auth_routes`. (3.4 has no binding for HashKV.)
const BINDINGS: &[Binding] = &[
    bind("kv/range", "etcdserverpb.KV", "Range"),
    bind("kv/put", "etcdserverpb.KV", "Put"),
    bind("kv/deleterange", "etcdserverpb.KV", "DeleteRange"),
    bind("kv/txn", "etcdserverpb.KV", "Txn"),
    bind("kv/compaction", "etcdserverpb.KV", "Compact"),
    bind("watch", "etcdserverpb.Watch", "Watch"),
    bind("lease/grant", "etcdserverpb.Lease", "LeaseGrant"),
    bind("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    bind("kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    bind("lease/keepalive", "etcdserverpb.Lease", "LeaseKeepAlive"),
    bind("lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    bind(
        "kv/lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
    ),
    bind("lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    bind("kv/lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    bind("cluster/member/add", "etcdserverpb.Cluster", "MemberAdd"),
    bind(
        "cluster/member/remove",
        "etcdserverpb.Cluster",
        "MemberRemove",
    ),
    bind(
        "cluster/member/update",
        "etcdserverpb.Cluster",
        "MemberUpdate",
    ),
    bind("cluster/member/list", "etcdserverpb.Cluster", "MemberList"),
    bind(
        "cluster/member/promote",
        "etcdserverpb.Cluster",
        "MemberPromote",
    ),
    bind("maintenance/alarm", "etcdserverpb.Maintenance", "Alarm"),
    bind("maintenance/status", "etcdserverpb.Maintenance", "Status"),
    bind(
        "maintenance/defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
    ),
    bind("maintenance/hash", "etcdserverpb.Maintenance", "Hash"),
    bind(
        "maintenance/snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
    ),
    bind(
        "maintenance/transfer-leadership",
        "etcdserverpb.Maintenance",
        "MoveLeader",
    ),
    bind("lock/lock", "v3lockpb.Lock", "Lock"),
    bind("lock/unlock", "v3lockpb.Lock", "Unlock"),
    bind("election/campaign", "v3electionpb.Election", "Campaign"),
    bind("election/proclaim", "v3electionpb.Election", "Proclaim"),
    bind("election/leader", "v3electionpb.Election", "Leader"),
    bind("election/observe", "v3electionpb.Election", "Observe"),
    bind("election/resign", "v3electionpb.Election", "Resign"),
];

/// Messages of a streaming request read ahead of the call at most.
const REQUEST_MESSAGES_COUNT_MAX: usize = 16;
/// Rendered messages of a streaming answer buffered ahead of the HTTP client at most.
const ANSWER_MESSAGES_COUNT_MAX: usize = 16;

/// The routes served on the client port: `grpc` (the gRPC services) for gRPC requests, the
/// gateway for the rest. A JSON request body (or one message of a stream) may hold
/// `body_bytes_max` bytes at most.
pub fn routes(grpc: Routes, body_bytes_max: usize) -> Routes {
    let gateway = Arc::new(Gateway {
        grpc,
        body_bytes_max,
    });
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let gateway = gateway.clone();
        async move { gateway.dispatch(request).await }
    });
    Routes::from(router)
}

struct Gateway {
    grpc: Routes,
    body_bytes_max: usize,
}

impl Gateway {
    async fn dispatch(&self, request: axum::extract::Request) -> Response {
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        if grpc {
            let Ok(response) = self.grpc.clone().call(request).await;
            return response.map(Body::new);
        }
        let path = request.uri().path();
        let Some(rest) = path
            .strip_prefix("/v3/")
            .or_else(|| path.strip_prefix("/v3beta/"))
        else {
            // Outside the gateway's prefixes: Go's mux answer, as etcd's.
            return plain(StatusCode::NOT_FOUND, "404 page not found\n");
        };
        let Some(method) = method(rest) else {
            return plain(StatusCode::NOT_FOUND, "Not Found\n");
        };
        if request.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        }
        self.call(method, request).await
    }

    async fn call(&self, method: MethodDescriptor, request: axum::extract::Request) -> Response {
        let (parts, body) = request.into_parts();
        let mut reader = BodyReader {
            body,
            buffer: Vec::new(),
            body_bytes_max: self.body_bytes_max,
        };
        let input = method.input();
        let first = match reader.next_message(&input).await {
            Ok(first) => first,
            Err(status) => return error_response(&status),
        };
        let (messages, outgoing) = mpsc::channel(REQUEST_MESSAGES_COUNT_MAX);
        match first {
            Some(message) => {
                let _fits_an_empty_channel = messages.try_send(message);
            }
            // An empty body is the empty message, except for a stream, where it is none.
            None if !method.is_client_streaming() => {
                let _fits_an_empty_channel = messages.try_send(Vec::new());
            }
            None => {}
        }
        if method.is_client_streaming() {
            // Later messages go on as the client writes them; the stream's request side
            // closes when the body ends (grpc-gateway's CloseSend) or turns bad.
            tokio::spawn(async move {
                while let Ok(Some(message)) = reader.next_message(&input).await {
                    if messages.send(message).await.is_err() {
                        break;
                    }
                }
            });
        } else {
            drop(messages);
        }
        let mut call = tonic::Request::new(ReceiverStream::new(outgoing));
        forward_token(&parts.headers, call.metadata_mut());
        // The connection's verified client certificate, as a gRPC call on it would carry it.
        if let Some(info) = parts.extensions.get::<crate::tls::ClientTlsInfo>() {
            call.extensions_mut().insert(info.clone());
        }
        let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
        let path = path
            .parse()
            .expect("service and method names make a valid path");
        let mut client =
            tonic::client::Grpc::new(self.grpc.clone()).max_decoding_message_size(usize::MAX);
        let Ok(()) = client.ready().await;
        let answers = match client.streaming(call, path, RawCodec).await {
            Ok(answers) => answers.into_inner(),
            Err(status) => {
                return match method.is_server_streaming() {
                    true => stream_error_response(&status),
                    false => error_response(&status),
                }
            }
        };
        match method.is_server_streaming() {
            true => stream_response(answers, method.output()).await,
            false => unary_response(answers, &method.output()).await,
        }
    }
}

/// The binding for the path after `/v3/`, if the gateway serves it.
fn method(path: &str) -> Option<MethodDescriptor> {
    let binding = BINDINGS
        .iter()
        .chain(auth_routes::AUTH_BINDINGS)
        .find(|binding| binding.path == path)?;
    json::pool()
        .get_service_by_name(binding.service)?
        .methods()
        .find(|method| method.name() == binding.method)
}

/// Passes the `Authorization` header on as the token etcd's services read from the metadata
/// (etcd's gateway forwards it as `authorization`; etcd reads `token` first).
fn forward_token(headers: &HeaderMap, metadata: &mut tonic::metadata::MetadataMap) {
    let Some(token) = headers.get(header::AUTHORIZATION) else {
        return;
    };
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(token.as_bytes()) {
        metadata.insert("authorization", value.clone());
        metadata.insert("token", value);
    }
}

/// Reads JSON messages from a request body, one value at a time.
struct BodyReader {
    body: Body,
    /// Bytes read and not yet taken as a message.
    buffer: Vec<u8>,
    body_bytes_max: usize,
}

impl BodyReader {
    /// The next message, encoded; `None` at the end of the body.
    async fn next_message(
        &mut self,
        descriptor: &MessageDescriptor,
    ) -> Result<Option<Vec<u8>>, Status> {
        loop {
            match json::next_value(&self.buffer) {
                json::NextValue::Value(value, used_bytes) => {
                    self.buffer.drain(..used_bytes);
                    return json::encode_request(descriptor, value)
                        .map(Some)
                        .map_err(|json::BadJson(reason)| Status::invalid_argument(reason));
                }
                json::NextValue::Bad(json::BadJson(reason)) => {
                    return Err(Status::invalid_argument(reason))
                }
                json::NextValue::Incomplete => {}
            }
            let frame = match self.body.frame().await {
                None => {
                    return match self.buffer.iter().all(u8::is_ascii_whitespace) {
                        true => Ok(None),
                        false => Err(Status::invalid_argument("unexpected EOF")),
                    }
                }
                Some(Err(error)) => {
                    return Err(Status::invalid_argument(format!(
                        "cannot read the request body: {error}"
                    )))
                }
                Some(Ok(frame)) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
            if self.buffer.len() > self.body_bytes_max {
                return Err(Status::invalid_argument("etcdserver: request is too large"));
            }
        }
    }
}

/// A unary call's answer: its one message as JSON, or the error.
async fn unary_response(
    mut answers: tonic::Streaming<Vec<u8>>,
    output: &MessageDescriptor,
) -> Response {
    let bytes = match answers.message().await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return error_response(&Status::internal("the service sent no answer")),
        Err(status) => return error_response(&status),
    };
    match json::render(output, &bytes) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(reason) => error_response(&Status::internal(reason)),
    }
}

/// A streaming call's answer: a line per message as it comes. An error before the first
/// message is the response's status; one after it ends the stream as its last line.
async fn stream_response(
    mut answers: tonic::Streaming<Vec<u8>>,
    output: MessageDescriptor,
) -> Response {
    let first = match answers.message().await {
        Ok(first) => first,
        Err(status) => return stream_error_response(&status),
    };
    let (lines, body) = mpsc::channel::<Result<Bytes, Infallible>>(ANSWER_MESSAGES_COUNT_MAX);
    tokio::spawn(async move {
        let mut next = first;
        while let Some(bytes) = next {
            let line = match json::render(&output, &bytes) {
                Ok(message) => result_line(&message),
                Err(reason) => stream_error_line(&Status::internal(reason)),
            };
            // The HTTP client went away: dropping `answers` ends the call.
            if lines.send(Ok(line)).await.is_err() {
                return;
            }
            next = match answers.message().await {
                Ok(next) => next,
                Err(status) => {
                    let _ = lines.send(Ok(stream_error_line(&status))).await;
                    return;
                }
            };
        }
    });
    let mut response = Body::from_stream(ReceiverStream::new(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    with_cors(response)
}

const JSON: &str = "application/json";

fn result_line(message: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(message.len() + 12);
    line.extend_from_slice(b"{\"result\":");
    line.extend_from_slice(message);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// grpc-gateway's stream error: `{"error":{"grpc_code":..,"http_code":..,"message":..,"http_status":..}}`.
fn stream_error_line(status: &Status) -> Bytes {
    #[derive(serde::Serialize)]
    struct StreamError<'a> {
        grpc_code: i32,
        http_code: u16,
        message: &'a str,
        http_status: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Line<'a> {
        error: StreamError<'a>,
    }
    let http = http_status(status.code());
    let error = Line {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or_default(),
        },
    };
    let mut line = serde_json::to_vec(&error).expect("a stream error writes");
    line.push(b'\n');
    Bytes::from(line)
}

fn stream_error_response(status: &Status) -> Response {
    let mut response = json_response(http_status(status.code()), stream_error_line(status));
    *response.status_mut() = http_status(status.code());
    response
}

/// etcd's gateway error: `{"error": ..., "message": ..., "code": ...}`.
fn error_response(status: &Status) -> Response {
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        message: &'a str,
        code: i32,
    }
    let body = ErrorBody {
        error: status.message(),
        message: status.message(),
        code: status.code() as i32,
    };
    let body = serde_json::to_vec(&body).expect("an error body writes");
    json_response(http_status(status.code()), body)
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    with_cors(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    with_cors(response)
}

/// etcd's client handler allows every origin.
fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    response
}

/// grpc-gateway's HTTP status for a gRPC code (its v1 table, which etcd 3.4 uses).
fn http_status(code: Code) -> StatusCode {
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

/// Passes encoded messages through untouched: the gateway encodes and decodes them itself.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, destination: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(destination, &item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut message = vec![0; bytes::Buf::remaining(source)];
        bytes::Buf::copy_to_slice(source, &mut message);
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    //! The binding table against the compiled protos, and the error mapping.

    use super::*;

    #[test]
    fn every_binding_names_a_compiled_method() {
        for binding in BINDINGS.iter().chain(auth_routes::AUTH_BINDINGS) {
            let found = method(binding.path);
            assert!(found.is_some(), "{} names no compiled method", binding.path);
        }
        assert!(method("kv/nothing").is_none());
        let watch = method("watch").expect("bound");
        assert!(watch.is_client_streaming() && watch.is_server_streaming());
    }

    #[test]
    fn error_statuses_are_grpc_gateways() {
        assert_eq!(http_status(Code::FailedPrecondition), 412);
        assert_eq!(http_status(Code::OutOfRange), 400);
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(
            stream_error_line(&Status::not_found("etcdserver: requested lease not found")),
            Bytes::from_static(b"{\"error\":{\"grpc_code\":5,\"http_code\":404,\"message\":\"etcdserver: requested lease not found\",\"http_status\":\"Not Found\"}}\n")
        );
    }
}
