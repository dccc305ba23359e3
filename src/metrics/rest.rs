//! REST metrics (starlette_exporter's, under MLServer's `rest_server` prefix): requests, duration and requests
//! in progress. The `path` label is the matched route template in MLServer's spelling
//! (`/v2/models/{model_name}/infer`), never the raw URI; requests that match no route share `unmatched`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram, Label};

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

/// The counter and histogram of one (route, method, status).
struct RouteHandles {
    requests: Counter,
    duration: Histogram,
}

/// Route template -> (method, status) -> handles.
type RouteMap = HashMap<String, HashMap<(&'static str, u16), Arc<RouteHandles>>>;

/// Handles already registered, so that a request costs map lookups and atomics, no allocation.
#[derive(Default)]
pub struct RestHandles {
    routes: RwLock<RouteMap>,
    in_progress: RwLock<HashMap<&'static str, Gauge>>,
}

impl Metrics {
    fn in_progress(&self, method: &'static str) -> Gauge {
        let cache = &self.rest_handles.in_progress;
        if let Some(gauge) = cache.read().unwrap_or_else(|e| e.into_inner()).get(method) {
            return gauge.clone();
        }
        let gauge = self.gauge(
            self.rest_names.in_progress.clone(),
            vec![
                Label::new("method", method),
                Label::new("app_name", APP_NAME),
            ],
        );
        let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
        cache.entry(method).or_insert(gauge).clone()
    }

    fn route(
        &self,
        template: Option<&str>,
        method: &'static str,
        status: u16,
    ) -> Arc<RouteHandles> {
        let template = template.unwrap_or(UNMATCHED);
        let cache = &self.rest_handles.routes;
        if let Some(handles) = cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(template)
            .and_then(|m| m.get(&(method, status)))
        {
            return handles.clone();
        }
        let path = if template == UNMATCHED {
            UNMATCHED.to_string()
        } else {
            route_label(template)
        };
        let labels = vec![
            Label::new("method", method),
            Label::new("path", path),
            Label::new("status_code", status.to_string()),
            Label::new("app_name", APP_NAME),
        ];
        let handles = Arc::new(RouteHandles {
            requests: self.counter(self.rest_names.requests.clone(), labels.clone()),
            duration: self.histogram(self.rest_names.duration.clone(), labels),
        });
        let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(template.to_string())
            .or_default()
            .entry((method, status))
            .or_insert(handles)
            .clone()
    }
}

/// Axum middleware recording `rest_server_*` for each request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let template = request.extensions().get::<MatchedPath>().cloned();
    let gauge = metrics.in_progress(method);
    gauge.increment(1.0);
    let in_progress = InProgress(gauge);
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    drop(in_progress);
    let handles = metrics.route(
        template.as_ref().map(MatchedPath::as_str),
        method,
        response.status().as_u16(),
    );
    handles.requests.increment(1);
    handles.duration.record(elapsed.as_secs_f64());
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
