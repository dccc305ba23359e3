//! Adaptive batching (MLServer's `max_batch_size` / `max_batch_time`): a worker gathers queued requests whose
//! inputs can be joined, runs them as one batch along dimension 0, and splits every output back by each
//! request's own row count. Unlike MLServer and Triton, an idle model does not hold a request for the window
//! (see [`serve`]). Requested outputs, ids and parameters stay per request (the service applies them).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::queue::{Receiver, RecvError};

use super::job::{Job, Runner, Stop};
use super::Signature;
use crate::error::Error;
use crate::tensor::batch::{concat_rows, split_rows};
use crate::tensor::Tensor;

/// Environment defaults for every model whose model-settings.json leaves the field unset (0), as MLServer's
/// `MLSERVER_MODEL_*` variables are.
pub const ENV_MAX_BATCH_SIZE: &str = "MLSERVER_MODEL_MAX_BATCH_SIZE";
pub const ENV_MAX_BATCH_TIME: &str = "MLSERVER_MODEL_MAX_BATCH_TIME";

/// When to close a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPolicy {
    /// Most requests in one batch (MLServer counts requests, not rows).
    pub max_batch_size: usize,
    /// Longest a batch waits for more requests, from its first request's arrival.
    pub max_batch_time: Duration,
}

impl BatchPolicy {
    /// The policy from model-settings values, falling back to the `MLSERVER_MODEL_MAX_BATCH_*` variables read
    /// through `env` for a value left at 0. `None` = batching off (it needs a size > 1 and a time > 0).
    pub fn from_settings(
        max_batch_size: usize,
        max_batch_time: f64,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<BatchPolicy>, String> {
        let size = match (max_batch_size, env(ENV_MAX_BATCH_SIZE)) {
            (0, Some(text)) => text.trim().parse::<usize>().map_err(|_| {
                format!("{ENV_MAX_BATCH_SIZE} must be a non-negative integer, got {text:?}")
            })?,
            (size, _) => size,
        };
        let time = match (max_batch_time, env(ENV_MAX_BATCH_TIME)) {
            (0.0, Some(text)) => text.trim().parse::<f64>().map_err(|_| {
                format!("{ENV_MAX_BATCH_TIME} must be a number of seconds, got {text:?}")
            })?,
            (t, _) => t,
        };
        let time = Duration::try_from_secs_f64(time).map_err(|_| {
            format!("max_batch_time must be a non-negative number of seconds, got {time}")
        })?;
        Ok((size > 1 && !time.is_zero()).then_some(BatchPolicy {
            max_batch_size: size,
            max_batch_time: time,
        }))
    }
}

/// Whether requests to a model with this signature can be joined: every input has a variable first dimension,
/// and no output has a fixed one.
pub fn batchable(signature: &Signature) -> Result<(), String> {
    if signature.inputs.is_empty() {
        return Err("the model has no inputs".into());
    }
    if let Some(input) = signature
        .inputs
        .iter()
        .find(|i| i.shape.first().is_none_or(|&d| d >= 0))
    {
        return Err(format!(
            "input '{}' has shape {:?}; batching needs a variable first dimension (-1) on every input",
            input.name, input.shape
        ));
    }
    if let Some(output) = signature
        .outputs
        .iter()
        .find(|o| o.shape.first().is_some_and(|&d| d >= 0))
    {
        return Err(format!(
            "output '{}' has a fixed first dimension {:?}, so a batch cannot be split back",
            output.name, output.shape
        ));
    }
    Ok(())
}

/// The loop of a batching instance. It blocks for a first request (for at most `idle`: then it returns and the
/// instance parks), then takes whatever is already queued and
/// fits (up to `max_batch_size`) without waiting. It waits for more, up to `max_batch_time` from the first
/// request's arrival, only while the batch is short and the model has other instances, all busy (`busy`
/// counts the `instances` running a batch): a free instance runs what is queued at once, so an idle model
/// answers without the window, and under load the requests that arrive while the instances compute form the
/// next batch by themselves. Requests that cannot join the
/// batch being gathered wait, in order, for the next one; at most `max_batch_size` of them are held, so the
/// bounded queue still pushes back.
pub(crate) fn serve(
    runner: &mut Runner<'_>,
    receiver: &Receiver<Job>,
    policy: &BatchPolicy,
    busy: &AtomicUsize,
    instances: usize,
    idle: Duration,
) -> Stop {
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(job) => job,
            None => match receiver.recv_timeout(idle) {
                Ok(job) => job,
                Err(RecvError::Timeout) => return Stop::Idle,
                Err(RecvError::Disconnected) => return Stop::Closed, // unloading, queue empty
            },
        };
        let Some(first) = first.still_wanted(Instant::now(), runner.label) else {
            continue;
        };
        if rows(&first).is_none() {
            let _busy = Busy::enter(busy);
            runner.run_if_wanted(first);
            continue;
        }
        let mut batch = vec![first];
        let mut i = 0;
        while i < held.len() && batch.len() < policy.max_batch_size {
            if fits(&batch[0], &held[i]) {
                batch.extend(held.remove(i));
            } else {
                i += 1;
            }
        }
        // What is already queued, without waiting.
        while batch.len() < policy.max_batch_size && held.len() < policy.max_batch_size {
            match receiver.try_recv() {
                Some(job) => gather(job, &mut batch, &mut held),
                None => break,
            }
        }
        // The window, only while every other instance is busy (more requests are then on their way).
        let deadline = batch[0].enqueued + policy.max_batch_time;
        while batch.len() < policy.max_batch_size
            && held.len() < policy.max_batch_size
            && others_all_busy(busy, instances)
        {
            // In slices, so an instance freed meanwhile ends the wait (this one then runs at once).
            match receiver.recv_deadline(deadline.min(Instant::now() + RECHECK)) {
                Ok(job) => gather(job, &mut batch, &mut held),
                Err(RecvError::Timeout) if Instant::now() < deadline => {}
                Err(_) => break, // time is up (or the queue closed: run what we have)
            }
        }
        let _busy = Busy::enter(busy);
        run_batch(runner, batch);
    }
}

