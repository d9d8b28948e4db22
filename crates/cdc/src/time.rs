//! Wall-clock times, and their form in Salesforce's REST API.
//!
//! Owns: the current time of a transaction.

/// Now, epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Epoch milliseconds as a REST datetime, UTC
/// (`2026-12-05T00:07:09.722+0000`).
pub(crate) fn rest_datetime(ms: i64) -> String {
    eventbus_objects::record::format_datetime(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_read_like_salesforce_writes_them() {
        assert_eq!(rest_datetime(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            rest_datetime(1_796_429_229_722),
            "2026-12-05T00:07:09.722+0000"
        );
        assert_eq!(
            rest_datetime(951_782_400_000),
            "2000-02-29T00:00:00.000+0000"
        );
    }
}
