//! Worker threads: each model instance owns its backend on a dedicated thread, fed by one bounded queue.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::queue::{bounded, Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use super::batching::{self, BatchPolicy};
use super::job::{timed_out, Job, Runner};
use super::stats::ModelStats;
use super::{Backend, Signature};
use crate::error::Error;
use crate::telemetry::JobTrace;
use crate::tensor::Tensor;

/// Builds one backend instance; called once on each worker thread.
pub type BackendFactory = Arc<dyn Fn() -> Result<Box<dyn Backend>, String> + Send + Sync>;

/// How the instances of one model are run.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Threads, each with its own backend (at least 1).
    pub instances: usize,
    /// Requests that may wait in the queue before new ones are refused (429).
    pub capacity: usize,
    /// Adaptive batching, when asked for; used only if the model's signature allows it.
    pub batching: Option<BatchPolicy>,
    /// Time a request may take when it does not say (`parameters.extra.timeout`); `None` = no limit.
    pub default_timeout: Option<Duration>,
}

/// Reads a timeout in seconds; one reading for requests and for `parameters.extra.timeout`.
pub use crate::config::model_extra::parse_timeout;

/// The instances of one model version and the queue in front of them.
pub struct Workers {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    signature: Signature,
    label: String,
    capacity: usize,
    /// Adaptive batching in force (asked for and allowed by the signature).
    batching: Option<BatchPolicy>,
    default_timeout: Option<Duration>,
    /// Execution statistics (Triton's statistics extension).
    pub stats: Arc<ModelStats>,
}

impl Workers {
    /// Starts the instances, each building its backend with `factory`; returns once all have loaded,
    /// or the first load error.
    pub fn start(
        label: &str,
        options: WorkerOptions,
        factory: BackendFactory,
    ) -> Result<Workers, String> {
        let capacity = options.capacity.max(1);
        let (sender, receiver) = bounded::<Job>(capacity);
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<Signature, String>>();
        let mut threads = Vec::new();
        let stats = Arc::new(ModelStats::default());
        let instances = options.instances.max(1);
        // Instances running a batch, so a batching instance knows whether to wait for more (batching::serve).
        let busy = Arc::new(AtomicUsize::new(0));
        for i in 0..instances {
            let busy = busy.clone();
            let receiver = receiver.clone();
            let factory = factory.clone();
            let loaded_tx = loaded_tx.clone();
            let stats = stats.clone();
            let requested = options.batching.clone();
            let thread_label = label.to_string();
            let thread = std::thread::Builder::new()
                .name(format!("model-{label}-{i}"))
                .spawn(move || {
                    crate::sched::mark_batch();
                    let mut backend = match catch_unwind(AssertUnwindSafe(|| factory())) {
                        Ok(Ok(backend)) => backend,
                        Ok(Err(reason)) => {
                            let _ = loaded_tx.send(Err(reason));
                            return;
                        }
                        Err(_) => {
                            let _ =
                                loaded_tx.send(Err("the backend panicked while loading".into()));
                            return;
                        }
                    };
                    let _ = loaded_tx.send(Ok(backend.signature().clone()));
                    drop(loaded_tx);
                    let policy =
                        requested.filter(|_| batching::batchable(backend.signature()).is_ok());
                    let mut runner = Runner {
                        backend: backend.as_mut(),
                        stats: &stats,
                        label: &thread_label,
                    };
                    match policy {
                        Some(policy) => {
                            batching::serve(&mut runner, &receiver, &policy, &busy, instances)
                        }
                        None => serve_one_by_one(&mut runner, &receiver),
                    }
                })
                .map_err(|e| format!("cannot start a worker thread: {e}"))?;
            threads.push(thread);
        }
        drop(loaded_tx);
        let mut signature = None;
        let mut failure = None;
        for result in loaded_rx.iter() {
            match result {
                Ok(s) => signature = Some(s),
                Err(e) => failure = Some(e),
            }
        }
        let loaded = signature.is_some();
        let signature = signature.unwrap_or_default();
        crate::memory::release_freed();
        // Only a model that loaded is judged for batching (a failed load has no signature to judge).
        let batching = match (
            options.batching.filter(|_| loaded),
            batching::batchable(&signature),
        ) {
            (Some(policy), Ok(())) => Some(policy),
            (Some(_), Err(why)) => {
                tracing::warn!(model = %label, "adaptive batching stays off: {why}");
                None
            }
            (None, _) => None,
        };
        let mut workers = Workers {
            sender: Some(sender),
            threads,
            signature,
            label: label.to_string(),
            capacity,
            batching,
            default_timeout: options.default_timeout,
            stats,
        };
        match failure {
            Some(reason) => Err(reason),
            None if !loaded => Err("no worker started".into()),
            None => {
                workers.threads.retain(|t| !t.is_finished());
                Ok(workers)
            }
        }
    }

