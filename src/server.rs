//! Binding the listeners and running the server until it is told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::service::Service;

/// A started server: its bound addresses, its core, and the handle that stops it.
pub struct RunningServer {
    /// The REST listener's address (useful with port 0).
    pub http_addr: SocketAddr,
    /// The gRPC listener's address (useful with port 0).
    pub grpc_addr: SocketAddr,
    pub service: Arc<Service>,
    shutdown: Option<oneshot::Sender<()>>,
    http_task: JoinHandle<std::io::Result<()>>,
    grpc_shutdown: Option<oneshot::Sender<()>>,
    grpc_task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Binds `host:port`, naming the address in the error.
async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}")))
}

/// Binds the REST listener on `host:http_port` and the gRPC listener on `host:grpc_port` and starts serving;
/// models load in the background (readiness turns true once they have).
pub async fn start(settings: Settings) -> std::io::Result<RunningServer> {
    let listener = bind(&settings.host, settings.http_port).await?;
    let grpc_listener = bind(&settings.host, settings.grpc_port).await?;
    let http_addr = listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;
    let service = Service::new(settings);
    let loader = service.clone();
    tokio::spawn(async move { loader.load_at_startup().await });
    let app = crate::http::router(service.clone());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_rx.await;
            })
            .await
    });
    tracing::info!(address = %http_addr, "HTTP server listening on {http_addr}");
    let (grpc_shutdown_tx, grpc_shutdown_rx) = oneshot::channel::<()>();
    let grpc_service = service.clone();
    let grpc_task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = grpc_shutdown_rx.await;
        };
        let result = crate::grpc::serve(grpc_listener, grpc_service, shutdown).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the gRPC server stopped");
        }
        result
    });
    tracing::info!(address = %grpc_addr, "gRPC server listening on {grpc_addr}");
    Ok(RunningServer {
        http_addr,
        grpc_addr,
        service,
        shutdown: Some(shutdown_tx),
        http_task,
        grpc_shutdown: Some(grpc_shutdown_tx),
        grpc_task,
    })
}

impl RunningServer {
    /// Stops accepting connections on both listeners and waits up to `grace` for in-flight requests to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        for tx in [self.shutdown.take(), self.grpc_shutdown.take()]
            .into_iter()
            .flatten()
        {
            let _ = tx.send(());
        }
        let both = async { tokio::join!(&mut self.http_task, &mut self.grpc_task) };
        if tokio::time::timeout(grace, both).await.is_err() {
            tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
            self.http_task.abort();
            self.grpc_task.abort();
        }
    }
}
