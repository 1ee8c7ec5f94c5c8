//! Exact contracts of the model's small pieces, written against the mutants cargo-mutants
//! found uncaught (docs/testing.md): names round-trip, limits hold at their boundaries,
//! conversions give worked values, TT10 lines report their own line numbers.

use serde_json::json;

use crate::envelope::Location;
use crate::units::to_canonical;
use crate::vn_aqi::{category, Pollutant};
use crate::{
    canonical_unit, decode_envelope, decode_tt10, parse_timestamp_value,
    tt10_station_from_file_name, DecodeLimits, Kind, Rejection, Severity, StationStatus,
    Tt10Context,
};

#[test]
fn severities_kinds_and_statuses_round_trip_by_name() {
    for (name, s) in [
        ("info", Severity::Info),
        ("minor", Severity::Minor),
        ("major", Severity::Major),
        ("critical", Severity::Critical),
    ] {
        assert_eq!(Severity::parse(name), Some(s));
        assert_eq!(s.as_str(), name);
        assert_eq!(s.to_string(), name);
    }
    assert_eq!(Severity::parse("severe"), None);
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        assert_eq!(
            kind.index(),
            i,
            "{kind:?}: dense per-kind tables rely on it"
        );
    }
    for (code, status) in [
        ("00", StationStatus::Normal),
        ("01", StationStatus::Calibrating),
        ("02", StationStatus::Error),
    ] {
        assert_eq!(StationStatus::parse(code), Some(status));
        assert_eq!(status.code(), code);
    }
    assert_eq!(StationStatus::parse("03"), None);
}

#[test]
fn distances_are_great_circle_metres() {
    let a = Location {
        lat: 10.0,
        lon: 105.0,
    };
    // One degree of latitude: 6,371 km × π / 180 = 111,194.93 m.
    let north = Location {
        lat: 11.0,
        lon: 105.0,
    };
    assert!(
        (a.distance_m(&north) - 111_194.93).abs() < 0.5,
        "{}",
        a.distance_m(&north)
    );
    // One degree of longitude at 10° N: 2R·asin(cos 10° · sin 0.5°) = 109,505.6 m.
    let east = Location {
        lat: 10.0,
        lon: 106.0,
    };
    assert!(
        (a.distance_m(&east) - 109_505.6).abs() < 0.5,
        "{}",
        a.distance_m(&east)
    );
    assert_eq!(a.distance_m(&a), 0.0);
}

fn reading(ts: i64, source: &str, values: serde_json::Value) -> Vec<u8> {
    json!({"source": source, "kind": "air", "ts": ts, "values": values})
        .to_string()
        .into_bytes()
}

#[test]
fn each_limit_holds_exactly_at_its_boundary() {
    let now = 1_800_000_000_000;
    let limits = DecodeLimits::default();
    // Future: exactly max_future_ms ahead is accepted, one more is not.
    let ahead = |ms: i64| {
        decode_envelope(
            &reading(now + ms, "S", json!({"pm25": 1})),
            Some(now),
            &limits,
        )
    };
    assert!(ahead(limits.max_future_ms).is_ok());
    assert!(
        matches!(ahead(limits.max_future_ms + 1), Err(Rejection::FutureTimestamp { ahead_ms, .. }) if ahead_ms == limits.max_future_ms + 1)
    );
    // Source length.
    let source = |n: usize| {
        decode_envelope(
            &reading(now, &"s".repeat(n), json!({"pm25": 1})),
            None,
            &limits,
        )
    };
    assert!(source(limits.max_source_len).is_ok());
    assert!(source(limits.max_source_len + 1).is_err());
    // Number of metrics.
    let many = |n: usize| {
        let values: serde_json::Map<String, serde_json::Value> =
            (0..n).map(|i| (format!("m{i}"), json!(1))).collect();
        decode_envelope(&reading(now, "S", values.into()), None, &limits)
    };
    assert!(many(limits.max_values).is_ok());
    assert!(many(limits.max_values + 1).is_err());
    // Payload size: exactly the limit passes the size check.
    let body = reading(now, "S", json!({"pm25": 1}));
    let exact = DecodeLimits {
        max_payload_bytes: body.len(),
        ..limits
    };
    assert!(decode_envelope(&body, None, &exact).is_ok());
    let under = DecodeLimits {
        max_payload_bytes: body.len() - 1,
        ..limits
    };
    assert!(matches!(
        decode_envelope(&body, None, &under),
        Err(Rejection::Oversize { .. })
    ));
}

#[test]
fn aliases_scale_and_fractional_epochs_are_refused() {
    // FIWARE's relativeHumidity is a ratio: 0.42 → 42 %.
    let event = decode_envelope(
        &reading(1_800_000_000_000, "S", json!({"relativeHumidity": 0.42})),
        None,
        &DecodeLimits::default(),
    )
    .unwrap();
    assert!((event.value("humidity").unwrap() - 42.0).abs() < 1e-9);
    assert_eq!(parse_timestamp_value(&json!(1_800_000_000_000.5)), None);
    assert_eq!(
        parse_timestamp_value(&json!(1_800_000_000_000.0)),
        Some(1_800_000_000_000)
    );
}

