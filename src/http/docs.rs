//! The documentation routes: Swagger UI and the OpenAPI documents, for the whole dataplane (`/v2/docs`) and for
//! one model (`/v2/models/{name}[/versions/{version}]/docs`). They are not part of the documented API.
//!
//! The documents served here name the path prefix the client reached the server under as their `servers`, so
//! that Swagger UI's "Execute" goes through the same proxy as the page: `root_path` (MLServer's setting, the
//! prefix a proxy strips or keeps), and the `X-Forwarded-Prefix` header of a proxy that strips a prefix. The
//! header is untrusted: only a plain path of safe characters and bounded length is used, anything else is ignored.
//! Without a prefix the dataplane document is the committed text of openapi/dataplane.json (no `servers`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;
use utoipa::openapi::server::Server;
use utoipa::openapi::OpenApi;

use super::middleware::UnderRootPath;
use super::{openapi, swagger};
use crate::error::Error;
use crate::service::DataPlane;

/// The header a prefix-stripping proxy names the stripped prefix in.
pub const FORWARDED_PREFIX: &str = "x-forwarded-prefix";

/// The longest `X-Forwarded-Prefix` taken into account, in bytes.
pub const MAX_FORWARDED_PREFIX: usize = 256;

/// `{name}`, optional `{version}` and optional `{file}` of a documentation route.
#[derive(Debug, Deserialize)]
struct DocsPath {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

/// The documentation routes, for the dataplane and for each model (with and without a version).
pub fn routes() -> Router<Arc<DataPlane>> {
    let mut router = Router::new()
        .route("/v2/docs", get(|| async { swagger::to_folder() }))
        .route("/v2/docs/", get(|| async { swagger::index() }))
        .route("/v2/docs/dataplane.json", get(dataplane))
        .route("/v2/docs/{file}", get(file));
    for base in [
        "/v2/models/{name}/docs",
        "/v2/models/{name}/versions/{version}/docs",
    ] {
        router = router
            .route(base, get(model_folder))
            .route(&format!("{base}/"), get(model_index))
            .route(&format!("{base}/{{file}}"), get(file));
    }
    router
}

/// Whether the request arrived under `root_path` (see [`UnderRootPath`]).
type RootMark = Option<Extension<UnderRootPath>>;

async fn dataplane(
    State(service): State<Arc<DataPlane>>,
    under_root: RootMark,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let prefix = server_prefix(service.settings(), &headers, under_root.is_some());
    if prefix.is_empty() {
        return Ok(json_response(openapi::dataplane_json().to_owned()));
    }
    let mut document = openapi::dataplane().clone();
    set_servers(&mut document, prefix);
    Ok(json_response(to_json(&document)?))
}

/// Answers 404 unless the model (version) is in the repository; a model still loading has its page.
fn check_model(service: &DataPlane, path: &DocsPath) -> Result<(), Error> {
    match &path.name {
        Some(name) => service
            .model_ready(name, path.version.as_deref())
            .map(|_| ()),
        None => Ok(()),
    }
}

async fn model_folder(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<DocsPath>,
) -> Result<Response, Error> {
    check_model(&service, &path)?;
    Ok(swagger::to_folder())
}

async fn model_index(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<DocsPath>,
) -> Result<Response, Error> {
    check_model(&service, &path)?;
    Ok(swagger::index())
}

/// A file of a docs folder: the model's document, or a Swagger UI asset.
async fn file(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<DocsPath>,
    under_root: RootMark,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_model(&service, &path)?;
    let file = path.file.as_deref().unwrap_or_default();
    if let Some(asset) = swagger::asset(file, &headers) {
        return Ok(asset);
    }
    match (file, path.name.as_deref()) {
        ("dataplane.json", Some(name)) => {
            let metadata = service.model_metadata(name, path.version.as_deref())?;
            let mut document = openapi::model_document(&metadata, path.version.as_deref());
            let prefix = server_prefix(service.settings(), &headers, under_root.is_some());
            if !prefix.is_empty() {
                set_servers(&mut document, prefix);
            }
            Ok(json_response(to_json(&document)?))
        }
        _ => Err(Error::NotFoundRoute(format!(
            "no documentation file {file}"
        ))),
    }
}

/// The prefix before `/v2` in the URLs the client used: the forwarded prefix (followed by `root_path` when the
/// request still carried it), else `root_path`. Empty when there is none.
fn server_prefix(
    settings: &crate::config::Settings,
    headers: &HeaderMap,
    under_root: bool,
) -> String {
    let root = settings.root_path.trim_end_matches('/');
    match forwarded_prefix(headers) {
        Some(forwarded) if under_root => format!("{forwarded}{root}"),
        Some(forwarded) => forwarded,
        None => root.to_string(),
    }
}

/// The `X-Forwarded-Prefix` of the request without its trailing `/`, when there is exactly one and it is a safe
/// path (see [`safe_prefix`]); `None` otherwise.
pub fn forwarded_prefix(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(FORWARDED_PREFIX).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    safe_prefix(value.to_str().ok()?.trim())
}

/// `text` without its trailing `/` when it is an absolute path of at most [`MAX_FORWARDED_PREFIX`] bytes made
/// of non-empty segments of ASCII letters, digits and `-._~`, none of them `.` or `..`: nothing that could make
/// the document point at another host (`//host`), escape its folder or carry markup.
pub fn safe_prefix(text: &str) -> Option<String> {
    if text.len() > MAX_FORWARDED_PREFIX || !text.starts_with('/') {
        return None;
    }
    let trimmed = text.trim_end_matches('/');
    let safe = trimmed.split('/').skip(1).all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    });
    safe.then(|| trimmed.to_string())
}

