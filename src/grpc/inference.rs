//! `inference.GRPCInferenceService`: thin handlers that decode the message, call the [`DataPlane`], encode the answer.

use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, non_empty};
use super::limits;
use super::pb;
use super::pb::grpc_inference_service_server::GrpcInferenceService;
use super::repository;
use super::triton;
use crate::admission::{tensor_bytes, OFF_REACTOR_BYTES};
use crate::error::Error;
use crate::service::DataPlane;
use crate::telemetry::RequestSpan;

/// What a decoded request message holds in memory, counted without walking its elements: raw contents, typed
/// contents, and one `Vec` per BYTES element.
fn message_bytes(message: &pb::ModelInferRequest) -> usize {
    let raw: usize = message.raw_input_contents.iter().map(|r| r.len()).sum();
    let typed: usize = message
        .inputs
        .iter()
        .filter_map(|input| input.contents.as_ref())
        .map(|c| {
            c.bool_contents.len()
                + 4 * (c.int_contents.len() + c.uint_contents.len() + c.fp32_contents.len())
                + 8 * (c.int64_contents.len() + c.uint64_contents.len() + c.fp64_contents.len())
                + std::mem::size_of::<Vec<u8>>() * c.bytes_contents.len()
        })
        .sum();
    raw + typed + std::mem::size_of_val(message.inputs.as_slice())
}

/// Responses a stream may hold ready before the client reads them; past that the stream waits for the client.
const STREAM_BUFFER: usize = 16;

/// How an open ModelStreamInfer stream ends when the server stops.
const SHUTTING_DOWN: &str =
    "the server is shutting down; requests not answered on this stream were not run";

