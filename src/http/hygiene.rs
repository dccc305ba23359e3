//! HTTP hygiene around the REST routes: request ids (taken from `x-request-id` or generated, echoed back and
//! put on every log line of the request), CORS from `cors_settings`, gzip/deflate of infer responses and of
//! request bodies (`gzip_enabled`; requests are inflated off the async runtime by [`super::inflate`]), the
//! request body limit (`max_request_body_size`), REST metrics, and `root_path`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::config::{CorsSettings, Settings};
use crate::error::ErrorBody;
use crate::service::Service;

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
        thread_local! {
            static STATE: std::cell::Cell<(u64, u64)> = std::cell::Cell::new({
                let seed = uuid::Uuid::new_v4().as_u64_pair();
                (seed.0 | 1, seed.1 | 1)
            });
        }
        // xorshift128+: not cryptographic, which request ids need not be; unique enough to correlate logs.
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
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

/// Wraps the REST routes in the hygiene layers (the outermost runs first: request id, trace span, CORS,
/// metrics, compression, encoding check, decompression, body limit).
pub fn wrap(router: Router, service: &Arc<Service>) -> Router {
    let settings = service.settings();
    let request_id = HeaderName::from_static(REQUEST_ID);
    let mut router = router.layer(DefaultBodyLimit::max(settings.max_request_body_size));
    if settings.gzip_enabled {
        // Not tower-http's RequestDecompressionLayer: it inflates on the async runtime as the body is polled.
        router = router.layer(middleware::from_fn_with_state(
            service.clone(),
            super::inflate::inflate,
        ));
    }
    router = router.layer(middleware::from_fn_with_state(
        settings.gzip_enabled,
        check_content_encoding,
    ));
    if settings.gzip_enabled {
        router = router
            .layer(middleware::from_fn(mark_infer_responses))
            .layer(
                CompressionLayer::new()
                    .compress_when(SizeAbove::new(MIN_COMPRESSED_BYTES).and(InferResponses)),
            );
    }
    let metrics = service.metrics();
    if metrics.enabled() {
        router = router.layer(middleware::from_fn_with_state(
            metrics.clone(),
            crate::metrics::rest::track,
        ));
    }
    if let Some(cors) = &settings.cors_settings {
        router = router.layer(cors_layer(cors));
    }
    router
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // 5xx answers a client can cause at will (503 while loading or over the admission budget) are
                // not server faults; a 500 is logged at ERROR where the error is turned into its answer.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(request_id, RandomRequestId))
}

/// Smallest response body worth compressing (MLServer's gzip middleware uses the same bound).
pub const MIN_COMPRESSED_BYTES: u16 = 500;

/// Marks a successful answer of an infer route: the only responses compressed, as Triton does. Clients expect
/// nothing else compressed: `tritonclient.http.aio` sends `Accept-Encoding: gzip` on every call yet only
/// decompresses infer responses.
#[derive(Clone, Copy)]
struct InferResponse;

/// Middleware inside the compression layer: marks the answers of the infer routes.
async fn mark_infer_responses(request: Request, next: Next) -> Response {
    let infer = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| path.as_str().ends_with("/infer"));
    let mut response = next.run(request).await;
    if infer && response.status().is_success() {
        response.extensions_mut().insert(InferResponse);
    }
    response
}

/// Compression predicate: only responses marked by [`mark_infer_responses`].
#[derive(Clone, Copy)]
struct InferResponses;

impl Predicate for InferResponses {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        response.extensions().get::<InferResponse>().is_some()
    }
}