fn set_servers(document: &mut OpenApi, prefix: String) {
    let mut server = Server::new(prefix);
    server.description = Some("the path prefix this document was requested under".into());
    document.servers = Some(vec![server]);
}

fn to_json(document: &OpenApi) -> Result<String, Error> {
    let mut json = serde_json::to_string_pretty(document)
        .map_err(|e| Error::Internal(format!("cannot write the document: {e}")))?;
    json.push('\n');
    Ok(json)
}

/// A document: it depends on the request's `X-Forwarded-Prefix`, which caches must know.
fn json_response(json: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::VARY, FORWARDED_PREFIX),
        ],
        json,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(values: &[&[u8]]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(FORWARDED_PREFIX, HeaderValue::from_bytes(v).unwrap());
        }
        forwarded_prefix(&headers)
    }

    #[test]
    fn only_safe_forwarded_prefixes_are_used() {
        assert_eq!(forwarded(&[b"/prefix"]).as_deref(), Some("/prefix"));
        assert_eq!(
            forwarded(&[b" /a/b-c_d.e~f/ "]).as_deref(),
            Some("/a/b-c_d.e~f")
        );
        assert_eq!(forwarded(&[b"/"]).as_deref(), Some(""));
        assert_eq!(forwarded(&[]), None);
        for bad in [
            &b"prefix"[..],
            b"//evil.example",
            b"/a//b",
            b"/a/../b",
            b"/./a",
            b"/a b",
            b"/a?b",
            b"/a#b",
            b"/a%2fb",
            b"/<script>",
            b"/\"x",
            b"https://evil.example/",
            b"/caf\xc3\xa9",
            b"",
        ] {
            assert_eq!(
                forwarded(&[bad]),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(forwarded(&[b"/a", b"/b"]), None, "two values");
        let long = format!("/{}", "a".repeat(MAX_FORWARDED_PREFIX));
        assert_eq!(forwarded(&[long.as_bytes()]), None);
        let longest = format!("/{}", "a".repeat(MAX_FORWARDED_PREFIX - 1));
        assert_eq!(forwarded(&[longest.as_bytes()]), Some(longest.clone()));
    }

    #[test]
    fn the_prefix_follows_root_path_and_the_forwarded_prefix() {
        let mut settings = crate::config::Settings::default();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(FORWARDED_PREFIX, HeaderValue::from_static(v));
            h
        };
        let none = HeaderMap::new();
        assert_eq!(server_prefix(&settings, &none, false), "");
        assert_eq!(server_prefix(&settings, &with("/p/"), false), "/p");
        assert_eq!(server_prefix(&settings, &with("/a b"), false), "");
        settings.root_path = "/api/".into();
        assert_eq!(server_prefix(&settings, &none, false), "/api");
        assert_eq!(server_prefix(&settings, &none, true), "/api");
        // A proxy that stripped /p and forwarded /api/v2/...: the client used /p/api.
        assert_eq!(server_prefix(&settings, &with("/p"), true), "/p/api");
        // A proxy that stripped the root path itself and says so.
        assert_eq!(server_prefix(&settings, &with("/api"), false), "/api");
        assert_eq!(server_prefix(&settings, &with("//evil"), false), "/api");
    }
}