/// Once the server stops, an open ModelStreamInfer stream still answers what its client sends (a client in the
/// middle of its work finishes it) but ends when nothing has arrived for this long, so that an idle stream holds
/// the shutdown this long rather than the whole `graceful_shutdown_timeout`.
const STREAM_DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Completes when the server starts stopping; never without a stop flag.
async fn server_stops(stopping: &mut Option<watch::Receiver<bool>>) {
    match stopping {
        Some(stop) => {
            let _ = stop.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

/// The inference service over the shared core.
#[derive(Clone)]
pub struct Inference {
    service: Arc<DataPlane>,
    /// Largest message the server sends; a bigger response becomes RESOURCE_EXHAUSTED rather than a broken call.
    max_message_length: usize,
    /// Turns true when the server stops: open ModelStreamInfer streams then end once idle for
    /// [`STREAM_DRAIN_IDLE`] instead of holding the shutdown until their clients close them.
    stopping: Option<watch::Receiver<bool>>,
}

impl Inference {
    pub fn new(service: Arc<DataPlane>, max_message_length: usize) -> Inference {
        Inference {
            service,
            max_message_length,
            stopping: None,
        }
    }

    /// Ends every open ModelStreamInfer stream after `stop` turns true, with UNAVAILABLE "the server is shutting
    /// down", once it has been idle for [`STREAM_DRAIN_IDLE`] (what it is answering, and what arrives meanwhile,
    /// get their answers first).
    pub fn ending_streams_on(mut self, stop: watch::Receiver<bool>) -> Inference {
        self.stopping = Some(stop);
        self
    }

    /// One inference, shared by ModelInfer and ModelStreamInfer. The message's bytes, then its decoded inputs and
    /// outputs, are held against the admission budget until the answer is handed to tonic; large messages are
    /// converted, and large answers built, on a blocking thread.
    async fn infer(
        &self,
        message: pb::ModelInferRequest,
        span: Option<&RequestSpan>,
    ) -> Result<pb::ModelInferResponse, Error> {
        let admission = self.service.admission();
        let mut permit = admission.permit();
        let size = message_bytes(&message);
        let limits = crate::tensor::limits::Limits::from(self.service.settings());
        permit.grow(size)?;
        let convert = move || {
            let decoded = convert::infer_request(message, &limits)?;
            let bytes = tensor_bytes(&decoded.request.inputs);
            Ok::<_, Error>((decoded, bytes))
        };
        let (decoded, input_bytes) = if size >= OFF_REACTOR_BYTES {
            admission.off_reactor(convert).await??
        } else {
            convert()?
        };
        permit.set(input_bytes)?;
        let response = self
            .service
            .infer_traced(
                &decoded.model_name,
                decoded.model_version.as_deref(),
                decoded.request,
                span,
            )
            .await?;
        let outputs = tensor_bytes(&response.outputs);
        permit.force(outputs);
        let raw = decoded.raw
            || self.service.settings().grpc_raw_outputs == crate::config::RawOutputs::Always;
        let encode = move || {
            let message = convert::infer_response(response, raw);
            let len = message.encoded_len();
            (message, len)
        };
        let (message, len) = if outputs >= OFF_REACTOR_BYTES {
            admission.off_reactor(encode).await?
        } else {
            encode()
        };
        if len > self.max_message_length {
            return Err(Error::PayloadTooLarge(format!(
                "the response is {len} bytes, over grpc_max_message_length ({} bytes)",
                self.max_message_length
            )));
        }
        Ok(message)
    }

    /// [`Inference::infer`] in its trace span, whose parent is the caller's `traceparent` metadata, when tracing
    /// is on (see [`crate::telemetry`]); `method` names the RPC.
    async fn traced_infer(
        &self,
        metadata: Option<&MetadataMap>,
        method: &'static str,
        message: pb::ModelInferRequest,
    ) -> Result<pb::ModelInferResponse, Error> {
        let (Some(telemetry), Some(metadata)) = (self.service.telemetry(), metadata) else {
            return self.infer(message, None).await;
        };
        let version = Some(message.model_version.as_str()).filter(|v| !v.is_empty());
        let span = telemetry.grpc_span(metadata, method, &message.model_name, version);
        let result = self.infer(message, Some(&span)).await;
        span.end(&result);
        result
    }

    /// The answer on the stream for one request: its response, or its error in `error_message`
    /// (with the request's model and id, so the client can tell which one failed). `metadata`: the stream's,
    /// when tracing is on.
    async fn stream_reply(
        &self,
        message: pb::ModelInferRequest,
        metadata: Option<&MetadataMap>,
    ) -> pb::ModelStreamInferResponse {
        let (model_name, model_version, id) = (
            message.model_name.clone(),
            message.model_version.clone(),
            message.id.clone(),
        );
        match self
            .traced_infer(metadata, "ModelStreamInfer", message)
            .await
        {
            Ok(response) => pb::ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(response),
            },
            Err(error) => {
                let status = Status::from(error);
                pb::ModelStreamInferResponse {
                    error_message: status.message().to_string(),
                    infer_response: Some(pb::ModelInferResponse {
                        model_name,
                        model_version,
                        id,
                        ..Default::default()
                    }),
                }
            }
        }
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse {
            live: self.service.live(),
        }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse {
            ready: self.service.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let version = non_empty(request.version);
        let ready = self
            .service
            .model_ready(&request.name, version.as_deref())?;
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(convert::server_metadata(
            self.service.server_metadata(),
        )))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let version = non_empty(request.version);
        let metadata = self
            .service
            .model_metadata(&request.name, version.as_deref())?;
        Ok(Response::new(convert::model_metadata(metadata)))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let response = self
            .traced_infer(Some(&metadata), "ModelInfer", message)
            .await?;
        Ok(Response::new(response))
    }

    /// The replies, boxed on the channel: tokio allocates a channel's first block of 32 slots when the channel
    /// is made, and 32 unboxed replies (192 bytes each) would cost every open stream 6 KB before it sends anything.
    type ModelStreamInferStream =
        Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

    /// Answers each request in order; a failed request is reported in its `error_message` and the stream
    /// goes on. A broken inbound stream (e.g. a message over the limit) ends the call with its status.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        // The stream's trace context, kept only when tracing is on: each message gets a span under it.
        let metadata = self.service.telemetry().map(|_| request.metadata().clone());
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let this = self.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let mut draining = false;
            loop {
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = tx.closed() => break,
                    () = server_stops(&mut stopping), if !draining => {
                        draining = true;
                        continue;
                    }
                    () = tokio::time::sleep(STREAM_DRAIN_IDLE), if draining => {
                        let _ = tx.send(Box::new(Err(Status::unavailable(SHUTTING_DOWN)))).await;
                        break;
                    }
                };
                let (reply, last) = match next {
                    Ok(Some(message)) => (
                        Ok(this.stream_reply(message, metadata.as_ref()).await),
                        false,
                    ),
                    Ok(None) => break,
                    Err(status) => (Err(limits::resource_exhausted(status)), true),
                };
                if tx.send(Box::new(reply)).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).map(|reply| *reply),
        )))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let version = non_empty(request.version);
        let config = self
            .service
            .model_config(&request.name, version.as_deref())?;
        Ok(Response::new(pb::ModelConfigResponse {
            config: Some(triton::model_config(config)),
        }))
    }

    /// An empty name answers for every ready model.
    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let request = request.into_inner();
        let name = non_empty(request.name);
        let version = non_empty(request.version);
        let stats = self
            .service
            .statistics(name.as_deref(), version.as_deref())?;
        Ok(Response::new(pb::ModelStatisticsResponse {
            model_stats: stats.into_iter().map(triton::model_statistics).collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let index = repository::index(&self.service, request).await?;
        Ok(Response::new(index))
    }

    async fn repository_model_load(
        &self,
        request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        repository::load(&self.service, request).await?;
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        repository::unload(&self.service, request).await?;
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }
}