    /// Requests waiting in the queue for a worker (for the queue-depth metric).
    pub fn queued(&self) -> usize {
        self.sender.as_ref().map_or(0, Sender::waiting)
    }

    /// Number of instances (threads) serving this model.
    pub fn instances(&self) -> usize {
        self.threads.len()
    }

    /// The model's inputs and outputs as the backend reports them.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The adaptive batching in force, if any.
    pub fn batching(&self) -> Option<&BatchPolicy> {
        self.batching.as_ref()
    }

    /// The time a request may take when it does not set its own `timeout`.
    pub fn default_timeout(&self) -> Option<Duration> {
        self.default_timeout
    }

    /// Queues a request and waits for its result, at most until `deadline`; a full queue is answered at once
    /// with `Overloaded`, a deadline passed with `Timeout` (the request is then dropped if it has not run).
    pub async fn infer(
        &self,
        inputs: Vec<Tensor>,
        outputs: Option<Vec<String>>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Tensor>, Error> {
        self.infer_traced(inputs, outputs, deadline, None).await
    }

    /// [`Workers::infer`], with the request's span (`trace`) for the worker's `queue` and `compute` spans.
    pub async fn infer_traced(
        &self,
        inputs: Vec<Tensor>,
        outputs: Option<Vec<String>>,
        deadline: Option<Instant>,
        trace: Option<JobTrace>,
    ) -> Result<Vec<Tensor>, Error> {
        let (reply, result) = oneshot::channel();
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| Error::ModelNotReady(format!("Model {} is unloading", self.label)))?;
        sender
            .try_send(Job {
                enqueued: Instant::now(),
                deadline,
                inputs,
                outputs,
                reply,
                trace: trace.map(Box::new),
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => Error::Overloaded(format!(
                    "model {} is overloaded: {} requests already queued; retry later",
                    self.label, self.capacity
                )),
                TrySendError::Disconnected(_) => {
                    Error::Internal(format!("the workers of model {} have stopped", self.label))
                }
            })?;
        let stopped =
            |_| Error::Internal(format!("the workers of model {} have stopped", self.label));
        match deadline {
            None => result.await.map_err(stopped)?,
            Some(deadline) => tokio::time::timeout_at(deadline.into(), result)
                .await
                .map_err(|_| timed_out(&self.label, "before it finished"))?
                .map_err(stopped)?,
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.sender.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The loop of a worker without batching: one job at a time, in queue order.
fn serve_one_by_one(runner: &mut Runner<'_>, receiver: &Receiver<Job>) {
    for job in receiver.iter() {
        runner.run_if_wanted(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Timings;
    use crate::tensor::TensorData;

    struct Echo(Signature);
    impl Backend for Echo {
        fn signature(&self) -> &Signature {
            &self.0
        }
        fn run(
            &mut self,
            inputs: Vec<Tensor>,
            _: Option<&[String]>,
        ) -> Result<(Vec<Tensor>, Timings), Error> {
            if inputs.is_empty() {
                panic!("boom");
            }
            Ok((inputs, Timings::default()))
        }
    }

    fn options(instances: usize, capacity: usize) -> WorkerOptions {
        WorkerOptions {
            instances,
            capacity,
            ..WorkerOptions::default()
        }
    }

    fn echo_factory() -> BackendFactory {
        Arc::new(|| Ok(Box::new(Echo(Signature::default())) as Box<dyn Backend>))
    }

    #[tokio::test]
    async fn runs_jobs_and_survives_panics() {
        let workers = Workers::start("echo", options(2, 4), echo_factory()).unwrap();
        let t = Tensor::new("x", vec![1], TensorData::Int32(vec![7])).unwrap();
        assert_eq!(
            workers.infer(vec![t.clone()], None, None).await.unwrap(),
            vec![t.clone()]
        );
        let err = workers.infer(vec![], None, None).await.unwrap_err();
        assert!(matches!(err, Error::Internal(_)));
        assert_eq!(
            workers.infer(vec![t.clone()], None, None).await.unwrap(),
            vec![t]
        );
    }

    #[test]
    fn load_failure_is_reported() {
        let factory: BackendFactory = Arc::new(|| Err("bad file".to_string()));
        assert_eq!(
            Workers::start("bad", options(2, 4), factory).err().unwrap(),
            "bad file"
        );
    }
}
