//! What the accept loop knows about one open connection: requests in flight, since when it has been idle,
//! whether a client has started a request, and the deadline that follows from those.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Milliseconds since the first call (never 0, so that 0 can mean "not set").
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// The instant `ms` (a [`now_ms`] reading) stands for.
pub fn instant_of(ms: u64) -> Instant {
    let now = now_ms();
    let now_instant = Instant::now();
    if ms >= now {
        now_instant + Duration::from_millis(ms - now)
    } else {
        now_instant
            .checked_sub(Duration::from_millis(now - ms))
            .unwrap_or(now_instant)
    }
}

/// How long a connection may go without a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// A new connection must have its first request's headers in by then; on HTTP/1.1 a later request too,
    /// counted from its first byte. `None`: no limit.
    pub header_read: Option<Duration>,
    /// A connection with no request in flight is closed after this long; `None`: kept until the client closes it.
    pub idle: Option<Duration>,
}

/// One open connection, shared by its task, its I/O (which notes the first byte of a request), its requests
/// (which count themselves in and out) and the listener's registry (which may ask it to close).
#[derive(Debug)]
pub struct ConnState {
    /// Key in the registry.
    pub id: u64,
    /// Requests (HTTP/2 streams) being answered, responses being sent included.
    in_flight: AtomicU32,
    /// The most requests it had in flight at once.
    peak_in_flight: AtomicU32,
    /// [`now_ms`] when it was accepted or its last request finished.
    idle_since: AtomicU64,
    /// [`now_ms`] of the first byte read since `idle_since`; 0: none yet.
    first_byte: AtomicU64,
    /// At least one request was dispatched.
    served: AtomicBool,
    /// Its requests are HTTP/2 (set by the first one).
    http2: AtomicBool,
    /// Chosen to be closed to make room at the connection cap.
    evicted: AtomicBool,
    /// Wakes the connection's task to close it.
    pub close: Notify,
}

impl ConnState {
    pub fn new(id: u64) -> ConnState {
        ConnState {
            id,
            in_flight: AtomicU32::new(0),
            peak_in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
            first_byte: AtomicU64::new(0),
            served: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// A request was dispatched on this connection; it counts as in flight until the guard drops (after its
    /// response body is sent, or when it is abandoned).
    pub fn begin_request(self: &std::sync::Arc<Self>, http2: bool) -> RequestGuard {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        if now > self.peak_in_flight.load(Relaxed) {
            self.peak_in_flight.fetch_max(now, Relaxed);
        }
        if !self.served.load(Relaxed) {
            self.http2.store(http2, Relaxed);
            self.served.store(true, Relaxed);
        }
        RequestGuard(self.clone())
    }

    /// Notes that bytes arrived (cheap: one load, and a store once per idle period).
    pub fn saw_bytes(&self) {
        if self.first_byte.load(Relaxed) == 0 {
            self.first_byte.store(now_ms(), Relaxed);
        }
    }

    /// No request is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
    }

    /// The most requests it had in flight at once.
    pub fn peak_in_flight(&self) -> u32 {
        self.peak_in_flight.load(Relaxed)
    }

    pub fn is_http2(&self) -> bool {
        self.http2.load(Relaxed)
    }

    pub fn has_served(&self) -> bool {
        self.served.load(Relaxed)
    }

    /// Since when it has been idle, if it is ([`now_ms`] units).
    pub fn idle_since(&self) -> Option<u64> {
        self.is_idle().then(|| self.idle_since.load(Relaxed))
    }

    /// Marks it for eviction; false if it already was.
    pub fn evict(&self) -> bool {
        !self.evicted.swap(true, Relaxed)
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Relaxed)
    }

    /// When ([`now_ms`] units) it must be closed if nothing changes; `None` while a request is in flight or
    /// when no timeout applies.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<u64> {
        if !self.is_idle() {
            return None;
        }
        let after = |since: u64, timeout: Option<Duration>| {
            timeout.map(|t| since.saturating_add(t.as_millis() as u64))
        };
        let idle_since = self.idle_since.load(Relaxed);
        if !self.has_served() {
            return after(idle_since, timeouts.header_read);
        }
        let first_byte = self.first_byte.load(Relaxed);
        if !self.is_http2() && first_byte != 0 && timeouts.header_read.is_some() {
            return after(first_byte, timeouts.header_read);
        }
        after(idle_since, timeouts.idle)
    }
}

/// A request in flight; dropping it ends the request (and may start the connection's idle time).
#[derive(Debug)]
pub struct RequestGuard(std::sync::Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Idle time and the first-byte mark are reset before the count drops, so that a task seeing the
        // connection idle never sees the previous idle period's times.
        self.0.idle_since.store(now_ms(), Relaxed);
        self.0.first_byte.store(0, Relaxed);
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const T: Timeouts = Timeouts {
        header_read: Some(Duration::from_secs(5)),
        idle: Some(Duration::from_secs(60)),
    };

    #[test]
    fn a_new_connection_has_the_header_timeout() {
        let state = ConnState::new(1);
        let deadline = state.deadline(&T).unwrap();
        assert!(deadline.abs_diff(now_ms() + 5000) < 1000);
        state.saw_bytes();
        assert_eq!(state.deadline(&T), Some(deadline));
    }

    #[test]
    fn no_deadline_while_a_request_is_in_flight_then_the_idle_timeout() {
        let state = Arc::new(ConnState::new(1));
        let guard = state.begin_request(false);
        assert_eq!(state.deadline(&T), None);
        drop(guard);
        let deadline = state.deadline(&T).unwrap();
        assert!(deadline.abs_diff(now_ms() + 60_000) < 1000);
        // HTTP/1.1: the next request's first byte starts the header timeout.
        state.saw_bytes();
        let deadline = state.deadline(&T).unwrap();
        assert!(deadline.abs_diff(now_ms() + 5000) < 1000);
    }

    #[test]
    fn http2_bytes_between_requests_do_not_shorten_the_idle_timeout() {
        let state = Arc::new(ConnState::new(1));
        drop(state.begin_request(true));
        state.saw_bytes();
        let deadline = state.deadline(&T).unwrap();
        assert!(deadline.abs_diff(now_ms() + 60_000) < 1000);
    }

    #[test]
    fn no_idle_timeout_keeps_an_idle_connection() {
        let state = Arc::new(ConnState::new(1));
        drop(state.begin_request(false));
        let keep = Timeouts { idle: None, ..T };
        assert_eq!(state.deadline(&keep), None);
    }
}
