//! REST metrics (starlette_exporter's, under MLServer's `rest_server` prefix): requests, duration and requests
//! in progress. The `path` label is the matched route template in MLServer's spelling
//! (`/v2/models/{model_name}/infer`), never the raw URI; requests that match no route share `unmatched`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Gauge, Label};

use super::{Metrics, APP_NAME};

/// The `path` label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// A route template with MLServer's parameter names (`{name}` -> `{model_name}`, `{version}` -> `{model_version}`).
pub fn route_label(template: &str) -> String {
    template
        .replace("{name}", "{model_name}")
        .replace("{version}", "{model_version}")
}

/// The method label; methods outside the standard set share `OTHER` (bounded labels).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// Decrements the in-progress gauge however the request ends (also when the client goes away).
struct InProgress(Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Axum middleware recording `rest_server_*` for each request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()))
        .unwrap_or_else(|| UNMATCHED.to_string());
    let gauge = metrics.gauge(
        metrics.rest_names.in_progress.clone(),
        vec![
            Label::new("method", method),
            Label::new("app_name", APP_NAME),
        ],
    );
    gauge.increment(1.0);
    let in_progress = InProgress(gauge);
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    drop(in_progress);
    let labels = vec![
        Label::new("method", method),
        Label::new("path", path),
        Label::new("status_code", response.status().as_u16().to_string()),
        Label::new("app_name", APP_NAME),
    ];
    metrics
        .counter(metrics.rest_names.requests.clone(), labels.clone())
        .increment(1);
    metrics
        .histogram(metrics.rest_names.duration.clone(), labels)
        .record(elapsed.as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_use_mlserver_names() {
        assert_eq!(
            route_label("/v2/models/{name}/versions/{version}/infer"),
            "/v2/models/{model_name}/versions/{model_version}/infer"
        );
        assert_eq!(route_label("/v2/health/ready"), "/v2/health/ready");
    }
}
