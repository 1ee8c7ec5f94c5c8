//! Corroboration across streams at the engine level: a camera's alert and a sensor's alert
//! within a time and a distance of each other (either order) make one alert about the
//! first rule's key; too far apart in time or space, or the wrong pair, make none.

use super::*;
use crate::test_support::*;
use watchfloor_model::{Event, Kind};

const RULES: &str = r#"
rules:
  - id: smoke
    match: { kind: camera }
    aggregates: { c: max(confidence) }
    condition: c >= 0.8
    clear: "false"
    severity: major
    message: "smoke at {key}"
  - id: pm_high
    match: { kind: air }
    aggregates: { p: max(pm25) }
    condition: p >= 75
    clear: p < 50
    severity: minor
    message: "pm at {key}"
  - id: confirmed
    match: { kind: camera }
    corroborate: { first: smoke, then: pm_high, within: 10m, distance: 2km }
    severity: critical
    message: "confirmed at {key}"
"#;

/// Stations: CAM at the origin, AIR-NEAR about 1.1 km north, AIR-FAR about 5.5 km north.
const STATIONS: &str =
    "source,lat,lon\nCAM,10.0,105.7\nAIR-NEAR,10.01,105.7\nAIR-FAR,10.05,105.7\n";

fn engine() -> Engine {
    let lookups = LookupTables::from_csv_text("station", STATIONS).unwrap();
    engine_with(RULES, lookups, strict())
}

fn camera(ts: i64, confidence: f64) -> Event {
    Event {
        camera_event: Some("fire_smoke".into()),
        ..event("CAM", Kind::Camera, ts, &[("confidence", confidence)])
    }
}

fn air(source: &str, ts: i64, pm25: f64) -> Event {
    pm(source, ts, pm25)
}

fn confirmed(out: &Emitted) -> Vec<(String, i64, String)> {
    out.transitions
        .iter()
        .filter(|t| t.rule == "confirmed" && t.state == AlertState::Firing)
        .map(|t| {
            (
                t.key.clone(),
                (t.at - T0) / MIN,
                t.labels.get("corroborated_by").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_nearby_sensor_alert_within_the_time_confirms_the_camera_in_either_order() {
    // Camera first, the sensor 5 minutes later.
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&camera(T0, 0.9), &mut out).unwrap();
    assert!(
        confirmed(&out).is_empty(),
        "one side alone confirms nothing"
    );
    e.process(&air("AIR-NEAR", T0 + 5 * MIN, 90.0), &mut out)
        .unwrap();
    assert_eq!(
        confirmed(&out),
        [("CAM".to_string(), 5, "pm_high:AIR-NEAR".to_string())]
    );
    let t = out
        .transitions
        .iter()
        .find(|t| t.rule == "confirmed")
        .unwrap();
    assert_eq!(t.severity, Severity::Critical);
    assert!(
        (t.value - 1112.0).abs() < 5.0,
        "the value is the distance in metres: {}",
        t.value
    );
    assert_eq!(
        (t.window_start, t.window_end),
        (T0, T0 + 5 * MIN),
        "the window spans both firings"
    );

    // The sensor first, the camera 10 minutes later (the limit, inclusive).
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&air("AIR-NEAR", T0, 90.0), &mut out).unwrap();
    e.process(&camera(T0 + 10 * MIN, 0.9), &mut out).unwrap();
    assert_eq!(
        confirmed(&out),
        [("CAM".to_string(), 10, "pm_high:AIR-NEAR".to_string())],
        "about the camera either way"
    );
}

#[test]
fn too_late_too_far_or_the_same_side_twice_confirms_nothing() {
    // 11 minutes apart.
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&air("AIR-NEAR", T0, 90.0), &mut out).unwrap();
    e.process(&camera(T0 + 11 * MIN, 0.9), &mut out).unwrap();
    assert!(
        confirmed(&out).is_empty(),
        "outside the time: {:?}",
        confirmed(&out)
    );
    // 5.5 km apart.
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&camera(T0, 0.9), &mut out).unwrap();
    e.process(&air("AIR-FAR", T0 + MIN, 90.0), &mut out)
        .unwrap();
    assert!(confirmed(&out).is_empty(), "outside the distance");
    // The nearest partner is chosen when both are in range.
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&air("AIR-FAR", T0, 90.0), &mut out).unwrap();
    e.process(&air("AIR-NEAR", T0 + MIN, 90.0), &mut out)
        .unwrap();
    e.process(&camera(T0 + 2 * MIN, 0.9), &mut out).unwrap();
    assert_eq!(
        confirmed(&out),
        [("CAM".to_string(), 2, "pm_high:AIR-NEAR".to_string())]
    );
    // Once confirmed, a second partner does not fire it again while it is open.
    e.process(&air("AIR-NEAR", T0 + 3 * MIN, 40.0), &mut out)
        .unwrap();
    e.process(&air("AIR-NEAR", T0 + 4 * MIN, 95.0), &mut out)
        .unwrap();
    assert_eq!(confirmed(&out).len(), 1, "{:?}", confirmed(&out));
}
