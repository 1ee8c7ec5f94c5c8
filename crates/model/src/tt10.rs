//! The station data-file format of Circular 10/2021/TT-BTNMT (Annex 15): one TAB-separated
//! line per parameter, `<symbol>\t<value>\t<unit>\t<yyyyMMddHHmmss>\t<status>`, in the
//! station's local time. See `docs/telemetry.md`.

use chrono::{FixedOffset, NaiveDateTime, TimeZone};

use crate::aliases::canonical_metric;
use crate::envelope::{DecodeLimits, Event, Kind, StationStatus};
use crate::rejection::Rejection;
use crate::time::{EpochMillis, MAX_VALID_MS, MIN_VALID_MS};
use crate::units::to_canonical;

/// Where a TT10 file comes from and how to read its clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tt10Context {
    /// Station id the events carry.
    pub station: String,
    /// Kind of the station (`discharge` for wastewater, `emission` for stacks).
    pub kind: Kind,
    /// Offset of the datalogger's local time from UTC, in seconds (Vietnam: +7 h).
    pub utc_offset_seconds: i32,
}

/// The station id in a Circular 10/2021 file name,
/// `<Province>_<Facility>_<Station>_<yyyyMMddHHmmss>.txt` → `<Province>_<Facility>_<Station>`.
pub fn tt10_station_from_file_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let stem = base
        .strip_suffix(".txt")
        .or_else(|| base.strip_suffix(".TXT"))
        .unwrap_or(base);
    let (station, stamp) = stem.rsplit_once('_')?;
    (stamp.len() == 14
        && stamp.bytes().all(|b| b.is_ascii_digit())
        && station.split('_').count() >= 3)
        .then(|| station.to_string())
}

/// Decodes a TT10 data file into events: one event per (time, status) group, so that a
/// calibrating parameter travels apart from the valid ones. A line that does not parse is
/// refused on its own with its line number; the other lines still count.
pub fn decode_tt10(
    bytes: &[u8],
    ctx: &Tt10Context,
    now: Option<EpochMillis>,
    limits: &DecodeLimits,
) -> Vec<Result<Event, Rejection>> {
    if bytes.len() > limits.max_payload_bytes {
        return vec![Err(Rejection::Oversize {
            size: bytes.len(),
            limit: limits.max_payload_bytes,
        })];
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return vec![Err(Rejection::MalformedLine {
            line: 0,
            reason: "not UTF-8 text".into(),
        })];
    };
    let Some(offset) = FixedOffset::east_opt(ctx.utc_offset_seconds) else {
        return vec![Err(Rejection::InvalidField {
            field: "utc_offset",
            reason: "out of range",
        })];
    };
    let mut results: Vec<Result<Event, Rejection>> = Vec::new();
    // (ts, status) → index of its event in `results`.
    let mut groups: Vec<((EpochMillis, StationStatus), usize)> = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, i + 1, &offset, now, limits) {
            Err(e) => results.push(Err(e)),
            Ok((metric, value, ts, status)) => {
                let slot = match groups.iter().find(|(k, _)| *k == (ts, status)) {
                    Some((_, slot)) => *slot,
                    None => {
                        results.push(Ok(Event {
                            source: ctx.station.clone(),
                            kind: ctx.kind,
                            ts,
                            values: Vec::new(),
                            status,
                            location: None,
                            camera_event: None,
                            attrs: Default::default(),
                            zone: None,
                        }));
                        groups.push(((ts, status), results.len() - 1));
                        results.len() - 1
                    }
                };
                if let Ok(event) = &mut results[slot] {
                    if event.values.iter().any(|(m, _)| *m == metric) {
                        results.push(Err(Rejection::MalformedLine {
                            line: i + 1,
                            reason: format!("`{metric}` appears twice for the same time"),
                        }));
                    } else {
                        event.values.push((metric, value));
                    }
                }
            }
        }
    }
    if results.is_empty() {
        results.push(Err(Rejection::EmptyValues));
    }
    results
}