/// How often an instance waiting for more requests checks that the other instances are still all busy.
const RECHECK: Duration = Duration::from_micros(500);

/// Puts `job` in the batch when it fits, else holds it for a later batch.
fn gather(job: Job, batch: &mut Vec<Job>, held: &mut VecDeque<Job>) {
    if fits(&batch[0], &job) {
        batch.push(job);
    } else {
        held.push_back(job);
    }
}

/// Whether the model has other instances and all of them are running a batch (this one is not counted: it
/// is gathering). A lone instance never waits: nothing else can serve the model while it would.
fn others_all_busy(busy: &AtomicUsize, instances: usize) -> bool {
    instances > 1 && busy.load(Ordering::Acquire) >= instances - 1
}

/// Counts an instance as busy from `enter` until dropped (also when the run panics past `catch_unwind`).
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(count: &'a AtomicUsize) -> Busy<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The rows of a request: the first dimension shared by all its inputs (`None` when they disagree or an input
/// is a scalar, so the request runs alone).
fn rows(job: &Job) -> Option<usize> {
    let first = *job.inputs.first()?.shape().first()?;
    job.inputs
        .iter()
        .all(|t| t.shape().first() == Some(&first))
        .then_some(first)
}

/// Whether `job` can join a batch started by `head`: the same inputs, datatypes and dimensions after the first.
fn fits(head: &Job, job: &Job) -> bool {
    head.inputs.len() == job.inputs.len()
        && rows(job).is_some()
        && head.inputs.iter().all(|a| {
            job.inputs.iter().any(|b| {
                a.name == b.name && a.datatype() == b.datatype() && a.shape()[1..] == b.shape()[1..]
            })
        })
}

/// Runs a batch and answers each request with its own rows of the outputs it asked for. If the batch fails
/// (or its outputs cannot be split), each request runs alone so each gets its own answer.
fn run_batch(runner: &mut Runner<'_>, batch: Vec<Job>) {
    let now = Instant::now();
    let mut jobs: Vec<Job> = batch
        .into_iter()
        .filter_map(|job| job.still_wanted(now, runner.label))
        .collect();
    if jobs.len() <= 1 {
        if let Some(job) = jobs.pop() {
            runner.run_if_wanted(job);
        }
        return;
    }
    for job in &jobs {
        runner.stats.queue.add(job.enqueued.elapsed());
    }
    let rows: Vec<usize> = jobs.iter().map(|j| rows(j).unwrap_or(0)).collect();
    let wanted = union_of_outputs(&jobs);
    let result = concat_inputs(&jobs)
        .and_then(|inputs| runner.execute(inputs, wanted.as_deref()))
        .and_then(|(outputs, timings)| {
            let pieces = outputs
                .into_iter()
                .map(|o| split_rows(o, &rows))
                .collect::<Result<Vec<_>, Error>>()?;
            Ok((pieces, timings))
        });
    match result {
        Ok((pieces, timings)) => {
            runner.stats.record_execution(jobs.len() as u64, timings);
            for job in &jobs {
                if let Some(trace) = &job.trace {
                    trace.record(job.enqueued, now, jobs.len(), Ok(&timings));
                }
            }
            answer(jobs, pieces);
        }
        Err(error) => {
            tracing::warn!(model = %runner.label, requests = jobs.len(), %error,
                "a batch failed; running its requests one by one");
            for job in jobs {
                runner.run_and_answer(job);
            }
        }
    }
}

/// The outputs to compute for a batch: all (`None`) when any request wants all, else every name asked for.
fn union_of_outputs(jobs: &[Job]) -> Option<Vec<String>> {
    let mut union: Vec<String> = Vec::new();
    for job in jobs {
        for name in job.outputs.as_ref()? {
            if !union.contains(name) {
                union.push(name.clone());
            }
        }
    }
    Some(union)
}

/// Joins the requests' inputs, in the first request's input order.
fn concat_inputs(jobs: &[Job]) -> Result<Vec<Tensor>, Error> {
    jobs[0]
        .inputs
        .iter()
        .map(|input| {
            let parts: Vec<&Tensor> = jobs
                .iter()
                .filter_map(|job| job.inputs.iter().find(|t| t.name == input.name))
                .collect();
            concat_rows(&parts)
        })
        .collect()
}

/// Sends each request its own piece of each output it asked for, in the order it asked for them.
/// `pieces[o][j]` is request `j`'s rows of output `o`.
fn answer(jobs: Vec<Job>, pieces: Vec<Vec<Tensor>>) {
    let names: Vec<String> = pieces
        .iter()
        .map(|p| p.first().map(|t| t.name.clone()).unwrap_or_default())
        .collect();
    let mut slots: Vec<Vec<Option<Tensor>>> = pieces
        .into_iter()
        .map(|p| p.into_iter().map(Some).collect())
        .collect();
    for (j, job) in jobs.into_iter().enumerate() {
        let mine: Result<Vec<Tensor>, Error> = match &job.outputs {
            None => slots.iter_mut().map(|s| take(s, j)).collect(),
            Some(wanted) => wanted
                .iter()
                .map(|name| match names.iter().position(|n| n == name) {
                    Some(o) => take(&mut slots[o], j),
                    None => Err(Error::Internal(format!(
                        "the batch produced no output '{name}'"
                    ))),
                })
                .collect(),
        };
        let _ = job.reply.send(mine);
    }
}

fn take(slots: &mut [Option<Tensor>], j: usize) -> Result<Tensor, Error> {
    slots
        .get_mut(j)
        .and_then(Option::take)
        .ok_or_else(|| Error::Internal("a batch output was split wrongly".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TensorSpec;
    use crate::tensor::DataType;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn policy_needs_size_and_time() {
        let on = BatchPolicy::from_settings(4, 0.01, env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(on.max_batch_size, 4);
        assert_eq!(on.max_batch_time, Duration::from_millis(10));
        assert_eq!(BatchPolicy::from_settings(1, 0.01, env(&[])), Ok(None));
        assert_eq!(BatchPolicy::from_settings(8, 0.0, env(&[])), Ok(None));
        assert!(BatchPolicy::from_settings(8, -1.0, env(&[])).is_err());
        assert!(BatchPolicy::from_settings(8, 1e300, env(&[])).is_err());
    }

    #[test]
    fn environment_fills_unset_fields() {
        let vars = env(&[(ENV_MAX_BATCH_SIZE, "16"), (ENV_MAX_BATCH_TIME, "0.5")]);
        let policy = BatchPolicy::from_settings(0, 0.0, &vars).unwrap().unwrap();
        assert_eq!(policy.max_batch_size, 16);
        assert_eq!(policy.max_batch_time, Duration::from_millis(500));
        let file_wins = BatchPolicy::from_settings(2, 0.1, &vars).unwrap().unwrap();
        assert_eq!(file_wins.max_batch_size, 2);
        assert!(BatchPolicy::from_settings(0, 0.1, env(&[(ENV_MAX_BATCH_SIZE, "x")])).is_err());
    }

    fn spec(name: &str, shape: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: DataType::Fp32,
            shape,
            parameters: None,
        }
    }

    #[test]
    fn only_an_instance_whose_peers_are_all_busy_waits() {
        let busy = AtomicUsize::new(0);
        assert!(!others_all_busy(&busy, 1), "a lone instance never waits");
        assert!(!others_all_busy(&busy, 3));
        let _one = Busy::enter(&busy);
        assert!(!others_all_busy(&busy, 3));
        assert!(others_all_busy(&busy, 2));
        {
            let _two = Busy::enter(&busy);
            assert!(others_all_busy(&busy, 3));
        }
        assert_eq!(busy.load(Ordering::Acquire), 1, "leaving counts down");
    }

    #[test]
    fn batchable_needs_variable_first_dimensions() {
        let ok = Signature {
            inputs: vec![spec("x", vec![-1, 4])],
            outputs: vec![spec("y", vec![-1]), spec("z", vec![])],
            unserved: vec![],
        };
        assert!(batchable(&ok).is_ok());
        let fixed_input = Signature {
            inputs: vec![spec("x", vec![1, 4])],
            ..ok.clone()
        };
        assert!(batchable(&fixed_input).unwrap_err().contains("'x'"));
        let fixed_output = Signature {
            outputs: vec![spec("y", vec![3])],
            ..ok
        };
        assert!(batchable(&fixed_output).unwrap_err().contains("'y'"));
    }
}
