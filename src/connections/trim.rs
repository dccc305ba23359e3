//! Giving memory back after a connection that held many requests at once (HTTP/2 streams) closes: thousands of
//! streams leave their freed state in the allocator's arenas, which a trim returns to the system. The trim runs
//! once closes have stopped for a second (a burst of closes shares it), and once more 4 s later for stragglers,
//! off the async runtime.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::state::now_ms;

/// A connection that had at least this many requests in flight at once asks for a trim when it closes.
pub const HEAVY_CONNECTION: u32 = 32;

/// The trim runs once no heavy connection has closed for this long.
const SETTLE: Duration = Duration::from_millis(1000);

/// The second trim, this long after the first.
const AGAIN_AFTER: Duration = Duration::from_secs(4);

/// A trim is waiting.
static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// When ([`now_ms`]) the last heavy connection closed.
static LAST_CLOSE: AtomicU64 = AtomicU64::new(0);

/// Notes a heavy connection's close and schedules a trim unless one is waiting.
pub fn after_heavy_connection() {
    LAST_CLOSE.store(now_ms(), Ordering::Release);
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        let settle = SETTLE.as_millis() as u64;
        loop {
            let quiet_since = LAST_CLOSE.load(Ordering::Acquire);
            let waited = now_ms().saturating_sub(quiet_since);
            if waited >= settle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(settle - waited)).await;
        }
        SCHEDULED.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
        // Again a little later, for what the streams' tasks freed after the first trim (on a busy machine they
        // can take longer than the settling time to end).
        tokio::time::sleep(AGAIN_AFTER).await;
        let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
    });
}