fn parse_line(
    line: &str,
    number: usize,
    offset: &FixedOffset,
    now: Option<EpochMillis>,
    limits: &DecodeLimits,
) -> Result<(String, f64, EpochMillis, StationStatus), Rejection> {
    let bad = |reason: String| Rejection::MalformedLine {
        line: number,
        reason,
    };
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    if fields.len() != 5 {
        return Err(bad(format!(
            "expected 5 TAB-separated fields (symbol, value, unit, time, status), found {}",
            fields.len()
        )));
    }
    let (symbol, value, unit, stamp, status) =
        (fields[0], fields[1], fields[2], fields[3], fields[4]);
    if symbol.is_empty() {
        return Err(bad("empty parameter symbol".into()));
    }
    let (canonical, factor) = canonical_metric(symbol);
    let metric = canonical.to_lowercase();
    let number_value: f64 = value
        .replace(',', ".")
        .parse()
        .map_err(|_| Rejection::NotANumber {
            metric: metric.clone(),
        })?;
    if !number_value.is_finite() {
        return Err(Rejection::NonFinite { metric });
    }
    let converted = to_canonical(&metric, unit, number_value * factor).map_err(|expected| {
        Rejection::WrongUnit {
            metric: metric.clone(),
            unit: unit.to_string(),
            expected,
        }
    })?;
    let local = NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
        .map_err(|_| bad(format!("`{stamp}` is not a yyyyMMddHHmmss time")))?;
    let ts = offset
        .from_local_datetime(&local)
        .single()
        .map(|t| t.timestamp_millis())
        .filter(|ms| (MIN_VALID_MS..MAX_VALID_MS).contains(ms))
        .ok_or_else(|| Rejection::InvalidTimestamp(stamp.to_string()))?;
    if let Some(now) = now {
        if ts - now > limits.max_future_ms {
            return Err(Rejection::FutureTimestamp {
                ts_ms: ts,
                ahead_ms: ts - now,
                limit_ms: limits.max_future_ms,
            });
        }
    }
    let status =
        StationStatus::parse(status).ok_or_else(|| Rejection::UnknownStatus(status.to_string()))?;
    Ok((metric, converted, ts, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "Flow\t152.4\tm3/h\t20261127103500\t00\nTemp\t31.2\toC\t20261127103500\t00\npH\t7.12\t-\t20261127103500\t00\nTSS\t48.0\tmg/l\t20261127103500\t00\nCOD\t171.5\tmg/l\t20261127103500\t00\nNH4\t6.8\tmg/l\t20261127103500\t01\n";

    fn ctx() -> Tt10Context {
        Tt10Context {
            station: "CanTho_TraNocKCN_WW01".into(),
            kind: Kind::Discharge,
            utc_offset_seconds: 7 * 3600,
        }
    }

    #[test]
    fn reads_the_example_file_of_the_standard() {
        let out = decode_tt10(EXAMPLE.as_bytes(), &ctx(), None, &DecodeLimits::default());
        assert_eq!(out.len(), 2);
        let valid = out[0].as_ref().unwrap();
        assert_eq!(valid.status, StationStatus::Normal);
        assert_eq!(
            valid.ts,
            crate::parse_rfc3339("2026-11-27T10:35:00+07:00").unwrap()
        );
        assert_eq!(valid.value("cod"), Some(171.5));
        assert_eq!(valid.value("ph"), Some(7.12));
        assert_eq!(valid.value("temperature"), Some(31.2));
        assert_eq!(valid.value("nh4"), None, "calibrating values travel apart");
        let calibrating = out[1].as_ref().unwrap();
        assert_eq!(calibrating.status, StationStatus::Calibrating);
        assert_eq!(calibrating.values, vec![("nh4".to_string(), 6.8)]);
    }

    #[test]
    fn bad_lines_are_refused_one_by_one() {
        let text = "COD\t171.5\tmg/l\t20261127103500\t00\nTSS\t48.0\tmg/l\t2026112710\nPM2,5\tabc\tug/m3\t20261127103500\t00\nCOD\t1\tkg\t20261127103500\t00\nNH4\t1\tmg/l\t20261127103500\t07\n";
        let out = decode_tt10(text.as_bytes(), &ctx(), None, &DecodeLimits::default());
        let codes: Vec<&str> = out
            .iter()
            .map(|r| r.as_ref().map_or_else(|e| e.code(), |_| "ok"))
            .collect();
        assert_eq!(
            codes,
            vec![
                "ok",
                "malformed_line",
                "not_a_number",
                "wrong_unit",
                "unknown_status"
            ]
        );
    }

    #[test]
    fn station_ids_from_file_names() {
        assert_eq!(
            tt10_station_from_file_name("in/CanTho_TraNocKCN_WW01_20261127103500.txt").as_deref(),
            Some("CanTho_TraNocKCN_WW01")
        );
        assert_eq!(tt10_station_from_file_name("notes.txt"), None);
    }

    #[test]
    fn empty_or_binary_files_are_refused() {
        let limits = DecodeLimits::default();
        assert_eq!(
            decode_tt10(b"\n\n", &ctx(), None, &limits)[0]
                .as_ref()
                .unwrap_err()
                .code(),
            "empty_values"
        );
        assert_eq!(
            decode_tt10(&[0xff, 0xfe], &ctx(), None, &limits)[0]
                .as_ref()
                .unwrap_err()
                .code(),
            "malformed_line"
        );
    }
}
