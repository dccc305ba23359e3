//! Model instances: each owns its backend and runs it on one thread at a time, fed by one bounded queue. An
//! instance's thread ends after [`IDLE_BEFORE_PARKING`] without a request (the instance is parked: its backend
//! waits in the instance) and the next request starts one again, so idle models hold no threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::queue::{bounded, Receiver, RecvError, Sender, TrySendError};
use tokio::sync::oneshot;

use super::batching::{self, BatchPolicy};
use super::job::{timed_out, Job, Runner, Stop};
use super::stats::ModelStats;
use super::{Backend, Signature};
use crate::error::Error;
use crate::telemetry::JobTrace;
use crate::tensor::Tensor;

/// Builds one backend instance; called once per instance, on the loading thread (or, for several instances,
/// on one short-lived thread each, so they load side by side).
pub type BackendFactory = Arc<dyn Fn() -> Result<Box<dyn Backend>, String> + Send + Sync>;

/// How long an instance's thread waits for a request before it parks and ends. A model under load never parks;
/// the first request after a quiet spell pays for starting a thread (tens of microseconds).
pub const IDLE_BEFORE_PARKING: Duration = Duration::from_secs(10);

/// How the instances of one model are run.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Instances, each with its own backend (at least 1).
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

/// An instance with no thread: its backend is in `Instance::backend`.
const PARKED: u8 = 0;
/// An instance whose thread runs (or is about to run) jobs: the thread holds the backend.
const RUNNING: u8 = 1;

/// One model instance.
struct Instance {
    state: AtomicU8,
    /// The backend while the instance is parked.
    backend: Mutex<Option<Box<dyn Backend>>>,
    /// The thread last started for the instance (joined on unload).
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the instances of one model share with their threads.
struct Shared {
    instances: Vec<Instance>,
    receiver: Receiver<Job>,
    stats: Arc<ModelStats>,
    batching: Option<BatchPolicy>,
    /// Instances running a batch, so a batching instance knows whether to wait for more (batching::serve).
    busy: AtomicUsize,
    label: String,
    idle: Duration,
}

/// The instances of one model version and the queue in front of them.
pub struct Workers {
    sender: Option<Sender<Job>>,
    shared: Arc<Shared>,
    signature: Signature,
    label: String,
    capacity: usize,
    /// Adaptive batching in force (asked for and allowed by the signature).
    batching: Option<BatchPolicy>,
    default_timeout: Option<Duration>,
    /// Execution statistics (Triton's statistics extension).
    pub stats: Arc<ModelStats>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds `count` backends with `factory` (side by side when more than one); the first error in instance order.
fn load_instances(
    label: &str,
    count: usize,
    factory: &BackendFactory,
) -> Result<Vec<Box<dyn Backend>>, String> {
    let load_one = || match catch_unwind(AssertUnwindSafe(|| factory())) {
        Ok(result) => result,
        Err(_) => Err("the backend panicked while loading".to_string()),
    };
    if count == 1 {
        return load_one().map(|backend| vec![backend]);
    }
    std::thread::scope(|scope| {
        let loads = (0..count)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("load-{label}-{i}"))
                    .spawn_scoped(scope, load_one)
                    .map_err(|e| format!("cannot start a loading thread: {e}"))
            })
            .collect::<Vec<_>>();
        loads
            .into_iter()
            .map(|load| {
                load?
                    .join()
                    .unwrap_or_else(|_| Err("the backend panicked while loading".to_string()))
            })
            .collect()
    })
}

impl Workers {
    /// Loads the instances with `factory` and returns them parked (no thread runs until a request comes), or the
    /// first load error.
    pub fn start(
        label: &str,
        options: WorkerOptions,
        factory: BackendFactory,
    ) -> Result<Workers, String> {
        Workers::start_parking_after(label, options, factory, IDLE_BEFORE_PARKING)
    }

    fn start_parking_after(
        label: &str,
        options: WorkerOptions,
        factory: BackendFactory,
        idle: Duration,
    ) -> Result<Workers, String> {
        let capacity = options.capacity.max(1);
        let backends = load_instances(label, options.instances.max(1), &factory)?;
        let signature = backends[0].signature().clone();
        crate::memory::release_freed();
        let batching = match options
            .batching
            .map(|p| (p, batching::batchable(&signature)))
        {
            Some((policy, Ok(()))) => Some(policy),
            Some((_, Err(why))) => {
                tracing::warn!(model = %label, "adaptive batching stays off: {why}");
                None
            }
            None => None,
        };
        let (sender, receiver) = bounded::<Job>(capacity);
        let stats = Arc::new(ModelStats::default());
        let shared = Arc::new(Shared {
            instances: backends
                .into_iter()
                .map(|backend| Instance {
                    state: AtomicU8::new(PARKED),
                    backend: Mutex::new(Some(backend)),
                    thread: Mutex::new(None),
                })
                .collect(),
            receiver,
            stats: stats.clone(),
            batching: batching.clone(),
            busy: AtomicUsize::new(0),
            label: label.to_string(),
            idle,
        });
        Ok(Workers {
            sender: Some(sender),
            shared,
            signature,
            label: label.to_string(),
            capacity,
            batching,
            default_timeout: options.default_timeout,
            stats,
        })
    }

