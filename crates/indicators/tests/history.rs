//! Computing the shipped set on the demo city, and a reload that changes one indicator:
//! the others keep their history, the changed one starts again.

use std::path::Path;
use std::sync::Arc;

use watchfloor_city::City;
use watchfloor_indicators::{
    default_set, AlertFact, Computer, IndicatorSet, Inputs, View, DEFAULT_SET,
};
use watchfloor_model::{decode_envelope, DecodeLimits, Severity};

const T0: i64 = 1_795_712_400_000; // 2026-11-27T00:00:00+07:00

fn city() -> City {
    City::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules"))
        .unwrap()
        .unwrap()
}

fn sectors(city: &City) -> Vec<String> {
    city.sectors.all().iter().map(|s| s.id.clone()).collect()
}

fn views() -> Vec<View> {
    vec![
        View {
            name: "*".into(),
            sectors: None,
        },
        View {
            name: "environment".into(),
            sectors: Some(vec!["environment".into()]),
        },
    ]
}

fn value(rows: &[watchfloor_indicators::ZoneRow], zone: &str, view: &str, id: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.zone == zone && r.view == view)
        .and_then(|r| r.indicators.iter().find(|i| i.id == id))
        .and_then(|i| i.value)
}

#[test]
fn the_shipped_set_computes_per_zone_and_view_and_a_reload_keeps_unchanged_history() {
    let city = city();
    let set = default_set(&sectors(&city)).unwrap();
    let mut computer = Computer::new(Arc::new(set));
    let mut inputs = Inputs::default();
    // Discharge CT-DIS-09 (Long Hòa) and traffic CT-TR-01 (free flow 50 km/h) report.
    for line in [
        r#"{"source":"CT-DIS-09","kind":"discharge","ts":1795712460000,"values":{"ph":7.0}}"#,
        r#"{"source":"CT-TR-01","kind":"traffic","ts":1795712460000,"values":{"speed":20.0}}"#,
        r#"{"source":"CT-AIR-01","kind":"air","ts":1795712460000,"status":"01","values":{"pm25":500.0}}"#,
    ] {
        let mut e = decode_envelope(line.as_bytes(), None, &DecodeLimits::default()).unwrap();
        city.place(&mut e).unwrap();
        inputs.observe(&e);
    }
    let env = vec!["environment".to_string()];
    let cam = vec!["public_safety".to_string()];
    let alerts = [
        AlertFact {
            rule: "discharge_ph_out_of_range",
            pack: Some("discharge"),
            key: "CT-DIS-09",
            ward: Some("long_hoa"),
            district: None,
            sectors: &env,
            severity: Severity::Major,
            fired_at: T0 + 60_000,
            ack_at: Some(T0 + 180_000),
            resolved_at: None,
        },
        AlertFact {
            rule: "camera_fire_smoke",
            pack: Some("camera"),
            key: "CT-CAM-01",
            ward: Some("long_hoa"),
            district: None,
            sectors: &cam,
            severity: Severity::Critical,
            fired_at: T0 + 90_000,
            ack_at: None,
            resolved_at: Some(T0 + 600_000),
        },
    ];
    let now = T0 + 120_000;
    let rows = computer.compute(&city, &inputs, &alerts, &views(), now);
    // The city, its twelve communes and the four legacy districts they name, in two views.
    assert_eq!(rows.len(), 17 * 2);
    assert!(rows
        .iter()
        .any(|r| r.zone == "binh_thuy" && r.level == "district"));
    assert_eq!(value(&rows, "city", "*", "open_alerts"), Some(1.0));
    assert_eq!(
        value(&rows, "long_hoa", "environment", "open_alerts"),
        Some(1.0)
    );
    assert_eq!(value(&rows, "tan_an", "*", "open_alerts"), Some(0.0));
    // Long Hòa's one discharge station is alerting: 0 % compliant; its congestion index is
    // CT-TR-01's (1 − 20/50) × 100; its AQI has no valid reading (the only one was calibrating).
    assert_eq!(
        value(&rows, "long_hoa", "*", "discharge_compliance"),
        Some(0.0)
    );
    assert_eq!(
        value(&rows, "long_hoa", "*", "congestion_index"),
        Some(60.0)
    );
    assert_eq!(value(&rows, "long_hoa", "*", "air_quality"), None);
    // Acknowledged after 2 minutes: 2 min mean time to acknowledge in the environment view.
    assert_eq!(
        value(&rows, "city", "environment", "mean_time_to_acknowledge"),
        Some(2.0)
    );
    // The environment view has no transport indicator.
    assert_eq!(
        value(&rows, "city", "environment", "congestion_index"),
        None
    );
    assert!(rows
        .iter()
        .filter(|r| r.view == "environment")
        .all(|r| r.indicators.iter().all(|i| i.id != "congestion_index")));
    // Bands: 1 open alert is amber (green 0, amber 3, lower is better).
    let open = rows
        .iter()
        .find(|r| r.zone == "city" && r.view == "*")
        .unwrap()
        .indicators
        .iter()
        .find(|i| i.id == "open_alerts")
        .unwrap()
        .clone();
    assert_eq!(open.band, Some("amber"));

    // Two more minutes of history, then a reload that changes only `open_alerts`.
    computer.compute(&city, &inputs, &alerts, &views(), now + 60_000);
    computer.compute(&city, &inputs, &alerts, &views(), now + 120_000);
    assert_eq!(computer.history("open_alerts", "city", "*").len(), 3);
    assert_eq!(
        computer.history("congestion_index", "long_hoa", "*").len(),
        3
    );
    let changed = DEFAULT_SET.replacen(
        "bands: { better: lower, green: 0, amber: 3 }",
        "bands: { better: lower, green: 0, amber: 5 }",
        1,
    );
    assert_ne!(changed, DEFAULT_SET);
    let set =
        IndicatorSet::from_sources(&[("default.yaml".into(), changed)], &sectors(&city)).unwrap();
    let (kept, reset) = computer.replace_set(Arc::new(set));
    assert_eq!(reset, ["open_alerts"]);
    assert_eq!(kept.len(), 10);
    assert!(
        computer.history("open_alerts", "city", "*").is_empty(),
        "the changed one starts again"
    );
    assert_eq!(
        computer.history("congestion_index", "long_hoa", "*").len(),
        3,
        "the others keep theirs"
    );
    let rows = computer.compute(&city, &inputs, &alerts, &views(), now + 180_000);
    let open = rows
        .iter()
        .find(|r| r.zone == "city" && r.view == "*")
        .unwrap()
        .indicators
        .iter()
        .find(|i| i.id == "open_alerts")
        .unwrap()
        .clone();
    assert_eq!(open.band, Some("amber"));
    assert_eq!(computer.history("open_alerts", "city", "*").len(), 1);
}

