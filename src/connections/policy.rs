//! The connection settings of one listener (REST, gRPC, metrics), built from the server's [`Settings`].

use std::time::Duration;

use super::fd_limit;
use super::state::Timeouts;
use crate::config::Settings;

/// Most connections the metrics listener takes (a Prometheus server scrapes over one or two).
const METRICS_MAX_CONNECTIONS: usize = 16;

/// How one listener serves its connections.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The listener, for log lines.
    pub name: &'static str,
    /// Header-read and idle timeouts.
    pub timeouts: Timeouts,
    /// Most open connections; at the cap the longest-idle one is closed to make room.
    pub max_connections: usize,
    /// Speak only HTTP/2 (gRPC); otherwise HTTP/1.1 and HTTP/2 (h2c, by its preface).
    pub http2_only: bool,
    pub http2: Http2Limits,
    /// Bytes written to a connection refused at the cap before it is closed (an HTTP/1.1 503 on REST).
    pub refusal: Option<Vec<u8>>,
}

/// HTTP/2 settings.
#[derive(Debug, Clone, Default)]
pub struct Http2Limits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised and enforced (`http2_max_concurrent_streams`, at least 1: 0
    /// would refuse every call).
    pub max_concurrent_streams: u32,
    /// Interval of keep-alive pings; `None`: no pings.
    pub keep_alive_interval: Option<Duration>,
    /// A ping unanswered this long closes the connection.
    pub keep_alive_timeout: Option<Duration>,
    /// Flow-control windows and frame size; `None`: hyper's defaults.
    pub stream_window: Option<u32>,
    pub connection_window: Option<u32>,
    pub max_frame_size: Option<u32>,
}

/// `seconds` as a duration; 0, negative or not a number: `None` (no limit).
pub fn seconds(seconds: f64) -> Option<Duration> {
    (seconds > 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).ok())
        .flatten()
}

/// `max_connections`, or its default from the open-file limit; the soft open-file limit is raised to the hard
/// limit first either way. Logs the cap, and warns when a configured cap leaves too few descriptors.
pub fn max_connections(settings: &Settings) -> usize {
    let open_files = fd_limit::raise_open_file_limit();
    let derived = fd_limit::default_max_connections(open_files);
    let cap = settings.max_connections.unwrap_or(derived).max(1);
    let files = open_files.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    tracing::info!(
        max_connections = cap,
        open_file_limit = %files,
        "at most {cap} connections per listener (REST, gRPC; open-file limit {files})"
    );
    let configured = settings.max_connections.is_some();
    if configured && open_files.is_some_and(|n| !fd_limit::leaves_room(cap, n)) {
        tracing::warn!(
            "max_connections ({cap}) leaves too few of the open-file limit's {files} \
             descriptors (the default would be {derived}): at the limit, new connections wait in the kernel's \
             queue instead of evicting idle ones"
        );
    }
    cap
}

impl Policy {
    /// The REST listener: HTTP/1.1 and h2c, header-read and keep-alive timeouts, a 503 when refused at the cap.
    pub fn rest(settings: &Settings, max_connections: usize) -> Policy {
        let body = format!(
            "{{\"error\":\"the server is at max_connections ({max_connections}) with every connection busy; \
             retry later\"}}"
        );
        let refusal = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
             retry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Policy {
            name: "REST",
            timeouts: Timeouts {
                header_read: seconds(settings.http_header_read_timeout),
                idle: seconds(settings.http_keep_alive_timeout),
            },
            max_connections,
            http2_only: false,
            http2: Http2Limits {
                max_concurrent_streams: settings.http2_max_concurrent_streams.max(1),
                ..Http2Limits::default()
            },
            refusal: Some(refusal.into_bytes()),
        }
    }

    /// The metrics listener: as REST, with at most [`METRICS_MAX_CONNECTIONS`] connections.
    pub fn metrics(settings: &Settings, max_connections: usize) -> Policy {
        Policy {
            name: "metrics",
            max_connections: max_connections.min(METRICS_MAX_CONNECTIONS),
            ..Policy::rest(settings, max_connections.min(METRICS_MAX_CONNECTIONS))
        }
    }

    /// The gRPC listener: HTTP/2 only, keep-alive pings; an idle connection is kept (clients hold channels open
    /// between calls) but is the first to go at the cap. A connection must still start its first call within the
    /// header-read timeout.
    pub fn grpc(settings: &Settings, max_connections: usize) -> Policy {
        Policy {
            name: "gRPC",
            timeouts: Timeouts {
                header_read: seconds(settings.http_header_read_timeout),
                idle: None,
            },
            max_connections,
            http2_only: true,
            http2: Http2Limits {
                max_concurrent_streams: settings.http2_max_concurrent_streams.max(1),
                keep_alive_interval: seconds(settings.grpc_keepalive_time),
                keep_alive_timeout: seconds(settings.grpc_keepalive_timeout),
                ..Http2Limits::default()
            },
            refusal: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_zero_or_absurd_is_no_limit() {
        assert_eq!(seconds(0.0), None);
        assert_eq!(seconds(-1.0), None);
        assert_eq!(seconds(f64::NAN), None);
        assert_eq!(seconds(1e308), None);
        assert_eq!(seconds(1.5), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn the_policies_follow_the_settings() {
        let settings = Settings::default();
        let rest = Policy::rest(&settings, 100);
        assert_eq!(rest.timeouts.header_read, Some(Duration::from_secs(30)));
        assert_eq!(rest.timeouts.idle, Some(Duration::from_secs(75)));
        assert_eq!(rest.http2.max_concurrent_streams, 256);
        let refusal = String::from_utf8(rest.refusal.unwrap()).unwrap();
        assert!(refusal.starts_with("HTTP/1.1 503 "), "{refusal}");
        let body = refusal.split("\r\n\r\n").nth(1).unwrap();
        assert!(refusal.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
        let grpc = Policy::grpc(&settings, 100);
        assert!(grpc.http2_only && grpc.refusal.is_none() && grpc.timeouts.idle.is_none());
        assert_eq!(
            grpc.http2.keep_alive_interval,
            Some(Duration::from_secs(60))
        );
        assert_eq!(Policy::metrics(&settings, 100).max_connections, 16);
    }
}
