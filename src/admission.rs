//! Admission control against hostile traffic: a server-wide budget of request bytes in flight
//! (`max_bytes_in_flight`), taken as a body is read and decoded and given back once its answer is sent, and a pool
//! of low-priority threads, one per core, for the CPU-heavy work (decompression, decoding and encoding of large
//! bodies) that must not run on the async runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::Settings;
use crate::error::Error;
use crate::tensor::{Tensor, TensorData};

/// Bodies and messages at least this large are decoded and encoded on a blocking thread; smaller ones cost
/// less than the hand-off and stay on the runtime.
pub const OFF_REACTOR_BYTES: usize = 64 * 1024;

/// The smallest default budget, whatever the machine.
const MIN_DEFAULT_BUDGET: usize = 256 * 1024 * 1024;

/// The server's admission state, shared by REST and gRPC.
pub struct Admission {
    budget: Arc<Budget>,
    /// Work for the decoding threads; they end when this is dropped.
    heavy: crossbeam_channel::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

/// How much lower than the runtime's threads the decoding threads run (a nice value): when both want the CPU, the
/// runtime's threads (health checks, small requests) get about nine tenths of it.
const DECODE_NICENESS: i32 = 10;

struct Budget {
    /// Most bytes held at once (`max_bytes_in_flight`).
    limit: usize,
    /// Bytes held by live [`Permit`]s.
    used: AtomicUsize,
}

impl Admission {
    pub fn new(settings: &Settings) -> Admission {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (heavy, jobs) = crossbeam_channel::unbounded::<Job>();
        for i in 0..cores {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("oxinfer-decode-{i}"))
                .spawn(move || decode_thread(jobs));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a decoding thread");
            }
        }
        Admission {
            budget: Arc::new(Budget {
                limit: settings.max_bytes_in_flight.unwrap_or_else(default_budget),
                used: AtomicUsize::new(0),
            }),
            heavy,
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.budget.limit
    }

    /// Bytes held by requests now.
    pub fn in_flight(&self) -> usize {
        self.budget.used.load(Ordering::Relaxed)
    }

    /// A permit holding nothing yet, for one request.
    pub fn permit(&self) -> Permit {
        Permit {
            budget: self.budget.clone(),
            bytes: 0,
            peak: 0,
        }
    }

    /// Runs CPU-heavy `work` on one of the decoding threads (one per core, at a lower priority than the runtime's):
    /// later work waits its turn in a queue without holding a thread, and the async runtime stays free to answer
    /// health checks and small requests.
    pub async fn off_reactor<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.heavy
            .send(job)
            .map_err(|_| Error::Internal("the decoding threads are gone".into()))?;
        result
            .await
            .map_err(|_| Error::Internal("decoding failed (the work panicked)".into()))
    }
}

