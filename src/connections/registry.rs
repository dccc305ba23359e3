//! A listener's open connections, its connection cap, and what happens at the cap: the longest-idle
//! connection is closed to make room; when every connection has a request in flight the newcomer is refused;
//! while many evicted connections are still closing, the newcomer waits for one of them to go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::state::{now_ms, ConnState};

/// Idle connections chosen for eviction that may still be closing (an HTTP/2 one gets a GOAWAY and a second to
/// go); past this many, a newcomer waits for one to go rather than more being evicted, so that descriptors stay
/// bounded by the cap plus this.
pub const EVICTION_SLACK: usize = 32;

/// Most one warning about the cap is logged per this many milliseconds (an attack must not flood the log).
const REPORT_EVERY_MS: u64 = 10_000;

/// What [`Registry::admit`] decided for a new connection.
pub enum Admission {
    /// Serve it.
    Admitted(Arc<ConnState>),
    /// At the cap with every connection busy: close it.
    Refused,
    /// At the cap with [`EVICTION_SLACK`] evicted connections still closing: ask again once one has gone
    /// ([`Registry::wait_for_close`]).
    Wait,
}

/// The open connections of one listener.
pub struct Registry {
    /// The listener, for log lines ("REST", "gRPC", "metrics").
    name: &'static str,
    /// Most open connections (`max_connections`).
    max: usize,
    inner: Mutex<Inner>,
    /// Signalled when an evicted connection has gone.
    evicted_gone: Notify,
}

#[derive(Default)]
struct Inner {
    live: HashMap<u64, Arc<ConnState>>,
    next_id: u64,
    /// Counts since the last warning about the cap, and when it was logged.
    evicted_since_report: u64,
    refused_since_report: u64,
    last_report_ms: u64,
}

impl Registry {
    pub fn new(name: &'static str, max: usize) -> Registry {
        Registry {
            name,
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
            evicted_gone: Notify::new(),
        }
    }

    /// Admits a new connection, making room at the cap by evicting the connection idle the longest.
    pub fn admit(&self) -> Admission {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.live.len() >= self.max {
            // Evicted connections with nothing in flight are about to go (within a second); an evicted one that
            // took a request in the meantime finishes it first and counts as open, like any busy connection.
            let mut closing = 0;
            let mut victim: Option<(u64, &Arc<ConnState>)> = None;
            for c in inner.live.values() {
                match c.idle_since() {
                    Some(_) if c.is_evicted() => closing += 1,
                    Some(since) if victim.is_none_or(|(s, v)| (since, c.id) < (s, v.id)) => {
                        victim = Some((since, c))
                    }
                    _ => {}
                }
            }
            if inner.live.len() - closing >= self.max {
                if closing >= EVICTION_SLACK {
                    return Admission::Wait;
                }
                match victim.map(|(_, c)| c.clone()) {
                    Some(victim) => {
                        victim.evict();
                        victim.close.notify_one();
                        inner.evicted_since_report += 1;
                    }
                    None => {
                        inner.refused_since_report += 1;
                        self.report(&mut inner);
                        return Admission::Refused;
                    }
                }
                self.report(&mut inner);
            }
        }
        inner.next_id += 1;
        let state = Arc::new(ConnState::new(inner.next_id));
        inner.live.insert(state.id, state.clone());
        Admission::Admitted(state)
    }

    /// Forgets a closed connection.
    pub fn remove(&self, state: &ConnState) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.live.remove(&state.id).is_some() && state.is_evicted() {
            self.evicted_gone.notify_one();
        }
    }

    /// Waits (at most `limit`) until an evicted connection has gone; false if none went.
    pub async fn wait_for_close(&self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, self.evicted_gone.notified())
            .await
            .is_ok()
    }

    /// Open connections (evicted ones still closing included).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live
            .len()
    }

    /// Logs what the cap did, at most once every [`REPORT_EVERY_MS`].
    fn report(&self, inner: &mut Inner) {
        let now = now_ms();
        if now.saturating_sub(inner.last_report_ms) < REPORT_EVERY_MS && inner.last_report_ms != 0 {
            return;
        }
        tracing::warn!(
            listener = self.name,
            max_connections = self.max,
            evicted = inner.evicted_since_report,
            refused = inner.refused_since_report,
            "{} listener at max_connections ({}): closed {} idle connection(s) to make room and refused {} \
             new one(s) (all busy) since the last report",
            self.name,
            self.max,
            inner.evicted_since_report,
            inner.refused_since_report,
        );
        inner.last_report_ms = now;
        inner.evicted_since_report = 0;
        inner.refused_since_report = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(registry: &Registry) -> Arc<ConnState> {
        match registry.admit() {
            Admission::Admitted(state) => state,
            Admission::Refused | Admission::Wait => panic!("not admitted"),
        }
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let registry = Registry::new("test", 2);
        let first = admitted(&registry);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = admitted(&registry);
        let third = admitted(&registry);
        assert!(first.is_evicted());
        assert!(!second.is_evicted() && !third.is_evicted());
        assert_eq!(registry.len(), 3);
        registry.remove(&first);
        assert_eq!(registry.len(), 2);
        // The evicted one is gone: the next newcomer evicts the longest idle of the others.
        let _fourth = admitted(&registry);
        assert!(second.is_evicted());
    }

    #[test]
    fn at_the_cap_with_every_connection_busy_a_newcomer_is_refused() {
        let registry = Registry::new("test", 2);
        let a = admitted(&registry);
        let b = admitted(&registry);
        let _busy = (a.begin_request(false), b.begin_request(true));
        assert!(matches!(registry.admit(), Admission::Refused));
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn an_evicted_connection_that_took_a_request_counts_as_busy_not_closing() {
        let registry = Registry::new("test", 1);
        let first = admitted(&registry);
        let second = admitted(&registry);
        assert!(first.is_evicted());
        let _busy = first.begin_request(true);
        // The first is busy (open), the second idle: the second makes room; nobody waits.
        let _third = admitted(&registry);
        assert!(second.is_evicted());
    }

    #[test]
    fn evictions_in_progress_are_bounded_and_newcomers_wait_for_them() {
        let registry = Registry::new("test", 1);
        let mut kept = vec![admitted(&registry)];
        for _ in 0..EVICTION_SLACK {
            kept.push(admitted(&registry));
        }
        assert!(matches!(registry.admit(), Admission::Wait));
        assert_eq!(registry.len(), EVICTION_SLACK + 1);
        registry.remove(&kept[0]);
        assert!(matches!(registry.admit(), Admission::Admitted(_)));
    }
}
