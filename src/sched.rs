//! Scheduling hints for the threads that run models.

/// Marks the calling thread as CPU-bound (Linux `SCHED_BATCH`): a model thread woken by a new request then waits
/// for the I/O thread to finish what it is doing (reading the other requests that arrived), instead of preempting
/// it at once. On a busy core this turns two context switches per request into two per burst of requests;
/// priorities and time slices are unchanged.
pub fn mark_compute_thread() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter struct.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            tracing::debug!("SCHED_BATCH refused: {}", std::io::Error::last_os_error());
        }
    }
}
