//! Durations written as short strings: `"500ms"`, `"10s"`, `"5m"`, `"24h"`, `"7d"`, or sums such as `"1h30m"`.
//!
//! Use the serde helper with `#[serde(with = "crate::duration::serde_str")]` on a [`Duration`] field.

use std::time::Duration;

/// Units accepted after a number, with their length in milliseconds. Longest spelling first so that `ms` is
/// not read as `m` followed by garbage.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// A duration string that is not `<integer><unit>`… with unit `ms`, `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}; write an integer followed by a unit (ms, s, m, h, d), e.g. \"10s\"")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses `"10s"`, `"500ms"`, `"1h30m"`. Whitespace, signs, fractions and missing units are refused.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(fail("empty string"));
    }
    let mut rest = input;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail("expected a digit"));
        }
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| fail("number too large"))?;
        let (unit, tail) = UNITS
            .iter()
            .find_map(|(name, ms)| tail.strip_prefix(name).map(|t| (*ms, t)))
            .ok_or_else(|| fail("missing or unknown unit"))?;
        let part = number.checked_mul(unit).ok_or_else(|| fail("too large"))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| fail("too large"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse_duration`] reads it, using the largest unit up to hours that divides it
/// exactly (`24h`, `90s`, `1500ms`). Sub-millisecond parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let (name, unit) = [("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        .into_iter()
        .find(|(_, unit)| ms % unit == 0)
        .unwrap_or(("ms", 1));
    format!("{}{name}", ms / unit)
}

/// Serde adapter: a [`Duration`] as a string such as `"10s"`.
pub mod serde_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration with [`super::format_duration`].
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    /// Reads the duration with [`super::parse_duration`].
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_sums() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1_500)));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "10",
            "s",
            "ten seconds",
            "10 s",
            "-1s",
            "1.5s",
            "10sec",
            "10x",
            " 10s",
            "1h30",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615d").is_err());
    }

    #[test]
    fn error_names_input_and_units() {
        let err = parse_duration("10x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("\"10x\"") && err.contains("ms, s, m, h, d"),
            "{err}"
        );
    }

    #[test]
    fn format_round_trips() {
        for text in ["0s", "500ms", "1500ms", "10s", "90s", "5m", "24h", "48h"] {
            let parsed = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(parsed), text);
        }
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
    }
}
