//! Request ids and the log span of one request: taken from `x-request-id` or generated, echoed back, and put on
//! every log line of the request, for REST and gRPC alike.

use axum::http::HeaderValue;
use tower_http::request_id::{MakeRequestId, RequestId};

/// The request id header, read from clients and echoed in responses.
pub const REQUEST_ID: &str = "x-request-id";

/// The tracing span of one request: every log line inside it carries the request id.
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

/// Request ids for requests that come without one: random UUID v4 text, drawn from a per-thread generator
/// seeded once from the OS (tower-http's `MakeRequestUuid` asks the kernel for randomness on every request).
#[derive(Clone, Copy, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let id = random_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

/// A random UUID v4 from a per-thread generator seeded once from the OS: for request and response ids, which
/// need to be unique, not unpredictable (`Uuid::new_v4` makes a `getrandom` system call every time).
pub fn random_uuid() -> uuid::Uuid {
    thread_local! {
        static STATE: std::cell::Cell<(u64, u64)> = std::cell::Cell::new({
            let seed = uuid::Uuid::new_v4().as_u64_pair();
            (seed.0 | 1, seed.1 | 1)
        });
    }
    // xorshift128+: not cryptographic, which ids need not be; unique enough to correlate logs.
    let bytes = STATE.with(|state| {
        let mut out = [0u8; 16];
        for half in out.chunks_exact_mut(8) {
            let (mut s1, s0) = state.get();
            let value = s0.wrapping_add(s1);
            s1 ^= s1 << 23;
            state.set((s0, s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26)));
            half.copy_from_slice(&value.to_le_bytes());
        }
        out
    });
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_uuid_v4_text() {
        let request = axum::http::Request::builder().body(()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = RandomRequestId.make_request_id(&request).unwrap();
            let text = id.header_value().to_str().unwrap().to_string();
            let parsed = uuid::Uuid::parse_str(&text).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{text}");
            assert!(seen.insert(text), "repeated id");
        }
    }
}
