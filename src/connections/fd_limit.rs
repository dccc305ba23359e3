//! The process's open-file limit, and the connection cap derived from it.

/// Descriptors kept out of the connection caps: the process itself (runtime, logs, listeners), model files read
/// while loading, the metrics listener's connections and the connections being closed to make room at a cap.
const RESERVED_FILES: u64 = 128;

/// The derived cap is never larger than this: past it an idle connection's memory matters more than descriptors.
const MAX_DERIVED_CONNECTIONS: usize = 10_000;

/// The derived cap is never smaller than this, however low the open-file limit.
const MIN_DERIVED_CONNECTIONS: usize = 4;

/// Raises the soft open-file limit to the hard limit (as Go's runtime does at start) and returns the soft limit
/// now in force; `None` where it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The default `max_connections` (for each of the REST and gRPC listeners) under an open-file limit of
/// `open_files`: what is left after [`RESERVED_FILES`] and a tenth of the limit, shared by the two listeners,
/// between 4 and 10,000. An unknown limit counts as 1024.
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let files = open_files.unwrap_or(1024).min(1 << 24);
    let usable = files.saturating_sub(RESERVED_FILES + files / 10);
    ((usable / 2) as usize).clamp(MIN_DERIVED_CONNECTIONS, MAX_DERIVED_CONNECTIONS)
}

/// Whether `cap` connections on each of the REST and gRPC listeners fit under `open_files` with
/// [`RESERVED_FILES`] to spare.
pub fn leaves_room(cap: usize, open_files: u64) -> bool {
    (cap as u64)
        .saturating_mul(2)
        .saturating_add(RESERVED_FILES)
        <= open_files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_open_file_limit() {
        assert_eq!(default_max_connections(Some(256)), 51);
        assert_eq!(default_max_connections(Some(1024)), 397);
        assert_eq!(
            default_max_connections(Some(1 << 20)),
            MAX_DERIVED_CONNECTIONS
        );
        assert_eq!(
            default_max_connections(Some(u64::MAX)),
            MAX_DERIVED_CONNECTIONS
        );
        assert_eq!(default_max_connections(Some(16)), MIN_DERIVED_CONNECTIONS);
        assert_eq!(default_max_connections(None), 397);
        assert!(leaves_room(51, 256) && leaves_room(64, 256) && !leaves_room(65, 256));
    }

    #[test]
    fn the_soft_limit_is_readable() {
        assert!(raise_open_file_limit().is_some_and(|n| n > 0));
    }
}
