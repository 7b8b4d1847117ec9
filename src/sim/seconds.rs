//! Durations in scenario files: `"1.5s"`, exact to the nanosecond
//! (`"0.000250001s"`); a plain number of seconds is read too.

use core::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serializer};

/// `duration` as seconds with up to nine decimals and an `s`.
pub fn format(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", duration.as_secs());
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}s", duration.as_secs(), fraction.trim_end_matches('0'))
}

/// Parses what [`format()`] writes (the `s` is optional).
///
/// # Errors
///
/// If `text` is not a non-negative decimal number of seconds with at most nine
/// decimals.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration in seconds, such as \"1.5s\"");
    let number = text.trim().strip_suffix('s').unwrap_or(text.trim());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds: u64 = whole.parse().map_err(|_| bad())?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(seconds, nanos))
}

/// Serde: writes [`format()`].
///
/// # Errors
///
/// Only the serializer's own.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// Serde: reads [`parse`]'s strings or a number of seconds.
///
/// # Errors
///
/// If the value is neither.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Seconds(f64),
    }
    match Written::deserialize(deserializer)? {
        Written::Text(text) => parse(&text).map_err(de::Error::custom),
        Written::Seconds(seconds) => Duration::try_from_secs_f64(seconds)
            .map_err(|_| de::Error::custom(format!("{seconds} is not a duration in seconds"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_exactly() {
        for nanos in [0, 1, 250_000_001, 1_500_000_000, 12_345_678_901_234] {
            let duration = Duration::from_nanos(nanos);
            assert_eq!(
                parse(&format(duration)),
                Ok(duration),
                "{}",
                format(duration)
            );
        }
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn nonsense_is_refused() {
        for text in ["", "s", "-1s", "1.2.3s", "1.0000000001s", "abc", ".5s"] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
    }
}
