//! The Swagger UI page, served from the binary: the page itself and the vendored, gzipped Swagger UI bundle
//! and stylesheet (src/http/swagger-ui/, refreshed by scripts/vendor-swagger-ui.sh). Nothing is fetched from the
//! internet: the page loads its assets and the document by relative URLs, so it also works behind a path prefix.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The page: Swagger UI reading `dataplane.json` next to it, without the online validator badge.
const INDEX_HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>oxinfer API</title>
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
}

const ASSETS: [Asset; 2] = [
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "application/javascript",
        gzipped: include_bytes!("swagger-ui/swagger-ui-bundle.js.gz"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css",
        gzipped: include_bytes!("swagger-ui/swagger-ui.css.gz"),
    },
];

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

/// A vendored asset by file name, `None` when there is no such file. Served gzipped, as browsers accept.
pub fn asset(name: &str) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    Some(
        (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
                (header::VARY, HeaderValue::from_static("accept-encoding")),
            ],
            asset.gzipped,
        )
            .into_response(),
    )
}

/// A redirect from `.../docs` to `.../docs/`, relative so that it holds behind a path prefix.
pub fn to_folder() -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, "docs/")],
    )
        .into_response()
}
