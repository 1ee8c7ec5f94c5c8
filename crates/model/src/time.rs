//! Timestamps: epoch milliseconds inside Watchfloor, RFC 3339 UTC at the edges.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC. Every timestamp inside Watchfloor is one of these.
pub type EpochMillis = i64;

/// Earliest timestamp accepted anywhere (2000-01-01T00:00:00Z): older ones are typos.
pub const MIN_VALID_MS: EpochMillis = 946_684_800_000;
/// Latest timestamp accepted anywhere (2100-01-01T00:00:00Z).
pub const MAX_VALID_MS: EpochMillis = 4_102_444_800_000;

/// Parses an RFC 3339 timestamp (any offset) into epoch milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<EpochMillis> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Parses the envelope's `ts`: an RFC 3339 string or an integer of epoch milliseconds.
/// Returns `None` when it is neither, or outside 2000–2100.
pub fn parse_timestamp_value(value: &serde_json::Value) -> Option<EpochMillis> {
    let ms = match value {
        serde_json::Value::String(s) => parse_rfc3339(s)?,
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(ms) => ms,
            None => {
                let f = n.as_f64()?;
                if !f.is_finite() || f.fract() != 0.0 {
                    return None;
                }
                f as i64
            }
        },
        _ => return None,
    };
    (MIN_VALID_MS..MAX_VALID_MS).contains(&ms).then_some(ms)
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision
/// (`2026-11-27T03:00:00.000Z`). Out-of-range values are clamped to the valid span.
pub fn format_rfc3339(ms: EpochMillis) -> String {
    let clamped = ms.clamp(MIN_VALID_MS, MAX_VALID_MS);
    DateTime::<Utc>::from_timestamp_millis(clamped)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_round_trip_and_offsets() {
        let ms = parse_rfc3339("2026-11-27T10:00:00+07:00").unwrap();
        assert_eq!(format_rfc3339(ms), "2026-11-27T03:00:00.000Z");
    }

    #[test]
    fn epoch_millis_and_rejects() {
        assert_eq!(
            parse_timestamp_value(&json!(1_764_000_000_000i64)),
            Some(1_764_000_000_000)
        );
        assert_eq!(parse_timestamp_value(&json!("yesterday")), None);
        assert_eq!(parse_timestamp_value(&json!(12)), None, "1970 is not valid");
        assert_eq!(
            parse_timestamp_value(&json!(1.5e12)),
            Some(1_500_000_000_000)
        );
        assert_eq!(parse_timestamp_value(&json!(1.5)), None);
        assert_eq!(parse_timestamp_value(&json!(true)), None);
    }
}
