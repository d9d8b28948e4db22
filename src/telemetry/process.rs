//! Process metrics as Prometheus client libraries export them
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from /proc on Linux at each scrape.
//!
//! Owns: reading and parsing /proc for one process (this one for the
//! metrics; the load generator reads the server it measures through
//! [`cpu_seconds`] and [`resident_bytes`]). Must not: know what the server
//! does. Elsewhere than Linux nothing is read and nothing is exported.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Which process to read: `self` or a pid.
#[derive(Clone, Copy, Debug)]
pub enum Pid {
    /// The calling process.
    This,
    /// Another process.
    Of(u32),
}

impl Pid {
    fn path(self, file: &str) -> String {
        match self {
            Pid::This => format!("/proc/self/{file}"),
            Pid::Of(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// Clock ticks per second, the unit of CPU times and start times in
/// /proc/<pid>/stat.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a configuration value; it takes no pointers and
    // has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The fields of /proc/<pid>/stat after the command name, which may itself
/// hold spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace().collect())
}

/// User plus system CPU time and the start time after boot, in ticks.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let fields = stat_fields(stat)?;
    // Counted from the state (field 3 of the line): utime is field 14,
    // stime 15, starttime 22.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

/// A `Key:   1234 kB` line of /proc/<pid>/status, in bytes.
fn status_bytes(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit on open files from /proc/<pid>/limits (`None` when
/// unlimited).
fn parse_max_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The boot time, epoch seconds, from /proc/stat.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// User plus system CPU time of `pid` in seconds.
pub fn cpu_seconds(pid: Pid) -> Option<f64> {
    let stat = std::fs::read_to_string(pid.path("stat")).ok()?;
    Some(parse_stat(&stat)?.0 as f64 / clock_ticks())
}

/// Resident set size of `pid` in bytes.
pub fn resident_bytes(pid: Pid) -> Option<u64> {
    let status = std::fs::read_to_string(pid.path("status")).ok()?;
    status_bytes(&status, "VmRSS:")
}

/// One reading of a process.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl Sample {
    fn read(pid: Pid) -> Option<Self> {
        let stat = std::fs::read_to_string(pid.path("stat")).ok()?;
        let status = std::fs::read_to_string(pid.path("status")).ok()?;
        let (cpu_ticks, start_ticks) = parse_stat(&stat)?;
        let ticks = clock_ticks();
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_boot_time(&s));
        Some(Self {
            cpu_seconds: cpu_ticks as f64 / ticks,
            resident_bytes: status_bytes(&status, "VmRSS:")?,
            virtual_bytes: status_bytes(&status, "VmSize:")?,
            open_fds: std::fs::read_dir(pid.path("fd"))
                .map(|d| d.count() as u64)
                .unwrap_or(0),
            max_fds: std::fs::read_to_string(pid.path("limits"))
                .ok()
                .and_then(|l| parse_max_files(&l)),
            start_time_seconds: boot.map(|b| b as f64 + start_ticks as f64 / ticks),
        })
    }
}

/// Exports this process's figures on every scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = Sample::read(Pid::This) else {
            return Ok(());
        };
        let m = encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new(s.cpu_seconds).encode(m)?;
        let whole = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(Unit::Bytes),
                Some(whole(s.resident_bytes)),
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(Unit::Bytes),
                Some(whole(s.virtual_bytes)),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                Some(whole(s.open_fds)),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                s.max_fds.map(whole),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let m = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            ConstGauge::new(value).encode(m)?;
        }
        if let Some(start) = s.start_time_seconds {
            let m = encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            ConstGauge::new(start).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 8 0 123456 104857600 2560 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((300, 123456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        let status = "Name:\teventbus\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_bytes(status, "VmRSS:"), Some(10 * 1024 * 1024));
        assert_eq!(status_bytes(status, "VmSize:"), Some(200 * 1024 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_files(unlimited), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_and_exported_under_the_usual_names() {
        let s = Sample::read(Pid::This).expect("/proc is readable");
        assert!(s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds > 0);
        assert!(s.start_time_seconds.is_some_and(|t| t > 1.5e9));
        assert!(resident_bytes(Pid::Of(u32::MAX)).is_none());
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
