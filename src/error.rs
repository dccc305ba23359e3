//! The one error type of the server, and the only place it is mapped to an HTTP status and to a gRPC code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    /// No model of that name. Both servers' wordings: Triton's (its example clients look for "Request for
    /// unknown model", some at the start of the message) and MLServer's ("Model X not found"); the 404 is what
    /// Seldon's agent retries lazy loading on.
    #[error("Request for unknown model: '{0}' is not found (Model {0} not found)")]
    ModelNotFound(String),
    /// The model exists but not in that version.
    #[error("Request for unknown model: '{name}' version {version} is not found (Model {name} with version {version} not found)")]
    VersionNotFound { name: String, version: String },
    /// A load asked for a model the repository folder does not hold (Triton's example clients look for
    /// "failed to load", MLServer users for "Model X not found").
    #[error("failed to load '{0}': Model {0} not found in the repository")]
    LoadNotFound(String),
    /// No such REST route.
    #[error("{0}")]
    NotFoundRoute(String),
    /// The route exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The model is known but loading, unloading or failed to load.
    #[error("{0}")]
    ModelNotReady(String),
    /// The request is malformed or does not fit the model; the message names the tensor or field.
    #[error("{0}")]
    InvalidInput(String),
    /// A model (asked for through the repository API) could not be loaded: its file, graph or settings are
    /// broken. Not the request's fault, but answered as Triton answers a failed load: 400 / INVALID_ARGUMENT,
    /// which tritonclient and Seldon's agent read as "failed to load".
    #[error("{0}")]
    ModelLoad(String),
    /// The request asks for something this server does not do.
    #[error("{0}")]
    Unsupported(String),
    /// The model's queue is full.
    #[error("{0}")]
    Overloaded(String),
    /// The request ran out of its time.
    #[error("{0}")]
    Timeout(String),
    /// The server-wide budget of bytes in flight (`max_bytes_in_flight`) cannot take this request now.
    #[error("{0}")]
    OverBudget(String),
    /// The request body is over the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A failure inside the server or the runtime.
    #[error("{0}")]
    Internal(String),
    /// The caller did not prove who it is (the repository API's bearer token is missing or wrong).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (the repository API is disabled, or the request is cross-site).
    #[error("{0}")]
    Forbidden(String),
}

impl Error {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::ModelNotFound(_)
            | Error::VersionNotFound { .. }
            | Error::LoadNotFound(_)
            | Error::NotFoundRoute(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::ModelNotReady(_) | Error::OverBudget(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvalidInput(_) | Error::ModelLoad(_) => StatusCode::BAD_REQUEST,
            Error::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The gRPC status code for this error (the counterpart of [`Error::http_status`]).
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Error::ModelNotFound(_)
            | Error::VersionNotFound { .. }
            | Error::LoadNotFound(_)
            | Error::NotFoundRoute(_) => tonic::Code::NotFound,
            Error::MethodNotAllowed(_) | Error::Unsupported(_) => tonic::Code::Unimplemented,
            Error::ModelNotReady(_) => tonic::Code::Unavailable,
            Error::InvalidInput(_) | Error::ModelLoad(_) => tonic::Code::InvalidArgument,
            Error::Overloaded(_) | Error::PayloadTooLarge(_) | Error::OverBudget(_) => {
                tonic::Code::ResourceExhausted
            }
            Error::Timeout(_) => tonic::Code::DeadlineExceeded,
            Error::Internal(_) => tonic::Code::Internal,
            Error::Unauthenticated(_) => tonic::Code::Unauthenticated,
            Error::Forbidden(_) => tonic::Code::PermissionDenied,
        }
    }

    /// Logs a failed request: server faults (500) as errors; everything a client can cause at will (bad input,
    /// unknown models, 503 while loading or over the admission budget, 429) at debug level, so that a client
    /// cannot fill the logs.
    fn log(&self, server_error: bool) {
        let message = self.message();
        if server_error {
            tracing::error!(error = %message, "request failed");
        } else {
            tracing::debug!(error = %message, "request rejected");
        }
    }

    /// The message sent to clients and logged: the error's text, cut to [`MAX_MESSAGE_BYTES`] (a safety net: the
    /// messages built from request data already abbreviate shapes and names).
    pub fn message(&self) -> String {
        let mut text = self.to_string();
        if text.len() > MAX_MESSAGE_BYTES {
            let cut = floor_char_boundary(&text, MAX_MESSAGE_BYTES - 32);
            let dropped = text.len() - cut;
            text.truncate(cut);
            text.push_str(&format!("... ({dropped} bytes cut)"));
        }
        text
    }
}

/// Longest error message sent or logged, in bytes. gRPC carries it in a header (`grpc-message`, percent-encoded),
/// and clients refuse header blocks over 8-16 KiB ("Stream removed"): 2 KiB stays under that even when encoded.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Longest tensor name quoted in a message, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// Most dimensions a shape printed in a message shows before `...`.
const MAX_SHOWN_DIMS: usize = 8;