#[test]
fn pushed_values_are_a_communes_own_and_the_city_sums_them() {
    let city = city();
    let set = default_set(&sectors(&city)).unwrap();
    let mut inputs = Inputs::default();
    inputs.set_pushed_ids(set.pushed_ids());
    let mut computer = Computer::new(Arc::new(set));
    let push = |zone: Option<&str>, cases: f64, ts: i64| {
        let mut v = serde_json::json!({"source": "SYT-FEED", "kind": "indicator", "ts": ts, "values": {"dengue_cases_week": cases}});
        if let Some(z) = zone {
            v["zone"] = serde_json::json!(z);
        }
        let mut e =
            decode_envelope(v.to_string().as_bytes(), None, &DecodeLimits::default()).unwrap();
        city.place(&mut e).map(|_| e)
    };
    for (zone, cases, ts) in [
        (Some("tan_an"), 9.0, T0),
        (Some("tan_an"), 12.0, T0 + 1),
        (Some("long_hoa"), 5.0, T0),
        (Some("tan_an"), 99.0, T0 - 1),
    ] {
        inputs.observe(&push(zone, cases, ts).unwrap());
    }
    // A name that is no pushed indicator of the set is not kept.
    let mut other = push(Some("tan_an"), 3.0, T0).unwrap();
    other.values = vec![("cases_2026_11_30".to_string(), 3.0)];
    inputs.observe(&other);
    assert!(
        format!("{inputs:?}").contains("dengue_cases_week")
            && !format!("{inputs:?}").contains("cases_2026_11_30")
    );
    // A zone the city does not have is refused, not counted.
    assert!(push(Some("atlantis"), 1.0, T0).is_err());
    let health = View {
        name: "health".into(),
        sectors: Some(vec!["health".into()]),
    };
    let rows = computer.compute(
        &city,
        &inputs,
        &[],
        &[health.clone(), views()[1].clone()],
        T0 + 60_000,
    );
    assert_eq!(
        value(&rows, "tan_an", "health", "dengue_cases_week"),
        Some(12.0),
        "the latest by measurement time"
    );
    assert_eq!(
        value(&rows, "long_hoa", "health", "dengue_cases_week"),
        Some(5.0)
    );
    assert_eq!(
        value(&rows, "city", "health", "dengue_cases_week"),
        Some(17.0),
        "the communes' sum"
    );
    assert_eq!(
        value(&rows, "an_binh", "health", "dengue_cases_week"),
        None,
        "nothing pushed: no value"
    );
    assert!(rows
        .iter()
        .filter(|r| r.view == "environment")
        .all(|r| r.indicators.iter().all(|i| i.id != "dengue_cases_week")));
    // A city-wide push is the city's own value.
    inputs.observe(&push(None, 40.0, T0 + 2).unwrap());
    let rows = computer.compute(&city, &inputs, &[], &[health], T0 + 120_000);
    assert_eq!(
        value(&rows, "city", "health", "dengue_cases_week"),
        Some(40.0)
    );
    let band = rows
        .iter()
        .find(|r| r.zone == "city")
        .unwrap()
        .indicators
        .iter()
        .find(|i| i.id == "dengue_cases_week")
        .unwrap()
        .band;
    assert_eq!(band, Some("red"), "green ≤ 10, amber ≤ 30");
}