/// Refuses request bodies in an encoding that will not be decoded (415, in the server's error shape).
async fn check_content_encoding(
    axum::extract::State(gzip_enabled): axum::extract::State<bool>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(encoding) = request.headers().get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        let decoded = matches!(encoding.as_str(), "gzip" | "deflate");
        if encoding != "identity" && !(decoded && gzip_enabled) {
            let error = if decoded {
                format!("compressed request bodies are disabled (gzip_enabled is false); got Content-Encoding {encoding}")
            } else {
                format!("unsupported Content-Encoding {encoding:?}; use gzip, deflate or none")
            };
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(ErrorBody { error }),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Headers browsers may always send (Starlette allows them whatever `allow_headers` says).
const SAFELISTED_HEADERS: [&str; 4] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// The CORS layer for MLServer's `cors_settings` (values were validated with the settings).
pub fn cors_layer(c: &CorsSettings) -> CorsLayer {
    let star = |list: &[String]| list.iter().any(|v| v == "*");
    let credentials = c.allow_credentials;
    let origins: Vec<HeaderValue> = c
        .allow_origins
        .iter()
        .filter(|o| *o != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let regex = c
        .allow_origin_regex
        .as_ref()
        .and_then(|r| regex_lite::Regex::new(&format!("^(?:{r})$")).ok());
    let origin = if star(&c.allow_origins) {
        // With credentials, browsers refuse `*`: echo the origin instead (as Starlette does).
        if credentials {
            AllowOrigin::mirror_request()
        } else {
            AllowOrigin::any()
        }
    } else if let Some(regex) = regex {
        AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin) || origin.to_str().is_ok_and(|o| regex.is_match(o))
        })
    } else {
        AllowOrigin::list(origins)
    };
    let methods = if star(&c.allow_methods) {
        if credentials {
            AllowMethods::mirror_request()
        } else {
            AllowMethods::any()
        }
    } else {
        AllowMethods::list(
            c.allow_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()),
        )
    };
    let headers = if star(&c.allow_headers) {
        if credentials {
            AllowHeaders::mirror_request()
        } else {
            AllowHeaders::any()
        }
    } else {
        AllowHeaders::list(
            SAFELISTED_HEADERS
                .iter()
                .map(|h| h.to_string())
                .chain(c.allow_headers.iter().map(|h| h.to_ascii_lowercase()))
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        )
    };
    let mut layer = CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(credentials);
    if star(&c.expose_headers) {
        if credentials {
            tracing::warn!("cors_settings.expose_headers [\"*\"] cannot be used with allow_credentials; ignored");
        } else {
            layer = layer.expose_headers(ExposeHeaders::any());
        }
    } else if !c.expose_headers.is_empty() {
        layer = layer.expose_headers(ExposeHeaders::list(
            c.expose_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        ));
    }
    if let Some(max_age) = c.max_age {
        layer = layer.max_age(std::time::Duration::from_secs(max_age));
    }
    layer
}

/// Marks a request that arrived under `root_path` (the prefix was taken off its path before routing), so that the
/// OpenAPI documents can name the prefix the client used.
#[derive(Debug, Clone, Copy)]
pub struct UnderRootPath;

/// Serves the routes under `root_path` too: a request for `{root_path}/v2/...` is routed as `/v2/...`
/// (a proxy that keeps the prefix and one that strips it both work). The prefix is matched on whole segments.
/// A stripped request carries [`UnderRootPath`].
pub fn strip_root_path(root: &str) -> impl Fn(Request) -> Request + Clone + Send + Sync + 'static {
    let root = root.trim_end_matches('/').to_string();
    move |mut request: Request| {
        if root.is_empty() {
            return request;
        }
        let path = request.uri().path();
        let rest = match path.strip_prefix(root.as_str()) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ => return request,
        };
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
                request.extensions_mut().insert(UnderRootPath);
            }
        }
        request
    }
}

/// Whether `settings` asks for a root path.
pub fn has_root_path(settings: &Settings) -> bool {
    !settings.root_path.trim_end_matches('/').is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_uuid_v4_text() {
        let request = Request::builder().body(()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = RandomRequestId.make_request_id(&request).unwrap();
            let text = id.header_value().to_str().unwrap().to_string();
            let parsed = uuid::Uuid::parse_str(&text).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{text}");
            assert!(seen.insert(text), "repeated id");
        }
    }

    fn strip(root: &str, uri: &str) -> String {
        let request = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        strip_root_path(root)(request).uri().to_string()
    }

    #[test]
    fn root_path_is_stripped_on_segment_boundaries() {
        assert_eq!(strip("/api", "/api/v2/health/ready"), "/v2/health/ready");
        assert_eq!(strip("/api/", "/api/v2?x=1"), "/v2?x=1");
        assert_eq!(strip("/api", "/api"), "/");
        assert_eq!(strip("/api", "/apix/v2"), "/apix/v2");
        assert_eq!(strip("/api", "/v2/health/live"), "/v2/health/live");
        assert_eq!(strip("", "/v2"), "/v2");
    }

    #[test]
    fn stripped_requests_are_marked() {
        let marked = |root: &str, uri: &str| {
            let request = Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            strip_root_path(root)(request)
                .extensions()
                .get::<UnderRootPath>()
                .is_some()
        };
        assert!(marked("/api", "/api/v2/docs/"));
        assert!(!marked("/api", "/v2/docs/"));
        assert!(!marked("", "/v2/docs/"));
    }
}
