//! Worker threads: each model instance owns its backend on a dedicated thread, fed by one bounded queue.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender, TrySendError};
use tokio::sync::oneshot;

use super::stats::ModelStats;
use super::{Backend, Signature};
use crate::error::Error;
use crate::tensor::Tensor;

/// Builds one backend instance; called once on each worker thread.
pub type BackendFactory = Arc<dyn Fn() -> Result<Box<dyn Backend>, String> + Send + Sync>;

/// One request waiting for a worker.
struct Job {
    enqueued: Instant,
    inputs: Vec<Tensor>,
    outputs: Option<Vec<String>>,
    reply: oneshot::Sender<Result<Vec<Tensor>, Error>>,
}

/// The instances of one model version and the queue in front of them.
pub struct Workers {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    signature: Signature,
    label: String,
    capacity: usize,
    /// Execution statistics (Triton's statistics extension).
    pub stats: Arc<ModelStats>,
}

impl Workers {
    /// Starts `instances` threads, each building its backend with `factory`; returns once all have loaded,
    /// or the first load error.
    pub fn start(
        label: &str,
        instances: usize,
        capacity: usize,
        factory: BackendFactory,
    ) -> Result<Workers, String> {
        let capacity = capacity.max(1);
        let (sender, receiver) = bounded::<Job>(capacity);
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<Signature, String>>();
        let mut threads = Vec::new();
        let stats = Arc::new(ModelStats::default());
        for i in 0..instances.max(1) {
            let receiver = receiver.clone();
            let factory = factory.clone();
            let loaded_tx = loaded_tx.clone();
            let stats = stats.clone();
            let thread = std::thread::Builder::new()
                .name(format!("model-{label}-{i}"))
                .spawn(move || {
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
                    for job in receiver.iter() {
                        if job.reply.is_closed() {
                            continue; // the client has gone: do not spend compute on it
                        }
                        stats.queue.add(job.enqueued.elapsed());
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            backend.run(job.inputs, job.outputs.as_deref())
                        }))
                        .unwrap_or_else(|_| {
                            Err(Error::Internal("the model panicked while running".into()))
                        })
                        .map(|(outputs, timings)| {
                            stats.record_execution(1, timings);
                            outputs
                        });
                        let _ = job.reply.send(result);
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
        let mut workers = Workers {
            sender: Some(sender),
            threads,
            signature: signature.clone().unwrap_or_default(),
            label: label.to_string(),
            capacity,
            stats,
        };
        match (failure, signature) {
            (Some(reason), _) => Err(reason),
            (None, None) => Err("no worker started".into()),
            (None, Some(_)) => {
                workers.threads.retain(|t| !t.is_finished());
                Ok(workers)
            }
        }
    }

    /// Requests waiting in the queue for a worker (for the queue-depth metric).
    pub fn queued(&self) -> usize {
        self.sender.as_ref().map_or(0, |s| s.len())
    }

    /// Number of instances (threads) serving this model.
    pub fn instances(&self) -> usize {
        self.threads.len()
    }

    /// The model's inputs and outputs as the backend reports them.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Queues a request and waits for its result; a full queue is answered at once with `Overloaded`.
    pub async fn infer(
        &self,
        inputs: Vec<Tensor>,
        outputs: Option<Vec<String>>,
    ) -> Result<Vec<Tensor>, Error> {
        let (reply, result) = oneshot::channel();
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| Error::ModelNotReady(format!("Model {} is unloading", self.label)))?;
        sender
            .try_send(Job {
                enqueued: Instant::now(),
                inputs,
                outputs,
                reply,
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
        result.await.map_err(|_| {
            Error::Internal(format!("the workers of model {} have stopped", self.label))
        })?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stats::Timings;
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

    fn echo_factory() -> BackendFactory {
        Arc::new(|| Ok(Box::new(Echo(Signature::default())) as Box<dyn Backend>))
    }

    #[tokio::test]
    async fn runs_jobs_and_survives_panics() {
        let workers = Workers::start("echo", 2, 4, echo_factory()).unwrap();
        let t = Tensor::new("x", vec![1], TensorData::Int32(vec![7])).unwrap();
        assert_eq!(
            workers.infer(vec![t.clone()], None).await.unwrap(),
            vec![t.clone()]
        );
        let err = workers.infer(vec![], None).await.unwrap_err();
        assert!(matches!(err, Error::Internal(_)));
        assert_eq!(workers.infer(vec![t.clone()], None).await.unwrap(), vec![t]);
    }

    #[test]
    fn load_failure_is_reported() {
        let factory: BackendFactory = Arc::new(|| Err("bad file".to_string()));
        assert_eq!(
            Workers::start("bad", 2, 4, factory).err().unwrap(),
            "bad file"
        );
    }
}
