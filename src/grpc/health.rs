//! `grpc.health.v1.Health` driven by readiness: the overall service ("" or `inference.GRPCInferenceService`)
//! is SERVING when the server is ready, a model name when that model (default version) is ready.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::error::Error;
use crate::service::DataPlane;

/// How often a Watch looks at readiness again.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The health service over the shared core.
pub struct Health {
    service: Arc<DataPlane>,
}

impl Health {
    pub fn new(service: Arc<DataPlane>) -> Health {
        Health { service }
    }
}

/// The status of `name`; unknown models are `Err` (NOT_FOUND for Check, SERVICE_UNKNOWN for Watch).
fn status(service: &DataPlane, name: &str) -> Result<ServingStatus, Error> {
    let serving = match name {
        "" | "inference.GRPCInferenceService" => service.ready(),
        model => service.model_ready(model, None)?,
    };
    Ok(if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    })
}

fn reply(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let name = request.into_inner().service;
        match status(&self.service, &name) {
            Ok(s) => Ok(Response::new(reply(s))),
            Err(Error::ModelNotFound(_) | Error::VersionNotFound { .. }) => {
                Err(Status::not_found(format!("unknown service '{name}'")))
            }
            Err(e) => Err(e.into()),
        }
    }

    type WatchStream = ReceiverStream<Result<HealthCheckResponse, Status>>;

    /// Sends the current status, then every change, until the client goes away.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let name = request.into_inner().service;
        let service = self.service.clone();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = status(&service, &name).unwrap_or(ServingStatus::ServiceUnknown);
                if last != Some(now) {
                    if tx.send(Ok(reply(now))).await.is_err() {
                        break;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    () = tx.closed() => break,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
