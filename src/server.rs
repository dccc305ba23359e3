//! Binding the listeners and running the server until it is told to stop, then draining in-flight requests.
//! Each listener's connections are served by [`crate::connections`] (timeouts, the connection cap, HTTP/2 limits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::{Layer, ServiceExt};

use crate::config::Settings;
use crate::connections::{self, Policy};
use crate::http::middleware;
use crate::service::DataPlane;

/// How often recorded histogram samples are folded into their buckets when nobody scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// A started server: its bound addresses, its core, and the handle that stops it.
pub struct RunningServer {
    /// The REST listener's address (useful with port 0).
    pub http_addr: SocketAddr,
    /// The gRPC listener's address (useful with port 0).
    pub grpc_addr: SocketAddr,
    /// The metrics listener's address; `None` when `metrics_endpoint` is null.
    pub metrics_addr: Option<SocketAddr>,
    pub service: Arc<DataPlane>,
    /// Set to true to stop accepting connections and start draining.
    stop: watch::Sender<bool>,
    http_task: JoinHandle<std::io::Result<()>>,
    grpc_task: JoinHandle<std::io::Result<()>>,
    metrics_task: Option<JoinHandle<std::io::Result<()>>>,
    upkeep_task: Option<JoinHandle<()>>,
}

/// Binds `host:port`, naming the address in the error.
async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}")))
}

/// Binds the REST listener on `host:http_port`, the gRPC listener on `host:grpc_port` and, unless metrics are
/// off, the metrics listener on `host:metrics_port`, and starts serving; models load in the background
/// (readiness turns true once they have).
pub async fn start(settings: Settings) -> std::io::Result<RunningServer> {
    let listener = bind(&settings.host, settings.http_port).await?;
    let grpc_listener = bind(&settings.host, settings.grpc_port).await?;
    let metrics_listener = match &settings.metrics_endpoint {
        Some(_) => Some(bind(&settings.host, settings.metrics_port).await?),
        None => None,
    };
    let http_addr = listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let root_path = settings.root_path.clone();
    let max_connections = connections::policy::max_connections(&settings);
    let rest_policy = Policy::rest(&settings, max_connections);
    let metrics_policy = Policy::metrics(&settings, max_connections);
    let grpc_policy = Policy::grpc(&settings, max_connections);
    let telemetry = crate::telemetry::Telemetry::start(&settings)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message()))?;
    let service = DataPlane::with_telemetry(settings, telemetry);
    let loader = service.clone();
    tokio::spawn(async move { loader.load_at_startup().await });
    let (stop, stop_rx) = watch::channel(false);

    let routes = middleware::wrap(crate::http::router(service.clone()), &service);
    let app =
        tower::util::MapRequestLayer::new(middleware::strip_root_path(&root_path)).layer(routes);
    let app = app.map_request(|request: axum::http::Request<hyper::body::Incoming>| {
        request.map(axum::body::Body::new)
    });
    let http_task = tokio::spawn(connections::serve(
        listener,
        app,
        rest_policy,
        stop_rx.clone(),
    ));
    tracing::info!(address = %http_addr, "HTTP server listening on {http_addr}");

    let grpc_service = service.clone();
    let grpc_stop = stop_rx.clone();
    let grpc_task = tokio::spawn(async move {
        let result = crate::grpc::serve(grpc_listener, grpc_service, grpc_policy, grpc_stop).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the gRPC server stopped");
        }
        result
    });
    tracing::info!(address = %grpc_addr, "gRPC server listening on {grpc_addr}");

    let (metrics_task, upkeep_task) =
        match (metrics_listener, &service.settings().metrics_endpoint) {
            (Some(metrics_listener), Some(endpoint)) => {
                let app = crate::http::metrics_endpoint::router(service.clone(), endpoint)
                    .map_request(|request: axum::http::Request<hyper::body::Incoming>| {
                        request.map(axum::body::Body::new)
                    });
                let task = tokio::spawn(connections::serve(
                    metrics_listener,
                    app,
                    metrics_policy,
                    stop_rx.clone(),
                ));
                let metrics = service.metrics().clone();
                let upkeep = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(METRICS_UPKEEP);
                    loop {
                        tick.tick().await;
                        metrics.run_upkeep();
                    }
                });
                if let Some(addr) = metrics_addr {
                    tracing::info!(address = %addr, "Metrics server listening on {addr}{endpoint}");
                }
                (Some(task), Some(upkeep))
            }
            _ => (None, None),
        };
    Ok(RunningServer {
        http_addr,
        grpc_addr,
        metrics_addr,
        service,
        stop,
        http_task,
        grpc_task,
        metrics_task,
        upkeep_task,
    })
}

impl RunningServer {
    /// Stops accepting connections on every listener and waits up to `grace` for in-flight requests (REST and
    /// gRPC) to finish, then exports the traces still queued (when tracing is on); returns whether the requests
    /// all finished.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let service = self.service.clone();
        let drained = self.drain(grace).await;
        if let Some(telemetry) = service.telemetry() {
            telemetry.shutdown().await;
        }
        drained
    }

    /// Stops the listeners and waits up to `grace` for in-flight requests.
    async fn drain(mut self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        if let Some(upkeep) = self.upkeep_task.take() {
            upkeep.abort();
        }
        let (http, grpc, metrics) = (
            &mut self.http_task,
            &mut self.grpc_task,
            &mut self.metrics_task,
        );
        let all = async {
            let _ = tokio::join!(http, grpc, async {
                if let Some(task) = metrics {
                    let _ = task.await;
                }
            });
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
            // Aborting a listener's task drops its connections too.
            self.http_task.abort();
            self.grpc_task.abort();
            if let Some(task) = &self.metrics_task {
                task.abort();
            }
            return false;
        }
        true
    }
}
