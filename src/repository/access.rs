//! Who may use the model repository API (index, load, unload), for both transports: whether it is served at
//! all (`repository_api_enabled`), the bearer token (`repository_api_token[_file]`), and, for the mutating
//! routes over REST, the refusal of what a web page can send cross-site without a CORS preflight.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::config::{CorsSettings, Secret, Settings};
use crate::error::Error;

/// The repository API's access rules, built once from the settings.
pub struct RepositoryAccess {
    enabled: bool,
    token: Option<Secret>,
    /// Origins allowed by `cors_settings` (empty, with no regex, when CORS is off).
    origins: Vec<String>,
    any_origin: bool,
    origin_regex: Option<regex_lite::Regex>,
}

impl RepositoryAccess {
    /// The rules of these settings (the token file was read into `repository_api_token` at start).
    pub fn from_settings(settings: &Settings) -> RepositoryAccess {
        let cors = settings.cors_settings.clone().unwrap_or(CorsSettings {
            allow_origins: Vec::new(),
            allow_origin_regex: None,
            ..CorsSettings::default()
        });
        RepositoryAccess {
            enabled: settings.repository_api_enabled,
            token: settings.repository_api_token.clone(),
            any_origin: cors.allow_origins.iter().any(|o| o == "*"),
            origins: cors.allow_origins,
            origin_regex: cors
                .allow_origin_regex
                .and_then(|r| regex_lite::Regex::new(&format!("^(?:{r})$")).ok()),
        }
    }

    /// Whether the repository API is served (and `GET /v2` advertises `model_repository`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The API is enabled and, when a token is set, `authorization` is `Bearer <token>` (compared in constant
    /// time). Errors: 403 / PERMISSION_DENIED when disabled, 401 / UNAUTHENTICATED without the right token.
    pub fn authorize(&self, authorization: Option<&[u8]>) -> Result<(), Error> {
        if !self.enabled {
            return Err(Error::Forbidden(
                "the model repository API is disabled on this server (repository_api_enabled is false)"
                    .into(),
            ));
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = authorization.and_then(bearer);
        match presented {
            Some(presented) if same_secret(presented, token.expose().as_bytes()) => Ok(()),
            Some(_) => Err(Error::Unauthenticated(
                "the model repository API token is wrong".into(),
            )),
            None => Err(Error::Unauthenticated(
                "the model repository API needs a token: send 'Authorization: Bearer <token>'"
                    .into(),
            )),
        }
    }

    /// For a mutating REST route (load, unload): [`Self::authorize`], then refuses what a browser sends
    /// cross-site without a preflight: an `Origin` other than the server's own that `cors_settings` does not
    /// allow, and the bodies of HTML forms and `fetch` without headers (`text/plain`,
    /// `application/x-www-form-urlencoded`, `multipart/form-data`). Clients send JSON, octet-stream (aiohttp)
    /// or no Content-Type at all, and no `Origin`. 403 with the reason.
    pub fn authorize_mutation(&self, headers: &HeaderMap) -> Result<(), Error> {
        self.authorize(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )?;
        if let Some(origin) = headers.get(header::ORIGIN) {
            if !self.origin_allowed(origin, headers.get(header::HOST)) {
                return Err(Error::Forbidden(format!(
                    "cross-site request refused: origin {} is not allowed by cors_settings",
                    shown_header(origin)
                )));
            }
        }
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            if is_simple_form_type(content_type) {
                return Err(Error::Forbidden(format!(
                    "the repository API takes JSON bodies (Content-Type: application/json); {} is refused, \
                     as any web page can send it cross-site",
                    shown_header(content_type)
                )));
            }
        }
        Ok(())
    }

    /// The origin is the server's own (same scheme-less host as the `Host` header) or allowed by
    /// `cors_settings`.
    fn origin_allowed(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let authority = origin
            .split_once("://")
            .map_or(origin, |(_, authority)| authority);
        let same_origin = host
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(authority));
        same_origin
            || self.any_origin
            || self.origins.iter().any(|o| o == origin)
            || self
                .origin_regex
                .as_ref()
                .is_some_and(|regex| regex.is_match(origin))
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive), trimmed.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first().is_some_and(u8::is_ascii_whitespace)
    {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Equality whose time does not depend on where the bytes differ (only on the length).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    difference == 0
}

/// The Content-Types a browser may send cross-site without a preflight (the CORS-safelisted ones).
fn is_simple_form_type(value: &HeaderValue) -> bool {
    let essence = value
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    [
        b"text/plain".as_slice(),
        b"application/x-www-form-urlencoded",
        b"multipart/form-data",
    ]
    .iter()
    .any(|simple| essence.eq_ignore_ascii_case(simple))
}

/// A header value for a message: at most 100 bytes, printable.
fn shown_header(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut shown: String = text.chars().take(100).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>, cors: Option<CorsSettings>) -> RepositoryAccess {
        RepositoryAccess::from_settings(&Settings {
            repository_api_token: token.map(|t| Secret::new(t.into())),
            cors_settings: cors,
            ..Settings::default()
        })
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn tokens_are_checked() {
        let open = access(None, None);
        assert!(open.authorize(None).is_ok());
        let guarded = access(Some("s3cret"), None);
        assert!(guarded.authorize(Some(b"Bearer s3cret")).is_ok());
        assert!(guarded.authorize(Some(b"bearer   s3cret ")).is_ok());
        assert!(matches!(
            guarded.authorize(Some(b"Bearer wrong")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            guarded.authorize(Some(b"Basic s3cret")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            guarded.authorize(None),
            Err(Error::Unauthenticated(_))
        ));
        let off = RepositoryAccess::from_settings(&Settings {
            repository_api_enabled: false,
            ..Settings::default()
        });
        assert!(matches!(off.authorize(None), Err(Error::Forbidden(_))));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let rules = access(None, None);
        assert!(rules.authorize_mutation(&headers(&[])).is_ok());
        assert!(rules
            .authorize_mutation(&headers(&[("content-type", "application/json")]))
            .is_ok());
        assert!(rules
            .authorize_mutation(&headers(&[("content-type", "application/octet-stream")]))
            .is_ok());
        for simple in [
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "Multipart/Form-Data; boundary=x",
        ] {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static(simple));
            let err = rules.authorize_mutation(&h).unwrap_err();
            assert!(matches!(err, Error::Forbidden(_)), "{simple}");
        }
        let evil = headers(&[("origin", "https://evil.example"), ("host", "models:8080")]);
        assert!(rules
            .authorize_mutation(&evil)
            .unwrap_err()
            .to_string()
            .contains("https://evil.example"));
        let same = headers(&[("origin", "http://models:8080"), ("host", "models:8080")]);
        assert!(rules.authorize_mutation(&same).is_ok());
        let listed = access(
            None,
            Some(CorsSettings {
                allow_origins: vec!["https://ui.example".into()],
                allow_origin_regex: Some("https://.*\\.corp".into()),
                ..CorsSettings::default()
            }),
        );
        let ui = headers(&[("origin", "https://ui.example"), ("host", "models:8080")]);
        assert!(listed.authorize_mutation(&ui).is_ok());
        let corp = headers(&[("origin", "https://a.corp"), ("host", "models:8080")]);
        assert!(listed.authorize_mutation(&corp).is_ok());
        assert!(listed.authorize_mutation(&evil).is_err());
    }
}
