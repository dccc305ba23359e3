//! Gives freed memory back to the operating system: after a model loads, and after large requests (a burst of
//! them must not leave the server's resident size at its peak). Measurements are in docs/security.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A request that held at least this many bytes is followed by a trim (rate-limited); MobileNet-sized requests
/// (a few MB) never are, so the common path gains no page faults.
pub const LARGE_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Least time between two trims after large requests.
const TRIM_INTERVAL_MS: u64 = 1000;

/// When the second trim of a scheduled pair runs, after the first.
const LATE_TRIM_MS: u64 = 2000;

/// Loading a model parses the file and builds the session on a worker thread: the parsed copy of the weights and
/// the scratch space are freed afterwards, but glibc keeps freed memory in its (per-thread) arenas. Trimming them
/// returns those pages, so a server's resident size is what it holds, not what it once used.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Called when a request that held at most `bytes` is over (answered or refused): after a large one, a trim of the arenas is scheduled
/// on a blocking thread, at most one a second; large requests that end while one is scheduled are covered by it,
/// so the last request of a burst is trimmed after too. Small requests cost an integer comparison.
pub fn after_request(bytes: usize) {
    if bytes >= LARGE_REQUEST_BYTES {
        schedule_trim();
    }
}

/// Schedules a trim of the arenas on a blocking thread, at most one a second (one already scheduled covers this
/// call too), and a second one two seconds after it.
pub fn schedule_trim() {
    static LAST_TRIM_MS: AtomicU64 = AtomicU64::new(0);
    static SCHEDULED: AtomicBool = AtomicBool::new(false);
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        SCHEDULED.store(false, Ordering::Release);
        return release_freed();
    };
    let since = now_ms().saturating_sub(LAST_TRIM_MS.load(Ordering::Acquire));
    // At least a moment later: the caller may still hold the memory it asks to give back.
    let wait = Duration::from_millis(TRIM_INTERVAL_MS.saturating_sub(since).max(100));
    runtime.spawn(async move {
        tokio::time::sleep(wait).await;
        SCHEDULED.store(false, Ordering::Release);
        LAST_TRIM_MS.store(now_ms(), Ordering::Release);
        let _ = tokio::task::spawn_blocking(release_freed).await;
        // Once more a little later: buffers freed only after the first trim (the last requests of a burst, the
        // connection buffers of a client that has just gone) are given back too.
        tokio::time::sleep(Duration::from_millis(LATE_TRIM_MS)).await;
        let _ = tokio::task::spawn_blocking(release_freed).await;
    });
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
