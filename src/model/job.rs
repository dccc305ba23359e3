//! One queued request (a [`Job`]) and what a worker thread runs it with (a [`Runner`]), shared by the
//! one-by-one loop ([`super::worker`]) and the batching loop ([`super::batching`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use tokio::sync::oneshot;

use super::stats::ModelStats;
use super::Backend;
use crate::error::Error;
use crate::telemetry::{JobTrace, Timings};
use crate::tensor::Tensor;

/// One request waiting for a worker.
pub(crate) struct Job {
    /// When it was queued (queue statistics, batching deadline).
    pub enqueued: Instant,
    /// When its caller stops waiting; past it, the job is answered with a timeout instead of running.
    pub deadline: Option<Instant>,
    pub inputs: Vec<Tensor>,
    /// Outputs asked for; `None` = all, in model order.
    pub outputs: Option<Vec<String>>,
    pub reply: oneshot::Sender<Result<Vec<Tensor>, Error>>,
    /// The request's span, when tracing is on: the worker adds its `queue` and `compute` spans under it.
    /// Boxed: a queue of `model_queue_size` jobs is allocated up front, and tracing is usually off.
    pub trace: Option<Box<JobTrace>>,
}

impl Job {
    /// Whether someone still waits for this job. A job past its deadline is answered with a timeout here.
    pub fn still_wanted(self, now: Instant, label: &str) -> Option<Job> {
        if self.reply.is_closed() {
            return None; // the client has gone: do not spend compute on it
        }
        if self.deadline.is_some_and(|d| d <= now) {
            let _ = self.reply.send(Err(timed_out(label, "in the queue")));
            return None;
        }
        Some(self)
    }
}

/// The timeout error, naming where the request was when its time ran out.
pub(crate) fn timed_out(label: &str, place: &str) -> Error {
    Error::Timeout(format!(
        "request to model {label} timed out {place} (request parameter 'timeout' or the model's parameters.extra.timeout)"
    ))
}

/// Why a worker loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No job came for the idle time: the instance parks.
    Idle,
    /// The queue is closed and empty: the model is unloading.
    Closed,
}

/// What a worker thread needs to run jobs: its backend, the model's statistics and its name for messages.
pub(crate) struct Runner<'a> {
    pub backend: &'a mut dyn Backend,
    pub stats: &'a ModelStats,
    pub label: &'a str,
}

impl Runner<'_> {
    /// Runs the backend, turning a panic into an error.
    pub fn execute(
        &mut self,
        inputs: Vec<Tensor>,
        outputs: Option<&[String]>,
    ) -> Result<(Vec<Tensor>, Timings), Error> {
        let backend = &mut *self.backend;
        catch_unwind(AssertUnwindSafe(|| backend.run(inputs, outputs)))
            .unwrap_or_else(|_| Err(Error::Internal("the model panicked while running".into())))
    }

    /// Runs one job on its own (when its client still waits) and answers it.
    pub fn run_if_wanted(&mut self, job: Job) {
        let Some(job) = job.still_wanted(Instant::now(), self.label) else {
            return;
        };
        self.stats.queue.add(job.enqueued.elapsed());
        self.run_and_answer(job);
    }

    /// Runs one job on its own and answers it (queue time already recorded).
    pub fn run_and_answer(&mut self, job: Job) {
        let started = Instant::now();
        let result = self.execute(job.inputs, job.outputs.as_deref());
        if let Some(trace) = &job.trace {
            let outcome = result.as_ref().map(|(_, timings)| timings);
            trace.record(job.enqueued, started, 1, outcome);
        }
        let result = result.map(|(outputs, timings)| {
            self.stats.record_execution(1, timings);
            outputs
        });
        let _ = job.reply.send(result);
    }
}
