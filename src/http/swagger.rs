//! The Swagger UI page, served from the binary: the page itself and the vendored, gzipped Swagger UI bundle
//! and stylesheet (src/http/swagger-ui/, refreshed by scripts/vendor-swagger-ui.sh). Nothing is fetched from the
//! internet: the page loads its assets and the document by relative URLs, so it also works behind a path prefix.
//! The assets go out gzip-encoded to clients that accept gzip (every browser), decompressed to the others.

use std::io::Read;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The page: Swagger UI reading `dataplane.json` next to it, without the online validator badge, and with an
/// empty icon so that browsers do not ask for `/favicon.ico` (outside the prefix behind a proxy).
const INDEX_HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>oxinfer API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" type="text/css" href="swagger-ui.css">
<style>body { margin: 0; }</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js" charset="UTF-8"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "dataplane.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: true,
  displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
</script>
</body>
</html>
"##;

/// A vendored file: its name in the page's folder, content type and gzipped bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    gzipped: &'static [u8],
    /// The decompressed bytes, made on the first request that does not accept gzip.
    plain: OnceLock<Vec<u8>>,
}

static ASSETS: [Asset; 2] = [
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "application/javascript",
        gzipped: include_bytes!("swagger-ui/swagger-ui-bundle.js.gz"),
        plain: OnceLock::new(),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css",
        gzipped: include_bytes!("swagger-ui/swagger-ui.css.gz"),
        plain: OnceLock::new(),
    },
];

impl Asset {
    /// The decompressed bytes (the vendored files are checked by a test, so this cannot fail at run time;
    /// if it did, the body would be empty rather than the server panicking).
    fn plain(&self) -> &[u8] {
        self.plain.get_or_init(|| {
            let mut out = Vec::new();
            if let Err(e) = flate2::read::GzDecoder::new(self.gzipped).read_to_end(&mut out) {
                tracing::error!(asset = self.name, %e, "vendored Swagger UI asset is not valid gzip");
                out.clear();
            }
            out
        })
    }
}

/// Whether `Accept-Encoding` allows gzip: `gzip`, `x-gzip` or `*`, with a quality above 0.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(quality > 0.0),
                "*" => star = Some(quality > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// The Swagger UI page.
pub fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// A vendored asset by file name, `None` when there is no such file: gzip-encoded when the request's
/// `Accept-Encoding` allows it, else decompressed.
pub fn asset(name: &str, request_headers: &HeaderMap) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let mut response = if accepts_gzip(request_headers) {
        let mut response = asset.gzipped.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        asset.plain().into_response()
    };
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Some(response)
}

/// A redirect from `.../docs` to `.../docs/`, relative so that it holds behind a path prefix.
pub fn to_folder() -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, "docs/")],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn gzip_is_accepted_only_when_asked_for() {
        assert!(accepts_gzip(&accept("gzip, deflate, br")));
        assert!(accepts_gzip(&accept("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("gzip;q=0")));
        assert!(!accepts_gzip(&accept("gzip;q=0, *")));
        assert!(!accepts_gzip(&accept("identity")));
        assert!(!accepts_gzip(&accept("deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn assets_decompress() {
        for asset in &ASSETS {
            assert!(asset.plain().len() > asset.gzipped.len(), "{}", asset.name);
        }
        let plain = asset("swagger-ui.css", &HeaderMap::new()).unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let gzipped = asset("swagger-ui.css", &accept("gzip")).unwrap();
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    }
}
