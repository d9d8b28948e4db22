//! Where a person asks to start or stop reading a topic, as typed into the
//! console's forms: `EARLIEST`, `LATEST`, a replay id in hex (as the CLI
//! and the console print them), or a moment (RFC 3339, or a duration ago
//! such as `15m`).
//!
//! Owns: parsing those words and replay ids. Must not: read the log (the
//! pages turn a position into an offset with the engine's help).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::types::{Offset, ReplayId};

/// A position typed into a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Position {
    /// The oldest retained event.
    Earliest,
    /// The newest events (the last page).
    Latest,
    /// The event with this offset (its replay id).
    Replay(Offset),
    /// The first event committed at or after this moment, epoch ms.
    Time(u64),
}

/// A replay id in hex (16 digits, as printed), or why it is not one.
pub(super) fn parse_replay_hex(s: &str) -> Result<ReplayId, String> {
    let s = s.trim();
    let bad = || format!("\"{s}\" is not a replay id in hex");
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    ReplayId::decode(&bytes).map_err(|_| bad())
}

impl Position {
    /// Parses `s` (any case for the words), with `now` for durations ago.
    ///
    /// # Errors
    /// A sentence naming what is accepted.
    pub(super) fn parse(s: &str, now: SystemTime) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("earliest") {
            return Ok(Self::Earliest);
        }
        if s.eq_ignore_ascii_case("latest") {
            return Ok(Self::Latest);
        }
        if let Ok(r) = parse_replay_hex(s) {
            return Ok(Self::Replay(r.offset()));
        }
        if let Ok(t) = humantime::parse_rfc3339_weak(s) {
            return Ok(Self::Time(epoch_ms(t)));
        }
        if let Ok(ago) = humantime::parse_duration(s) {
            let t = now.checked_sub(ago).unwrap_or(UNIX_EPOCH);
            return Ok(Self::Time(epoch_ms(t)));
        }
        Err(format!(
            "\"{s}\" is not EARLIEST, LATEST, a replay id in hex, a time (2026-12-05T10:00:00Z) or a duration ago (15m)"
        ))
    }
}

/// Milliseconds since the epoch (0 before it).
fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An epoch-ms time as RFC 3339 with milliseconds, UTC.
pub(super) fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn words_replay_ids_times_and_durations_parse() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(Position::parse("", now), Ok(Position::Earliest));
        assert_eq!(Position::parse(" earliest ", now), Ok(Position::Earliest));
        assert_eq!(Position::parse("LATEST", now), Ok(Position::Latest));
        assert_eq!(
            Position::parse("000000000000002a", now),
            Ok(Position::Replay(Offset(42)))
        );
        assert_eq!(
            Position::parse("1970-01-01T00:00:01Z", now),
            Ok(Position::Time(1_000))
        );
        assert_eq!(
            Position::parse("15m", now),
            Ok(Position::Time(1_000_000_000 - 900_000))
        );
        let err = Position::parse("yesterday", now).expect_err("not a position");
        assert!(err.contains("EARLIEST, LATEST"), "{err}");
        assert!(parse_replay_hex("abc").is_err());
        assert!(parse_replay_hex("zz").is_err());
    }

    #[test]
    fn times_print_in_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.500Z");
    }

    proptest! {
        #[test]
        fn every_printed_replay_id_parses_back(n in any::<u64>()) {
            let printed = ReplayId::from(Offset(n)).to_string();
            prop_assert_eq!(parse_replay_hex(&printed).map(|r| r.offset()), Ok(Offset(n)));
        }

        #[test]
        fn nothing_typed_panics(s in ".{0,40}") {
            let _ = Position::parse(&s, SystemTime::now());
        }
    }
}