#[test]
fn unit_conversions_give_worked_values() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(
        to_canonical("temperature", "K", 300.0).unwrap(),
        26.85
    ));
    assert!(close(
        to_canonical("temperature", "°F", 212.0).unwrap(),
        100.0
    ));
    assert!(close(to_canonical("temperature", "F", 32.0).unwrap(), 0.0));
    assert!(close(to_canonical("speed", "m/s", 10.0).unwrap(), 36.0));
    assert!(close(to_canonical("flow", "l/s", 10.0).unwrap(), 36.0));
    assert!(close(
        to_canonical("occupancy", "ratio", 0.25).unwrap(),
        25.0
    ));
    assert!(close(to_canonical("rainfall", "mm/h", 3.0).unwrap(), 3.0));
    assert!(close(to_canonical("ph", "pH", 7.2).unwrap(), 7.2));
    for (metric, unit) in [
        ("flow", "m3/h"),
        ("speed", "km/h"),
        ("ph", "pH"),
        ("occupancy", "%"),
        ("humidity", "%"),
        ("rainfall", "mm"),
        ("water_level", "m"),
        ("cod", "mg/L"),
    ] {
        assert_eq!(canonical_unit(metric), Some(unit), "{metric}");
    }
    assert_eq!(canonical_unit("colour"), None);
}

#[test]
fn aqi_names_and_categories_at_their_edges() {
    for p in Pollutant::ALL {
        assert_eq!(Pollutant::parse(p.column()), Some(p));
    }
    assert_eq!(Pollutant::parse("pm1"), None);
    assert!(category(-1.0).is_none());
    assert!(category(f64::NAN).is_none());
    assert_eq!(category(0.0).map(|c| c.rank), Some(1));
    // At the last O3 8-hour breakpoint (400 µg/m³) the index is 300; past it, NaN (the
    // 1-hour value applies). Other tables end at 500.
    assert_eq!(
        crate::vn_aqi::sub_index(Pollutant::O3EightHour, 400.0),
        300.0
    );
    assert!(crate::vn_aqi::sub_index(Pollutant::O3EightHour, 400.5).is_nan());
    assert_eq!(crate::vn_aqi::sub_index(Pollutant::Pm25, 500.0), 500.0);
    assert_eq!(crate::vn_aqi::sub_index(Pollutant::Pm25, 900.0), 500.0);
    assert_eq!(crate::vn_aqi::sub_index(Pollutant::Pm25, 50.0), 100.0);
}

fn tt10(text: &str) -> Vec<Result<crate::Event, Rejection>> {
    let ctx = Tt10Context {
        station: "CT_TN_01".into(),
        kind: Kind::Discharge,
        utc_offset_seconds: 7 * 3600,
    };
    decode_tt10(
        text.as_bytes(),
        &ctx,
        Some(1_800_000_000_000),
        &DecodeLimits::default(),
    )
}

#[test]
fn tt10_lines_report_their_own_line_numbers_and_limits() {
    // Line 2 is blank, line 3 broken, line 5 repeats COD for the same time.
    let got = tt10(
        "COD\t10\tmg/l\t20260101000000\t00\n\nCOD\tx\n\
                    TSS\t5\tmg/l\t20260101000000\t00\nCOD\t11\tmg/l\t20260101000000\t00\n",
    );
    let lines: Vec<usize> = got
        .iter()
        .filter_map(|r| match r {
            Err(Rejection::MalformedLine { line, .. }) => Some(*line),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [3, 5]);
    let event = got.iter().find_map(|r| r.as_ref().ok()).unwrap();
    // 2026-01-01 00:00 in UTC+7 is 2025-12-31 17:00 UTC.
    assert_eq!(event.ts, 1_767_200_400_000);
    assert_eq!(
        event.values,
        [("cod".to_string(), 10.0), ("tss".to_string(), 5.0)]
    );
    // A decimal comma is read as a point.
    let comma = tt10("COD\t10,5\tmg/l\t20260101000000\t00\n");
    assert_eq!(
        comma[0].as_ref().unwrap().values,
        [("cod".to_string(), 10.5)]
    );
    // Five minutes ahead of `now` (1_800_000_000_000 = 2027-01-15 08:00 UTC) passes, one
    // second more does not.
    let at = |stamp: &str| tt10(&format!("COD\t1\tmg/l\t{stamp}\t00\n"));
    assert!(
        at("20270115150500").iter().all(Result::is_ok),
        "{:?}",
        at("20270115150500")
    );
    assert!(matches!(
        at("20270115150501")[0],
        Err(Rejection::FutureTimestamp {
            ahead_ms: 301_000,
            ..
        })
    ));
}

#[test]
fn tt10_file_names_need_three_parts_and_a_full_stamp() {
    assert_eq!(
        tt10_station_from_file_name("data/CT_TN_01_20260101000000.txt").as_deref(),
        Some("CT_TN_01")
    );
    assert_eq!(
        tt10_station_from_file_name("CT_TN_01_2026010100000.txt"),
        None,
        "13 digits"
    );
    assert_eq!(
        tt10_station_from_file_name("CT_TN_01_2026010100000x.txt"),
        None,
        "not digits"
    );
    assert_eq!(
        tt10_station_from_file_name("CT_01_20260101000000.txt"),
        None,
        "two parts"
    );
}

#[test]
fn tt10_payload_size_limit_holds_at_the_boundary() {
    let text = "COD\t10\tmg/l\t20260101000000\t00\n";
    let ctx = Tt10Context {
        station: "S_T_1".into(),
        kind: Kind::Discharge,
        utc_offset_seconds: 0,
    };
    let exact = DecodeLimits {
        max_payload_bytes: text.len(),
        ..DecodeLimits::default()
    };
    assert!(decode_tt10(text.as_bytes(), &ctx, None, &exact)
        .iter()
        .all(Result::is_ok));
    let under = DecodeLimits {
        max_payload_bytes: text.len() - 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode_tt10(text.as_bytes(), &ctx, None, &under)[0],
        Err(Rejection::Oversize { .. })
    ));
}
