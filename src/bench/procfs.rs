//! Reads a local process's memory and CPU use from /proc (Linux), through
//! the telemetry module's reader (the server's process metrics).

use crate::telemetry::process::{self, Pid};

/// Resident set size in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    process::resident_bytes(Pid::Of(pid))
}

/// User plus system CPU time in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    process::cpu_seconds(Pid::Of(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).is_some_and(|r| r > 0));
        assert!(cpu_seconds(pid).is_some_and(|c| c >= 0.0));
        assert!(rss_bytes(u32::MAX).is_none());
    }
}
