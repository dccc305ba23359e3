//! The benchmark's load generator: closed-loop load over REST (JSON or binary bodies) or gRPC (raw inputs) at a
//! fixed concurrency, and the bare ONNX Runtime loop (the ceiling). Prints one JSON line of results.
//!
//! ```text
//! loadgen http --url URL --body FILE [--header-length N] --concurrency C --seconds S
//! loadgen grpc --addr http://HOST:PORT --model M --input NAME --shape 1,3,224,224 --concurrency C --seconds S
//! loadgen bare --model FILE --batch B --threads T --seconds S
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use oxinfer::grpc::pb;
use oxinfer::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// POST one body again and again to a REST URL.
    Http {
        /// The infer URL.
        #[arg(long)]
        url: String,
        /// The request body (JSON, or JSON header + binary tensors).
        #[arg(long)]
        body: PathBuf,
        /// For a binary-extension body: the JSON header's length (Inference-Header-Content-Length).
        #[arg(long)]
        header_length: Option<usize>,
        #[command(flatten)]
        load: Load,
    },
    /// Sends ModelInfer with one FP32 input in raw_input_contents (filled with 0.5).
    Grpc {
        /// The server, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        addr: String,
        #[arg(long)]
        model: String,
        #[arg(long)]
        input: String,
        /// Comma-separated dimensions, e.g. 1,3,224,224.
        #[arg(long, value_delimiter = ',')]
        shape: Vec<i64>,
        #[command(flatten)]
        load: Load,
    },
    /// Runs the model in-process with ONNX Runtime, nothing else: the ceiling for a server.
    Bare {
        /// The .onnx file; its first input is fed FP32 0.5s, variable dimensions = batch, then 16.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Intra-op threads (the server's setting on one core is 1).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

#[derive(Args, Clone, Copy)]
struct Load {
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured time, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Time before measuring starts (requests are sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
}

/// Latencies and failures of one run.
#[derive(Debug, Default)]
struct Tally {
    /// Latencies in microseconds of the requests that started after the warm-up and succeeded.
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The `q` quantile (0..=1) of sorted latencies, in milliseconds.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

/// Runs `concurrency` closed loops of `send` for warm-up + measured time and summarises them.
async fn drive<F, Fut>(load: Load, send: F) -> serde_json::Value
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(load.warmup);
    let end = measure_from + Duration::from_secs_f64(load.seconds);
    let tasks: Vec<_> = (0..load.concurrency.max(1))
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        return tally;
                    }
                    let result = send().await;
                    if sent < measure_from {
                        continue;
                    }
                    match result {
                        Ok(()) => tally
                            .latencies_us
                            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32),
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e);
                        }
                    }
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.expect("load task"));
    }
    let elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    tally.latencies_us.sort_unstable();
    let ok = tally.latencies_us.len();
    json!({
        "concurrency": load.concurrency,
        "requests": ok,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "seconds": elapsed,
        "rps": ok as f64 / elapsed.max(1e-9),
        "p50_ms": quantile_ms(&tally.latencies_us, 0.50),
        "p99_ms": quantile_ms(&tally.latencies_us, 0.99),
    })
}

async fn http(
    url: String,
    body: PathBuf,
    header_length: Option<usize>,
    load: Load,
) -> serde_json::Value {
    let bytes = bytes::Bytes::from(std::fs::read(&body).expect("read the body file"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.concurrency)
        .build()
        .expect("an HTTP client");
    drive(load, move || {
        let mut request = client.post(url.as_str()).body(bytes.clone());
        request = match header_length {
            Some(n) => request
                .header("content-type", "application/octet-stream")
                .header("inference-header-content-length", n),
            None => request.header("content-type", "application/json"),
        };
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        }
    })
    .await
}

async fn grpc(
    addr: String,
    model: String,
    input: String,
    shape: Vec<i64>,
    load: Load,
) -> serde_json::Value {
    let count: i64 = shape.iter().product();
    let raw: Vec<u8> = std::iter::repeat_n(0.5f32.to_le_bytes(), count as usize)
        .flatten()
        .collect();
    let request = pb::ModelInferRequest {
        model_name: model,
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: input,
            datatype: "FP32".into(),
            shape,
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    };
    let client = GrpcInferenceServiceClient::connect(addr)
        .await
        .expect("connects")
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    drive(load, move || {
        let mut client = client.clone();
        let request = request.clone();
        async move {
            client
                .model_infer(request)
                .await
                .map(|_| ())
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
    })
    .await
}

fn bare(model: PathBuf, batch: usize, threads: usize, seconds: f64) -> serde_json::Value {
    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session;
    use ort::value::{TensorRef, ValueType};
    let env = oxinfer::runtime::init(None).expect("ONNX Runtime");
    let mut session = Session::builder(env)
        .and_then(|b| Ok(b.with_independent_thread_pool()?))
        .and_then(|b| Ok(b.with_intra_threads(threads)?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
        .and_then(|mut b| b.commit_from_file(&model))
        .expect("load the model");
    let (name, shape) = {
        let first = &session.inputs()[0];
        let ValueType::Tensor { shape, .. } = first.dtype() else {
            panic!("the first input is not a tensor")
        };
        let dims: Vec<i64> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if d >= 0 {
                    d
                } else if i == 0 {
                    batch as i64
                } else {
                    16
                }
            })
            .collect();
        (first.name().to_string(), dims)
    };
    let data = vec![0.5f32; shape.iter().product::<i64>() as usize];
    let mut run = || {
        let tensor =
            TensorRef::from_array_view((shape.clone(), data.as_slice())).expect("a tensor");
        session
            .run(ort::inputs![name.as_str() => tensor])
            .expect("runs");
    };
    for _ in 0..3 {
        run();
    }
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        run();
        runs += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    json!({
        "batch": batch,
        "threads": threads,
        "runs_per_s": runs as f64 / elapsed,
        "inferences_per_s": (runs * batch as u64) as f64 / elapsed,
    })
}

fn main() {
    let cli = Cli::parse();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = match cli.command {
        Command::Http {
            url,
            body,
            header_length,
            load,
        } => runtime.block_on(http(url, body, header_length, load)),
        Command::Grpc {
            addr,
            model,
            input,
            shape,
            load,
        } => runtime.block_on(grpc(addr, model, input, shape, load)),
        Command::Bare {
            model,
            batch,
            threads,
            seconds,
        } => bare(model, batch, threads, seconds),
    };
    println!("{result}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&sorted, 0.5), 50.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
        assert_eq!(quantile_ms(&[7000], 0.99), 7.0);
    }

    #[tokio::test]
    async fn drive_counts_successes_and_errors() {
        let load = Load {
            concurrency: 2,
            seconds: 0.05,
            warmup: 0.0,
        };
        let ok = drive(load, || async { Ok(()) }).await;
        assert!(ok["requests"].as_u64().unwrap() > 0);
        assert_eq!(ok["errors"], 0);
        let failing = drive(load, || async { Err("no".to_string()) }).await;
        assert_eq!(failing["requests"], 0);
        assert!(failing["errors"].as_u64().unwrap() > 0);
        assert_eq!(failing["first_error"], "no");
    }
}
