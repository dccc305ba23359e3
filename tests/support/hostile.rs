//! Helpers for the hostile-traffic tests: the server's resident memory, and its liveness latency measured while
//! an attack runs; and the lock that keeps the tests that measure them alone in their test binary.

use std::future::Future;
use std::time::{Duration, Instant};

/// Resident memory of process `pid`, in bytes (`VmRSS` from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS line")
}

/// What [`liveness_during`] saw: the attack's result and the liveness probes' latencies.
pub struct Probed<T> {
    pub result: T,
    /// Latency of every `GET /v2/health/live` sent while the attack ran (one every 20 ms, each on a fresh
    /// connection, so a busy keep-alive connection does not hide a stalled server).
    pub latencies: Vec<Duration>,
    /// Probes that failed (connection refused, error status, no answer within 5 s).
    pub failures: usize,
    /// Peak resident memory of `pid` sampled during the attack (0 when no pid was given).
    pub peak_rss: u64,
}

impl<T> Probed<T> {
    /// The worst probe latency.
    pub fn worst(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    /// Asserts that every probe answered, within `limit`, and that at least one probe ran.
    pub fn assert_live_within(&self, limit: Duration) {
        assert!(
            !self.latencies.is_empty(),
            "no liveness probe ran during the attack"
        );
        assert_eq!(self.failures, 0, "liveness probes failed during the attack");
        assert!(
            self.worst() <= limit,
            "liveness took {:?} during the attack (limit {limit:?}); all: {:?}",
            self.worst(),
            self.latencies
        );
    }
}

/// Runs `attack` while probing `GET http://{http}/v2/health/live` every 20 ms (and sampling `pid`'s memory).
pub async fn liveness_during<T, F>(http: &str, pid: Option<u32>, attack: F) -> Probed<T>
where
    F: Future<Output = T>,
{
    let url = format!("http://{http}/v2/health/live");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let prober = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut failures = 0;
        let mut peak_rss = 0;
        loop {
            if let Some(pid) = pid {
                peak_rss = peak_rss.max(rss_bytes(pid));
            }
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let started = Instant::now();
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => latencies.push(started.elapsed()),
                _ => failures += 1,
            }
            tokio::select! {
                _ = stop_rx.changed() => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        (latencies, failures, peak_rss)
    });
    let result = attack.await;
    let _ = stop_tx.send(true);
    let (latencies, failures, peak_rss) = prober.await.unwrap();
    Probed {
        result,
        latencies,
        failures,
        peak_rss,
    }
}

/// Polls until `pid`'s resident memory is at most `limit` bytes (memory is given back after a burst), for up
/// to 10 s; returns the last reading.
pub async fn rss_settles_below(pid: u32, limit: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rss = rss_bytes(pid);
        if rss <= limit || Instant::now() > deadline {
            return rss;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The hostile tests share one test binary: a test that measures liveness latency, memory or descriptors runs
/// [`alone`] (no other test of the binary runs meanwhile, so it sees no more contention than when each file was
/// its own binary); every other hostile test runs [`alongside`] the others but never beside a measuring one.
static HEAVY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Taken for the whole of a test that measures: no other hostile test runs until it is dropped.
pub async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    HEAVY.write().await
}

/// Taken for the whole of a hostile test that does not measure: it runs with others, never with a measuring one.
pub async fn alongside() -> tokio::sync::RwLockReadGuard<'static, ()> {
    HEAVY.read().await
}

/// [`alongside`] for a test without a runtime.
pub fn alongside_blocking() -> tokio::sync::RwLockReadGuard<'static, ()> {
    HEAVY.blocking_read()
}
