//! The gRPC message size limit (`grpc_max_message_length`) and how going over it is answered: RESOURCE_EXHAUSTED,
//! as gRPC's own servers do, where tonic would say OUT_OF_RANGE.

use tonic::codegen::http;
use tonic::{Code, Status};

use crate::config::Settings;

/// Default limit on a gRPC message, either way: room for a 100 MB tensor and its envelope
/// (gRPC's usual 4 MiB breaks real payloads; Triton allows up to 2 GiB).
pub const DEFAULT_MAX_MESSAGE_LENGTH: usize = 256 * 1024 * 1024;

/// The configured limit, or the default.
pub fn max_message_length(settings: &Settings) -> usize {
    settings
        .grpc_max_message_length
        .unwrap_or(DEFAULT_MAX_MESSAGE_LENGTH)
}

/// The start of tonic's message when a received message is over the limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// Turns tonic's OUT_OF_RANGE for an over-limit message into RESOURCE_EXHAUSTED, keeping its message
/// (it states the size and the limit).
pub fn resource_exhausted(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().starts_with(TONIC_TOO_LARGE) {
        Status::resource_exhausted(format!("{} (grpc_max_message_length)", status.message()))
    } else {
        status
    }
}

/// The same for unary calls, whose over-limit request is answered with the status in the response headers.
pub fn too_large_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != Code::OutOfRange {
        return response;
    }
    let remapped = resource_exhausted(status);
    if remapped.code() == Code::ResourceExhausted {
        let headers = response.headers_mut();
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        if let Err(e) = remapped.add_header(headers) {
            tracing::warn!(error = %e, "cannot rewrite the status of an over-limit message");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_limit_becomes_resource_exhausted() {
        let tonic_status = Status::out_of_range(format!(
            "{TONIC_TOO_LARGE}: found 10 bytes, the limit is: 5 bytes"
        ));
        let mut response: http::Response<()> = tonic_status.into_http();
        response = too_large_is_resource_exhausted(response);
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("found 10 bytes"), "{status:?}");
        let other: http::Response<()> = Status::out_of_range("other").into_http();
        let other = too_large_is_resource_exhausted(other);
        let status = Status::from_header_map(other.headers()).unwrap();
        assert_eq!(status.code(), Code::OutOfRange);
    }
}
