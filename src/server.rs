//! Binding the listeners and running the server until it is told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::service::Service;

/// A started server: its bound address, its core, and the handle that stops it.
pub struct RunningServer {
    /// The REST listener's address (useful with port 0).
    pub http_addr: SocketAddr,
    pub service: Arc<Service>,
    shutdown: Option<oneshot::Sender<()>>,
    http_task: JoinHandle<std::io::Result<()>>,
}

/// Binds the REST listener on `host:http_port` and starts serving; models load in the background
/// (readiness turns true once they have).
pub async fn start(settings: Settings) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind((settings.host.as_str(), settings.http_port))
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {}:{}: {e}",
                    settings.host, settings.http_port
                ),
            )
        })?;
    let http_addr = listener.local_addr()?;
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
    Ok(RunningServer {
        http_addr,
        service,
        shutdown: Some(shutdown_tx),
        http_task,
    })
}

impl RunningServer {
    /// Stops accepting connections and waits up to `grace` for in-flight requests to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(grace, &mut self.http_task)
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
            self.http_task.abort();
        }
    }
}