    /// Requests waiting in the queue for a worker (for the queue-depth metric).
    pub fn queued(&self) -> usize {
        self.sender.as_ref().map_or(0, Sender::waiting)
    }

    /// Number of instances serving this model (parked or not).
    pub fn instances(&self) -> usize {
        self.shared.instances.len()
    }

    /// Instances whose thread is running now (the others are parked).
    pub fn running(&self) -> usize {
        self.shared
            .instances
            .iter()
            .filter(|i| i.state.load(Ordering::SeqCst) == RUNNING)
            .count()
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
        self.wake();
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

    /// After a job was queued: starts a thread for one parked instance, if any. A parking thread stores its state
    /// and then looks at the queue; this side queues and then looks at the state (a fence between each write and
    /// read): at least one of the two sees the other, so a queued job never waits for nobody.
    fn wake(&self) {
        fence(Ordering::SeqCst);
        for (index, instance) in self.shared.instances.iter().enumerate() {
            if instance.state.load(Ordering::SeqCst) != PARKED
                || instance
                    .state
                    .compare_exchange(PARKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                continue;
            }
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name(format!("model-{}-{index}", self.label))
                .spawn(move || run_instance(&shared, index))
            {
                // The handle replaced belongs to a thread that has parked and ended (or is ending).
                Ok(thread) => *lock(&instance.thread) = Some(thread),
                Err(e) => {
                    instance.state.store(PARKED, Ordering::SeqCst);
                    tracing::error!(model = %self.label, "cannot start a worker thread: {e}");
                }
            }
            return;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.sender.take();
        for instance in &self.shared.instances {
            let thread = lock(&instance.thread).take();
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
    }
}

/// The thread of a woken instance: takes the backend, serves jobs until the queue is closed (the backend is then
/// dropped here) or until it has been idle for `Shared::idle` (the backend goes back to the instance).
fn run_instance(shared: &Shared, index: usize) {
    crate::sched::mark_batch();
    let instance = &shared.instances[index];
    let Some(mut backend) = lock(&instance.backend).take() else {
        instance.state.store(PARKED, Ordering::SeqCst);
        return;
    };
    loop {
        let mut runner = Runner {
            backend: backend.as_mut(),
            stats: &shared.stats,
            label: &shared.label,
        };
        let stop = match &shared.batching {
            Some(policy) => batching::serve(
                &mut runner,
                &shared.receiver,
                policy,
                &shared.busy,
                shared.instances.len(),
                shared.idle,
            ),
            None => serve_one_by_one(&mut runner, &shared.receiver, shared.idle),
        };
        if stop == Stop::Closed {
            return;
        }
        *lock(&instance.backend) = Some(backend);
        instance.state.store(PARKED, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // A job queued while parking, whose sender saw this instance still running: serve it.
        if shared.receiver.is_empty()
            || instance
                .state
                .compare_exchange(PARKED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        backend = match lock(&instance.backend).take() {
            Some(backend) => backend,
            None => return,
        };
    }
}

/// The loop of a worker without batching: one job at a time, in queue order, until idle for `idle`.
fn serve_one_by_one(runner: &mut Runner<'_>, receiver: &Receiver<Job>, idle: Duration) -> Stop {
    loop {
        match receiver.recv_timeout(idle) {
            Ok(job) => runner.run_if_wanted(job),
            Err(RecvError::Timeout) => return Stop::Idle,
            Err(RecvError::Disconnected) => return Stop::Closed,
        }
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

    #[tokio::test]
    async fn instances_start_parked_park_when_idle_and_wake_for_a_request() {
        let idle = Duration::from_millis(20);
        let workers =
            Workers::start_parking_after("echo", options(2, 64), echo_factory(), idle).unwrap();
        assert_eq!((workers.instances(), workers.running()), (2, 0));
        let t = Tensor::new("x", vec![1], TensorData::Int32(vec![7])).unwrap();
        for _ in 0..3 {
            assert_eq!(
                workers.infer(vec![t.clone()], None, None).await.unwrap(),
                vec![t.clone()]
            );
            assert!(workers.running() >= 1);
            let parked_by = Instant::now() + Duration::from_secs(10);
            while workers.running() > 0 {
                assert!(Instant::now() < parked_by, "the instances never parked");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_job_is_stranded_while_instances_park_and_wake() {
        // Parking after 1 ms races parking against requests all the time; every request must be answered.
        let workers = Arc::new(
            Workers::start_parking_after(
                "echo",
                options(2, 1024),
                echo_factory(),
                Duration::from_millis(1),
            )
            .unwrap(),
        );
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let workers = workers.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let t = Tensor::new("x", vec![1], TensorData::Int32(vec![i])).unwrap();
                        let answer = tokio::time::timeout(
                            Duration::from_secs(10),
                            workers.infer(vec![t.clone()], None, None),
                        )
                        .await
                        .expect("answered")
                        .unwrap();
                        assert_eq!(answer, vec![t]);
                        if (i as usize + task).is_multiple_of(7) {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
}
