//! Process metrics with the names every Prometheus client uses, read from `/proc` at scrape time
//! (nothing is written where `/proc` is missing).

use std::fmt::Write;

/// Kernel clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Fields of `/proc/self/stat` after the command name, counted from the state field (field 3) as 0.
struct Stat {
    cpu_seconds: f64,
    threads: u64,
    start_ticks: u64,
    virtual_bytes: u64,
}

fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        cpu_seconds: (num(11)? + num(12)?) as f64 / TICKS_PER_SECOND,
        threads: num(17)?,
        start_ticks: num(19)?,
        virtual_bytes: num(20)?,
    })
}

/// Resident memory from `/proc/self/status` (`VmRSS: N kB`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Seconds since the epoch at which the machine booted (`btime` in `/proc/stat`).
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The soft limit on open files (`Max open files` in `/proc/self/limits`).
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Appends `process_*` metrics.
pub fn write(out: &mut String) {
    if let Some(stat) = read_stat() {
        metric(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stat.cpu_seconds,
        );
        metric(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stat.virtual_bytes,
        );
        metric(
            out,
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            stat.threads,
        );
        if let Some(boot) = boot_time() {
            metric(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND,
            );
        }
    }
    if let Some(rss) = resident_bytes() {
        metric(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss,
        );
    }
    if let Some(fds) = open_fds() {
        metric(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        );
    }
    if let Some(max) = max_fds() {
        metric(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let mut out = String::new();
        super::write(&mut out);
        if std::path::Path::new("/proc/self/stat").exists() {
            for name in [
                "process_cpu_seconds_total ",
                "process_resident_memory_bytes ",
                "process_open_fds ",
                "process_max_fds ",
                "process_start_time_seconds ",
            ] {
                assert!(out.contains(name), "{name} missing in:\n{out}");
            }
            let rss: f64 = out
                .lines()
                .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
                .unwrap()
                .parse()
                .unwrap();
            assert!(rss > 1e6, "{rss}");
        }
    }
}
