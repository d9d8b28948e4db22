//! How the client commands show activity figures: ages ("3s ago"), rates
//! and byte sizes, the same in `topic list` and `eventbus top`.
//!
//! Owns: turning numbers into short table cells.
//! Must not: talk to a server.

/// Milliseconds since the Unix epoch, now (0 if the clock is before it).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long before `now_ms` the epoch-ms time `then_ms` was, as "3s ago",
/// "5m ago", "2h ago" or "4d ago"; "-" for 0 (never). A time ahead of the
/// local clock (skew between machines) reads "just now".
pub(super) fn age(now_ms: u64, then_ms: i64) -> String {
    let Ok(then) = u64::try_from(then_ms) else {
        return "-".to_owned();
    };
    if then == 0 {
        return "-".to_owned();
    }
    let secs = now_ms.saturating_sub(then) / 1000;
    match secs {
        0 => "just now".to_owned(),
        1..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..172_800 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// Events per second with one decimal ("0.0", "12.5", "1200.0").
pub(super) fn rate(per_second: f64) -> String {
    format!("{per_second:.1}")
}

/// A byte count in binary units ("512 B", "1.5 KiB", "20.0 MiB").
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_top() {
        let now = 1_700_000_000_000;
        assert_eq!(age(now, 0), "-");
        assert_eq!(age(now, -5), "-");
        assert_eq!(age(now, now as i64 + 5_000), "just now");
        assert_eq!(age(now, now as i64 - 3_400), "3s ago");
        assert_eq!(age(now, now as i64 - 125_000), "2m ago");
        assert_eq!(age(now, now as i64 - 7_300_000), "2h ago");
        assert_eq!(age(now, now as i64 - 3 * 86_400_000), "3d ago");
    }

    #[test]
    fn rates_and_sizes_are_short() {
        assert_eq!(rate(0.0), "0.0");
        assert_eq!(rate(12.345), "12.3");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20.0 MiB");
    }
}
