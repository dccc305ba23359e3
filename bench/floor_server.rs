//! The protocol floor (issue 22, item 3): a bare axum server that reads the whole request body of
//! `POST /v2/models/identity/infer` and answers a fixed JSON body, and a bare tonic server whose ModelInfer answers
//! a fixed ModelInferResponse. Nothing else: no routing table beyond that, no model, no spans, no metrics, no ids.
//! bench/bench.py runs it pinned to the same core as oxinfer and drives it with the same load generator, so
//! oxinfer/floor is the share of a request's cost that is the protocol stack itself.
//!
//! It is built like oxinfer's process: the same axum, hyper, tonic and tokio versions, a multi-thread tokio runtime
//! with the default worker count (one worker per CPU the process may run on: one when pinned), TCP_NODELAY, and
//! every thread marked `SCHED_BATCH` (src/sched.rs) before the runtime starts.
//!
//! ```text
//! floor_server --http-port 8080 [--grpc-port 8081] [--response FILE] [--host 127.0.0.1]
//! ```
//!
//! `--response` is the REST body to answer (bench.py saves oxinfer's own answer to the identity request there, so
//! both servers send the same bytes); without it, a body shaped like that answer (FP32 [1,16]) is used. The gRPC
//! answer is oxinfer's identity answer to a raw [1,16] request: one FP32 [1,16] output in `raw_output_contents`.
//! `GET /v2/health/ready` answers 200 (the bench waits on it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use oxinfer::grpc::pb;
use oxinfer::grpc::pb::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    http_port: u16,
    /// Also serve the gRPC floor on this port.
    #[arg(long)]
    grpc_port: Option<u16>,
    /// The REST answer's body (default: an identity-shaped answer, FP32 [1,16]).
    #[arg(long)]
    response: Option<PathBuf>,
}

/// An answer shaped like oxinfer's to the bench's identity request (FP32 [1,16], values written in full).
fn default_response() -> Vec<u8> {
    let data: Vec<String> = (0..16)
        .map(|i| format!("0.{:08}", 12_345_678 + i * 4_321_987))
        .collect();
    format!(
        r#"{{"model_name":"identity","id":"00000000-0000-0000-0000-000000000000","parameters":{{}},"outputs":[{{"name":"output","shape":[1,16],"datatype":"FP32","data":[{}]}}]}}"#,
        data.join(",")
    )
    .into_bytes()
}

/// The gRPC answer: what oxinfer sends for the bench's raw identity request.
fn grpc_response() -> pb::ModelInferResponse {
    pb::ModelInferResponse {
        model_name: "identity".into(),
        model_version: String::new(),
        id: "00000000-0000-0000-0000-000000000000".into(),
        parameters: Default::default(),
        outputs: vec![pb::model_infer_response::InferOutputTensor {
            name: "output".into(),
            datatype: "FP32".into(),
            shape: vec![1, 16],
            ..Default::default()
        }],
        raw_output_contents: vec![Bytes::from(
            std::iter::repeat_n(0.5f32.to_le_bytes(), 16)
                .flatten()
                .collect::<Vec<u8>>(),
        )],
    }
}

/// As oxinfer's src/sched.rs: this thread and the ones it creates are CPU-bound (`SCHED_BATCH`).
fn mark_batch() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter struct.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

struct Floor {
    answer: pb::ModelInferResponse,
}

type NoStream = Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the floor server answers ModelInfer only",
    ))
}

#[tonic::async_trait]
impl GrpcInferenceService for Floor {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        _: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        Ok(Response::new(pb::ModelReadyResponse { ready: true }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        unimplemented()
    }

    async fn model_metadata(
        &self,
        _: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        unimplemented()
    }

    /// The floor: the request is decoded (by the same codec as oxinfer's), the answer is a clone of a fixed one.
    async fn model_infer(
        &self,
        _: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        Ok(Response::new(self.answer.clone()))
    }

    type ModelStreamInferStream = NoStream;

    async fn model_stream_infer(
        &self,
        _: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        unimplemented()
    }

    async fn model_config(
        &self,
        _: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        unimplemented()
    }

    async fn model_statistics(
        &self,
        _: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        unimplemented()
    }

    async fn repository_index(
        &self,
        _: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        unimplemented()
    }

    async fn repository_model_load(
        &self,
        _: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        unimplemented()
    }

    async fn repository_model_unload(
        &self,
        _: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        unimplemented()
    }
}

async fn serve(cli: Cli) -> std::io::Result<()> {
    let body = Bytes::from(match &cli.response {
        Some(path) => std::fs::read(path)?,
        None => default_response(),
    });
    let app = Router::new()
        .route(
            "/v2/models/identity/infer",
            // `Bytes` reads the whole request body before the handler runs.
            post(move |_request: Bytes| {
                let body = body.clone();
                async move { ([(CONTENT_TYPE, "application/json")], body).into_response() }
            }),
        )
        .route("/v2/health/ready", get(|| async { "" }));
    let listener = tokio::net::TcpListener::bind((cli.host.as_str(), cli.http_port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    let http = axum::serve(listener, app);
    match cli.grpc_port {
        Some(port) => {
            let addr: SocketAddr = format!("{}:{port}", cli.host)
                .parse()
                .map_err(std::io::Error::other)?;
            let grpc = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(
                    GrpcInferenceServiceServer::new(Floor {
                        answer: grpc_response(),
                    })
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
                )
                .serve(addr);
            tokio::select! {
                r = http => r,
                r = grpc => r.map_err(std::io::Error::other),
            }
        }
        None => http.await,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    mark_batch();
    // As src/cli.rs: a multi-thread runtime with tokio's default worker count.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(serve(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_answer_is_an_identity_answer() {
        let value: serde_json::Value = serde_json::from_slice(&default_response()).unwrap();
        assert_eq!(value["outputs"][0]["shape"], serde_json::json!([1, 16]));
        assert_eq!(value["outputs"][0]["data"].as_array().unwrap().len(), 16);
        assert_eq!(grpc_response().raw_output_contents[0].len(), 64);
    }
}
