//! The one error type of the server, and the only place it is mapped to an HTTP status and to a gRPC code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    /// No model of that name (MLServer's wording: Seldon's agent retries lazy loading on it).
    #[error("Model {0} not found")]
    ModelNotFound(String),
    /// The model exists but not in that version.
    #[error("Model {name} with version {version} not found")]
    VersionNotFound { name: String, version: String },
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
}

impl Error {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::ModelNotFound(_) | Error::VersionNotFound { .. } | Error::NotFoundRoute(_) => {
                StatusCode::NOT_FOUND
            }
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::ModelNotReady(_) | Error::OverBudget(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Error::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code for this error (the counterpart of [`Error::http_status`]).
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Error::ModelNotFound(_) | Error::VersionNotFound { .. } | Error::NotFoundRoute(_) => {
                tonic::Code::NotFound
            }
            Error::MethodNotAllowed(_) | Error::Unsupported(_) => tonic::Code::Unimplemented,
            Error::ModelNotReady(_) => tonic::Code::Unavailable,
            Error::InvalidInput(_) => tonic::Code::InvalidArgument,
            Error::Overloaded(_) | Error::PayloadTooLarge(_) | Error::OverBudget(_) => {
                tonic::Code::ResourceExhausted
            }
            Error::Timeout(_) => tonic::Code::DeadlineExceeded,
            Error::Internal(_) => tonic::Code::Internal,
        }
    }

    /// Logs a failed request: server-side failures as errors, rejected requests at debug level.
    fn log(&self, server_error: bool) {
        if server_error {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request rejected");
        }
    }
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
        self.log(status.is_server_error());
        (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// A gRPC status with the error's code and the same message REST sends.
impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        let code = error.grpc_code();
        error.log(code == tonic::Code::Internal);
        tonic::Status::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_uses_mlserver_wording() {
        assert_eq!(
            Error::ModelNotFound("iris".into()).to_string(),
            "Model iris not found"
        );
        let e = Error::VersionNotFound {
            name: "iris".into(),
            version: "7".into(),
        };
        assert_eq!(e.to_string(), "Model iris with version 7 not found");
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
}