/// The largest char boundary of `text` at or before `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// A name from a request as quoted in a message: cut to a few dozen characters.
pub fn short(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= MAX_NAME_BYTES {
        return name.into();
    }
    let cut = floor_char_boundary(name, MAX_NAME_BYTES);
    format!("{}...", &name[..cut]).into()
}

/// A shape as printed in a message: `[1, 3, 224, 224]`, or its first dimensions then `... (N dims)`.
pub fn shape_text<T: std::fmt::Display>(shape: &[T]) -> String {
    use std::fmt::Write;
    let mut out = String::from("[");
    for (i, d) in shape.iter().take(MAX_SHOWN_DIMS).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{d}");
    }
    if shape.len() > MAX_SHOWN_DIMS {
        let _ = write!(out, ", ... ({} dims)", shape.len());
    }
    out.push(']');
    out
}

/// The gRPC trace layer's failure log: server faults (INTERNAL, UNKNOWN, DATA_LOSS) at ERROR, everything a client
/// caused (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ...) and broken streams at DEBUG, so that a client
/// cannot fill the logs with errors.
pub fn log_grpc_failure(
    failure: tower_http::classify::GrpcFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::GrpcFailureClass;
    let latency_ms = latency.as_millis();
    match failure {
        GrpcFailureClass::Code(code) if is_server_fault(tonic::Code::from(code.get())) => {
            tracing::error!(code = code.get(), latency_ms, "gRPC call failed")
        }
        GrpcFailureClass::Code(code) => {
            tracing::debug!(code = code.get(), latency_ms, "gRPC call refused")
        }
        GrpcFailureClass::Error(error) => {
            tracing::debug!(error = %short(&error), latency_ms, "gRPC stream failed")
        }
    }
}

/// Whether a gRPC code means the server failed (rather than the client asking for something wrong).
fn is_server_fault(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss
    )
}

/// The error body every REST error uses.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong; names the model, tensor or field concerned.
    pub error: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.http_status();
        self.log(status == StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(ErrorBody {
                error: self.message(),
            }),
        )
            .into_response()
    }
}

/// A gRPC status with the error's code and the same message REST sends.
impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        let code = error.grpc_code();
        error.log(is_server_fault(code));
        tonic::Status::new(code, error.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_uses_triton_and_mlserver_wording() {
        let e = Error::ModelNotFound("iris".into());
        assert_eq!(
            e.to_string(),
            "Request for unknown model: 'iris' is not found (Model iris not found)"
        );
        assert_eq!(e.http_status(), StatusCode::NOT_FOUND);
        let e = Error::VersionNotFound {
            name: "iris".into(),
            version: "7".into(),
        };
        assert!(e
            .to_string()
            .starts_with("Request for unknown model: 'iris' version 7"));
        assert!(e
            .to_string()
            .contains("Model iris with version 7 not found"));
        assert_eq!(e.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(e.grpc_code(), tonic::Code::NotFound);
    }

    #[test]
    fn grpc_status_keeps_the_rest_message() {
        let status = tonic::Status::from(Error::InvalidInput("input 'x' is bad".into()));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "input 'x' is bad");
        assert_eq!(
            Error::Overloaded("full".into()).grpc_code(),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            Error::ModelNotReady("loading".into()).grpc_code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn messages_are_capped() {
        let long = Error::InvalidInput(format!("input '{}' is bad", "é".repeat(1_000_000)));
        let status = tonic::Status::from(long.clone());
        assert!(
            status.message().len() <= MAX_MESSAGE_BYTES,
            "{}",
            status.message().len()
        );
        assert!(status.message().ends_with("bytes cut)"));
        assert!(long.message().starts_with("input 'éé"));
        let short_one = Error::InvalidInput("fine".into());
        assert_eq!(short_one.message(), "fine");
    }

    #[test]
    fn shapes_and_names_are_abbreviated() {
        assert_eq!(shape_text(&[1, 3, 224, 224]), "[1, 3, 224, 224]");
        let big = vec![1i64; 1_000_000];
        assert_eq!(
            shape_text(&big),
            "[1, 1, 1, 1, 1, 1, 1, 1, ... (1000000 dims)]"
        );
        assert_eq!(short("x"), "x");
        let cut = short(&"ü".repeat(500)).into_owned();
        assert!(
            cut.len() <= MAX_NAME_BYTES + 3 && cut.ends_with("..."),
            "{cut}"
        );
    }

    #[test]
    fn only_server_faults_are_errors() {
        assert!(is_server_fault(tonic::Code::Internal));
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::NotFound,
            tonic::Code::ResourceExhausted,
            tonic::Code::Unavailable,
            tonic::Code::Unimplemented,
        ] {
            assert!(!is_server_fault(code), "{code:?}");
        }
    }
}
