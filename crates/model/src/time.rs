//! Timestamps: epoch milliseconds inside Watchfloor, RFC 3339 UTC at the edges; the city's
//! local calendar (UTC+7, no daylight saving) for days and months of reports, indicators
//! and data quality.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};

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

/// The city's offset from UTC (Vietnam, no daylight saving), ms.
pub const CITY_UTC_OFFSET_MS: i64 = 7 * 3_600_000;
/// A day, ms.
pub const DAY_MS: i64 = 86_400_000;

/// The city's local day of an instant, as days since 1970-01-01.
pub fn local_day(ms: EpochMillis) -> i64 {
    (ms + CITY_UTC_OFFSET_MS).div_euclid(DAY_MS)
}

/// The first instant of a local day.
pub fn local_day_start(day: i64) -> EpochMillis {
    day * DAY_MS - CITY_UTC_OFFSET_MS
}

fn date_of(day: i64) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).unwrap_or_default()
}

/// `YYYY-MM-DD` of a local day.
pub fn day_text(day: i64) -> String {
    date_of(day).format("%Y-%m-%d").to_string()
}

/// The local day of `YYYY-MM-DD`; `None` for anything else (or a date that does not exist).
pub fn day_number(text: &str) -> Option<i64> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    (text.len() == 10).then(|| i64::from(date.num_days_from_ce()) - 719_163)
}

/// The month of a local day, as year × 12 + month − 1.
pub fn month_of(day: i64) -> i64 {
    let date = date_of(day);
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_days_and_months_are_the_citys() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(
            day_number("2026-11-30").map(day_text).as_deref(),
            Some("2026-11-30")
        );
        assert_eq!(day_number("2026-02-30"), None);
        assert_eq!(day_number("2026-2-3"), None);
        assert_eq!(
            day_number("2024-02-29").map(day_text).as_deref(),
            Some("2024-02-29")
        );
        // 17:30 UTC on 30 November is 00:30 on 1 December in Vietnam.
        let ts = 1_796_059_800_000;
        assert_eq!(day_text(local_day(ts)), "2026-12-01");
        assert_eq!(month_of(local_day(ts)), 2026 * 12 + 11);
        assert_eq!(month_of(local_day(ts - 3_600_000)), 2026 * 12 + 10);
        assert_eq!(local_day_start(local_day(ts)), ts - 30 * 60_000);
    }

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