/// A decoding thread: lowers its own priority, then runs jobs until the server is dropped. A panicking job is
/// answered as an internal error (its result channel is dropped) and the thread goes on.
fn decode_thread(jobs: crossbeam_channel::Receiver<Job>) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; on Linux the nice value of PRIO_PROCESS for a thread id is
    // that thread's alone.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, DECODE_NICENESS);
    }
    for job in jobs {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Bytes of one request counted against the budget; given back when dropped (after a large request, with a trim
/// of the allocator's free memory: [`crate::memory::after_request`]).
pub struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
    /// The most bytes held at once.
    peak: usize,
}

impl Permit {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `more` bytes, or refuses (503) when the budget cannot hold them.
    pub fn grow(&mut self, more: usize) -> Result<(), Error> {
        let budget = &self.budget;
        let taken = budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more)
                    .filter(|&total| total <= budget.limit)
            });
        match taken {
            Ok(_) => {
                self.bytes += more;
                self.peak = self.peak.max(self.bytes);
                Ok(())
            }
            Err(_) => Err(Error::OverBudget(format!(
                "the server is busy: {} more bytes for this request would exceed the {} bytes that all requests \
                 may hold at once (max_bytes_in_flight); retry later",
                self.bytes.saturating_add(more),
                budget.limit
            ))),
        }
    }

    /// Takes `more` bytes even past the budget: memory already spent (a model's outputs), counted so that new
    /// requests are refused until it is given back.
    pub fn force(&mut self, more: usize) {
        self.budget.used.fetch_add(more, Ordering::AcqRel);
        self.bytes += more;
        self.peak = self.peak.max(self.bytes);
    }

    /// Holds exactly `bytes`, past the budget if need be (memory already spent, such as an encoded answer).
    pub fn keep(&mut self, bytes: usize) {
        match bytes.checked_sub(self.bytes) {
            Some(more) => self.force(more),
            None => self.release_to(bytes),
        }
    }

    fn release_to(&mut self, bytes: usize) {
        self.budget
            .used
            .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
        self.bytes = bytes;
    }

    /// Holds exactly `bytes`: gives back the surplus, or takes the difference (refused past the budget).
    pub fn set(&mut self, bytes: usize) -> Result<(), Error> {
        match bytes.checked_sub(self.bytes) {
            Some(more) => self.grow(more),
            None => {
                self.release_to(bytes);
                Ok(())
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        crate::memory::after_request(self.peak);
    }
}

/// What `tensors` hold in memory: their elements (BYTES: the bytes plus one offset per element) and a fixed cost
/// per tensor, so that many tiny tensors count too.
pub fn tensor_bytes(tensors: &[Tensor]) -> usize {
    tensors
        .iter()
        .map(|t| {
            let data = match t.data() {
                TensorData::Bytes(b) => {
                    b.len() * std::mem::size_of::<usize>()
                        + b.iter().map(<[u8]>::len).sum::<usize>()
                }
                other => other.len() * other.datatype().element_size().unwrap_or(1),
            };
            data + std::mem::size_of::<Tensor>() + t.name.len() + std::mem::size_of_val(t.shape())
        })
        .sum()
}

/// A quarter of the memory this process may use (its cgroup's limit, else the machine's), at least 256 MiB.
pub fn default_budget() -> usize {
    let total = [cgroup_v2_limit(), cgroup_v1_limit(), mem_total()]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
    usize::try_from(total / 4)
        .unwrap_or(usize::MAX)
        .max(MIN_DEFAULT_BUDGET)
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `memory.max` of the process's cgroup (v2); "max" means none.
fn cgroup_v2_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    read_u64(&format!(
        "/sys/fs/cgroup{}/memory.max",
        path.trim_end_matches('/')
    ))
    .or_else(|| read_u64("/sys/fs/cgroup/memory.max"))
}

/// The v1 memory controller's limit (a huge value means none).
fn cgroup_v1_limit() -> Option<u64> {
    read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes").filter(|&l| l < (1 << 60))
}

fn mem_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(limit: usize) -> Admission {
        Admission::new(&Settings {
            max_bytes_in_flight: Some(limit),
            ..Settings::default()
        })
    }

    #[test]
    fn permits_take_and_give_back_bytes() {
        let admission = admission(1000);
        let mut a = admission.permit();
        a.grow(600).unwrap();
        let mut b = admission.permit();
        let refused = b.grow(500).unwrap_err();
        assert_eq!(refused.http_status(), 503);
        assert!(
            refused.to_string().contains("max_bytes_in_flight"),
            "{refused}"
        );
        assert_eq!(b.bytes(), 0);
        b.grow(400).unwrap();
        assert_eq!(admission.in_flight(), 1000);
        a.set(100).unwrap();
        assert_eq!(admission.in_flight(), 500);
        b.force(2000);
        assert_eq!(admission.in_flight(), 2500);
        b.keep(10);
        assert_eq!(admission.in_flight(), 110);
        b.keep(5000);
        assert_eq!(admission.in_flight(), 5100);
        drop(a);
        drop(b);
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn the_default_budget_is_a_quarter_of_memory_and_at_least_256_mib() {
        let budget = default_budget();
        assert!(budget >= MIN_DEFAULT_BUDGET);
        let total = mem_total().unwrap();
        assert!(budget as u64 <= (total / 4).max(MIN_DEFAULT_BUDGET as u64));
    }

    #[test]
    fn bytes_tensors_count_their_offsets() {
        let data: crate::tensor::BytesBuf = (0..1000).map(|_| &b""[..]).collect();
        let t = Tensor::new("s", vec![1000], TensorData::Bytes(data)).unwrap();
        assert!(tensor_bytes(std::slice::from_ref(&t)) >= 8000);
    }

    #[tokio::test]
    async fn a_panic_in_heavy_work_is_an_error_and_the_pool_goes_on() {
        let admission = admission(1000);
        let error = admission
            .off_reactor(|| -> u8 { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(error.http_status(), 500);
        for _ in 0..8 {
            assert_eq!(admission.off_reactor(|| 7).await.unwrap(), 7);
        }
    }

    #[tokio::test]
    async fn heavy_work_runs_off_the_runtime() {
        let admission = admission(1000);
        let runtime_thread = std::thread::current().id();
        let worker = admission
            .off_reactor(|| std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(worker, runtime_thread, "ran on the runtime's thread");
    }
}
