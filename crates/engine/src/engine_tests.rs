//! Alert lifecycle and event-time behaviour of the engine.

use super::*;
use watchfloor_model::{Event, Kind, StationStatus};

const T0: i64 = 1_794_999_600_000; // 2026-11-18T11:00:00Z
const MIN: i64 = 60_000;

fn engine(yaml: &str, config: EngineConfig) -> Engine {
    let lookups =
        LookupTables::from_csv_text("stations", "source,cod_limit\nA,75\nB,50\n").unwrap();
    let set = RuleSet::from_sources(&[("t.yaml".into(), yaml.into())], lookups)
        .unwrap_or_else(|e| panic!("{e}"));
    Engine::new(set, config)
}

fn event_time() -> EngineConfig {
    EngineConfig {
        max_out_of_orderness_ms: 0,
        allowed_lateness_ms: 0,
        idle_timeout_ms: MIN,
        ..EngineConfig::default()
    }
}

fn reading(source: &str, kind: Kind, ts: i64, values: &[(&str, f64)]) -> Event {
    crate::test_support::event(source, kind, ts, values)
}

fn summary(out: &Emitted) -> Vec<(String, String, &'static str, &'static str, i64)> {
    out.transitions
        .iter()
        .map(|t| {
            let state = if t.state == AlertState::Firing {
                "firing"
            } else {
                "resolved"
            };
            (
                t.rule.clone(),
                t.key.clone(),
                state,
                t.severity.as_str(),
                (t.at - T0) / MIN,
            )
        })
        .collect()
}

const COD_RULE: &str = r#"
rules:
  - id: cod
    match: { kind: discharge }
    window: { type: tumbling, size: 10m }
    aggregates: { mean_cod: avg(cod) }
    condition: mean_cod > stations.cod_limit
    clear: mean_cod < stations.cod_limit * 0.9
    for: 2
    severity: major
    escalate:
      - { after: 30m, severity: critical }
    message: "COD {mean_cod:.1} > {stations.cod_limit} at {key}"
"#;

#[test]
fn for_windows_hysteresis_and_escalation() {
    let mut e = engine(COD_RULE, event_time());
    let mut out = Emitted::default();
    // Station A (limit 75): 80 for two windows → fires at the end of the second;
    // 70 (above the clear level 67.5) keeps it firing; 60 resolves it.
    let series = [80.0, 80.0, 80.0, 80.0, 70.0, 60.0, 60.0];
    for (w, v) in series.iter().enumerate() {
        for m in [0, 5] {
            e.process(
                &reading(
                    "A",
                    Kind::Discharge,
                    T0 + w as i64 * 10 * MIN + m * MIN,
                    &[("cod", *v)],
                ),
                &mut out,
            )
            .unwrap();
        }
    }
    e.finish(&mut out);
    assert_eq!(
        summary(&out),
        vec![
            ("cod".into(), "A".into(), "firing", "major", 20),
            ("cod".into(), "A".into(), "firing", "critical", 50),
            ("cod".into(), "A".into(), "resolved", "critical", 60),
        ]
    );
    assert_eq!(out.transitions[0].message, "COD 80.0 > 75 at A");
    assert_eq!(out.transitions[0].window_start, T0 + 10 * MIN);
    assert_eq!(out.transitions[0].value, 80.0);
    let ids: std::collections::BTreeSet<_> =
        out.transitions.iter().map(|t| t.alert_id.clone()).collect();
    assert_eq!(
        ids.len(),
        1,
        "one alert instance per (rule, key) while it lasts"
    );
}

#[test]
fn a_single_window_above_the_limit_does_not_fire_with_for_2() {
    let mut e = engine(COD_RULE, event_time());
    let mut out = Emitted::default();
    for (w, v) in [80.0, 60.0, 80.0, 60.0].iter().enumerate() {
        e.process(
            &reading(
                "A",
                Kind::Discharge,
                T0 + w as i64 * 10 * MIN,
                &[("cod", *v)],
            ),
            &mut out,
        )
        .unwrap();
    }
    e.finish(&mut out);
    assert!(out.transitions.is_empty(), "{:?}", summary(&out));
}

#[test]
fn calibrating_values_are_excluded_by_default() {
    let mut e = engine(COD_RULE, event_time());
    let mut out = Emitted::default();
    for w in 0..4 {
        let mut ev = reading("A", Kind::Discharge, T0 + w * 10 * MIN, &[("cod", 500.0)]);
        ev.status = StationStatus::Calibrating;
        e.process(&ev, &mut out).unwrap();
    }
    e.finish(&mut out);
    assert!(out.transitions.is_empty());
    assert_eq!(e.window_state_count(), 0);
}

#[test]
fn missing_lookup_counts_an_evaluation_error_and_does_not_fire() {
    let mut e = engine(COD_RULE, event_time());
    let mut out = Emitted::default();
    for w in 0..4 {
        e.process(
            &reading("Z", Kind::Discharge, T0 + w * 10 * MIN, &[("cod", 500.0)]),
            &mut out,
        )
        .unwrap();
    }
    e.finish(&mut out);
    assert!(out.transitions.is_empty());
    assert_eq!(e.stats().eval_errors, 4);
}

#[test]
fn escalation_unless_acknowledged() {
    let yaml = r#"
rules:
  - id: ph
    match: { kind: discharge }
    aggregates: { ph: last(ph) }
    condition: ph < 5.5
    severity: minor
    escalate:
      - { after: 10m, severity: major, unless_acknowledged: true }
      - { after: 20m, severity: critical }
"#;
    let mut e = engine(yaml, event_time());
    let mut out = Emitted::default();
    e.process(&reading("A", Kind::Discharge, T0, &[("ph", 4.0)]), &mut out)
        .unwrap();
    let id = out.transitions[0].alert_id.clone();
    e.acknowledge(
        &id,
        Acknowledgement {
            by: "op1".into(),
            at: T0 + MIN,
            note: Some("crew sent".into()),
        },
    )
    .unwrap();
    // Another station's data moves event time on; A stays silent and below 5.5.
    for m in 1..=25 {
        e.process(
            &reading("B", Kind::Discharge, T0 + m * MIN, &[("ph", 7.0)]),
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(
        summary(&out),
        vec![
            ("ph".into(), "A".into(), "firing", "minor", 0),
            ("ph".into(), "A".into(), "firing", "critical", 20)
        ]
    );
    let active = e.active_alerts();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].acknowledged.as_ref().unwrap().by, "op1");
    assert!(e
        .acknowledge(
            "nope",
            Acknowledgement {
                by: "x".into(),
                at: 0,
                note: None
            }
        )
        .is_err());
}

const SLOW_TRAFFIC_RULE: &str = r#"
rules:
  - id: slow
    match: { kind: traffic }
    aggregates: { speed: last(speed) }
    condition: speed < 10
    for: 10m
    severity: major
"#;

#[test]
fn duration_for_fires_without_a_new_message_from_the_key() {
    let mut e = engine(SLOW_TRAFFIC_RULE, event_time());
    let mut out = Emitted::default();
    e.process(
        &reading("S1", Kind::Traffic, T0, &[("speed", 5.0)]),
        &mut out,
    )
    .unwrap();
    // Only another sensor keeps talking.
    for m in 1..=12 {
        e.process(
            &reading("S2", Kind::Traffic, T0 + m * MIN, &[("speed", 40.0)]),
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(
        summary(&out),
        vec![("slow".into(), "S1".into(), "firing", "major", 10)]
    );
}

#[test]
fn brief_spike_shorter_than_for_does_not_fire() {
    let mut e = engine(SLOW_TRAFFIC_RULE, event_time());
    let mut out = Emitted::default();
    e.process(
        &reading("S1", Kind::Traffic, T0, &[("speed", 5.0)]),
        &mut out,
    )
    .unwrap();
    e.process(
        &reading("S1", Kind::Traffic, T0 + 5 * MIN, &[("speed", 50.0)]),
        &mut out,
    )
    .unwrap();
    for m in 6..=30 {
        e.process(
            &reading("S2", Kind::Traffic, T0 + m * MIN, &[("speed", 40.0)]),
            &mut out,
        )
        .unwrap();
    }
    assert!(out.transitions.is_empty(), "{:?}", summary(&out));
}

#[test]
fn absence_fires_on_time_when_the_whole_stream_is_silent() {
    let yaml = r#"
rules:
  - id: offline
    match: { kind: discharge }
    absence: 15m
    severity: major
    message: "{key} silent for {value:.0} s"
"#;
    let mut e = engine(
        yaml,
        EngineConfig {
            time_mode: TimeMode::Processing,
            ..event_time()
        },
    );
    let mut out = Emitted::default();
    e.tick(T0, &mut out);
    e.process(
        &reading("A", Kind::Discharge, T0, &[("cod", 1.0)]),
        &mut out,
    )
    .unwrap();
    e.tick(T0 + 14 * MIN, &mut out);
    assert!(out.transitions.is_empty());
    // No event at all: only the clock moves.
    e.tick(T0 + 15 * MIN, &mut out);
    assert_eq!(
        summary(&out),
        vec![("offline".into(), "A".into(), "firing", "major", 15)]
    );
    assert_eq!(out.transitions[0].message, "A silent for 900 s");
    e.tick(T0 + 40 * MIN, &mut out);
    assert_eq!(out.transitions.len(), 1, "fires once, not on every tick");
    // Data returns.
    e.tick(T0 + 41 * MIN, &mut out);
    e.process(
        &reading("A", Kind::Discharge, T0 + 41 * MIN, &[("cod", 1.0)]),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        summary(&out)[1],
        ("offline".into(), "A".into(), "resolved", "major", 41)
    );
    assert_eq!(out.transitions[0].alert_id, out.transitions[1].alert_id);
}

#[test]
fn an_idle_source_does_not_hold_back_other_windows() {
    let yaml = r#"
rules:
  - id: pm
    match: { kind: air }
    window: { type: tumbling, size: 1m }
    aggregates: { pm: avg(pm25) }
    condition: pm > 100
    severity: minor
"#;
    let config = EngineConfig {
        max_out_of_orderness_ms: 5_000,
        idle_timeout_ms: 2 * MIN,
        ..event_time()
    };
    let mut e = engine(yaml, config);
    let mut out = Emitted::default();
    e.process(
        &reading("QUIET", Kind::Air, T0, &[("pm25", 10.0)]),
        &mut out,
    )
    .unwrap();
    for s in 0..=200 {
        e.process(
            &reading("BUSY", Kind::Air, T0 + s * 1_000, &[("pm25", 150.0)]),
            &mut out,
        )
        .unwrap();
    }
    // BUSY's first minute closes although QUIET stopped at T0: the watermark lags the
    // clock by at most out-of-orderness + idle timeout.
    assert!(e.watermark() >= T0 + 200_000 - 5_000 - 2 * MIN);
    assert_eq!(
        summary(&out)[0],
        ("pm".into(), "BUSY".into(), "firing", "minor", 1)
    );
}

#[test]
fn a_backlog_worked_off_after_a_restart_is_on_time_and_a_silent_stream_still_closes() {
    // Live (processing-time) engine restarted at T0 + 2 h: the broker hands it the readings
    // it kept meanwhile, from T0 on. They are in order and must not be refused as late
    // although they are two hours behind the clock.
    let yaml = r#"
rules:
  - id: pm
    match: { kind: air }
    window: { type: tumbling, size: 1m }
    aggregates: { pm: avg(pm25) }
    condition: pm > 100
    severity: minor
"#;
    let config = EngineConfig {
        max_out_of_orderness_ms: 1_000,
        allowed_lateness_ms: 5_000,
        idle_timeout_ms: 30_000,
        time_mode: TimeMode::Processing,
        emit_window_results: true,
        ..EngineConfig::default()
    };
    let mut e = engine(yaml, config);
    let mut out = Emitted::default();
    let now = T0 + 120 * MIN;
    e.tick(now, &mut out);
    for s in 0..600 {
        for source in ["A", "B"] {
            let pm = if s < 60 { 150.0 } else { 10.0 };
            e.process(
                &reading(source, Kind::Air, T0 + s * 1_000, &[("pm25", pm)]),
                &mut out,
            )
            .unwrap_or_else(|r| panic!("reading {s} s of {source} refused: {r}"));
        }
        if s % 50 == 0 {
            e.tick(now + s * 10, &mut out); // the catch-up takes a few seconds of clock
        }
    }
    // The windows closed as event time advanced: the first minute fired for both
    // stations, and resolved in the second.
    let fired: Vec<_> = summary(&out)
        .into_iter()
        .filter(|(_, _, state, _, minute)| *state == "firing" && *minute == 1)
        .collect();
    assert_eq!(fired.len(), 2, "{:?}", summary(&out));
    assert!(
        e.watermark() < now - 100 * MIN,
        "the watermark follows event time"
    );

    // Then nothing arrives: after the idle timeout the clock moves the watermark, so the
    // last open window (minute 9) closes without new data, and a straggler from the
    // backlog's time is now late.
    let last_minute = |out: &Emitted| {
        out.windows
            .iter()
            .filter(|w| w.start == T0 + 9 * MIN)
            .count()
    };
    assert_eq!(last_minute(&out), 0, "minute 9 still open while data flows");
    e.tick(now + 6_000 + 31_000, &mut out);
    assert!(e.watermark() >= now - 1_000 - 30_000 + 6_000);
    assert_eq!(
        last_minute(&out),
        2,
        "minute 9 closed for both stations in the silent stream"
    );
    let straggler = reading("A", Kind::Air, T0 + 599_500, &[("pm25", 1.0)]);
    assert!(matches!(
        e.process(&straggler, &mut out),
        Err(Rejection::Late { .. })
    ));
}

#[test]
fn late_and_duplicate_events_are_refused_and_counted() {
    let yaml = "rules:\n  - id: pm\n    match: { kind: air }\n    window: { type: tumbling, size: 1m }\n    aggregates: { pm: avg(pm25) }\n    condition: pm > 100\n    severity: minor\n";
    let config = EngineConfig {
        max_out_of_orderness_ms: 5_000,
        allowed_lateness_ms: 10_000,
        ..event_time()
    };
    let mut e = engine(yaml, config);
    let mut out = Emitted::default();
    e.process(
        &reading("A", Kind::Air, T0 + 60_000, &[("pm25", 1.0)]),
        &mut out,
    )
    .unwrap();
    // Within out-of-orderness + lateness: accepted.
    e.process(
        &reading("A", Kind::Air, T0 + 46_000, &[("pm25", 1.0)]),
        &mut out,
    )
    .unwrap();
    let late = e
        .process(
            &reading("A", Kind::Air, T0 + 40_000, &[("pm25", 1.0)]),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(late.code(), "late");
    let dup = e
        .process(
            &reading("A", Kind::Air, T0 + 60_000, &[("pm25", 1.0)]),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(dup.code(), "duplicate");
    assert_eq!(
        (e.stats().late, e.stats().duplicates, e.stats().events),
        (1, 1, 2)
    );
}

#[test]
fn camera_events_alert_immediately_and_resolve_after_quiet() {
    let yaml = r#"
rules:
  - id: fire
    match: { kind: camera, event: "fire_smoke" }
    aggregates: { conf: max(confidence) }
    condition: conf >= 0.8
    clear: "false"
    resolve_after: 10m
    severity: critical
"#;
    let mut e = engine(yaml, event_time());
    let mut out = Emitted::default();
    let mut cam = reading("CAM1", Kind::Camera, T0, &[("confidence", 0.9)]);
    cam.camera_event = Some("fire_smoke".into());
    e.process(&cam, &mut out).unwrap();
    let mut crowd = reading("CAM2", Kind::Camera, T0 + MIN, &[("confidence", 0.99)]);
    crowd.camera_event = Some("crowd".into());
    e.process(&crowd, &mut out).unwrap();
    for m in 2..=12 {
        e.process(
            &reading("CAM3", Kind::Camera, T0 + m * MIN, &[("confidence", 0.1)]),
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(
        summary(&out),
        vec![
            ("fire".into(), "CAM1".into(), "firing", "critical", 0),
            ("fire".into(), "CAM1".into(), "resolved", "critical", 10)
        ]
    );
}

#[test]
fn zone_keys_and_count_of_events() {
    let yaml = r#"
rules:
  - id: crowd
    match: { kind: camera }
    key: zone
    window: { type: tumbling, size: 5m }
    aggregates: { n: count() }
    condition: n >= 3
    severity: minor
"#;
    let mut e = engine(yaml, event_time());
    let mut out = Emitted::default();
    for (i, cam) in ["C1", "C2", "C3"].iter().enumerate() {
        let mut ev = reading(
            cam,
            Kind::Camera,
            T0 + i as i64 * 1000,
            &[("confidence", 0.9)],
        );
        ev.zone = Some("Ninh Kieu/Tan An".into());
        ev.camera_event = Some("crowd".into());
        e.process(&ev, &mut out).unwrap();
    }
    e.finish(&mut out);
    assert_eq!(
        summary(&out),
        vec![(
            "crowd".into(),
            "Ninh Kieu/Tan An".into(),
            "firing",
            "minor",
            5
        )]
    );
}

#[test]
fn sliding_windows_close_even_when_the_key_goes_quiet() {
    let yaml = r#"
rules:
  - id: rain
    match: { kind: rainfall }
    window: { type: sliding, size: 1h, slide: 10m }
    aggregates: { total: sum(rainfall) }
    condition: total > 50
    severity: major
"#;
    let mut e = engine(
        yaml,
        EngineConfig {
            emit_window_results: true,
            ..event_time()
        },
    );
    let mut out = Emitted::default();
    e.process(
        &reading("R1", Kind::Rainfall, T0, &[("rainfall", 60.0)]),
        &mut out,
    )
    .unwrap();
    // Another gauge moves time two hours on.
    e.process(
        &reading("R2", Kind::Rainfall, T0 + 120 * MIN, &[("rainfall", 0.0)]),
        &mut out,
    )
    .unwrap();
    let r1: Vec<_> = out.windows.iter().filter(|w| w.key == "R1").collect();
    assert_eq!(
        r1.len(),
        6,
        "every 10-minute slide of the hour that holds the reading"
    );
    assert_eq!(
        summary(&out),
        vec![
            ("rain".into(), "R1".into(), "firing", "major", 10),
            ("rain".into(), "R1".into(), "resolved", "major", 70),
        ]
    );
    assert_eq!(
        e.window_state_count(),
        1,
        "R1's state is dropped once its data slid out"
    );
}

#[test]
fn reload_keeps_the_state_of_unchanged_rules_only() {
    let rules = |threshold: &str| {
        format!(
            r#"
rules:
  - id: hourly_count
    match: {{ kind: discharge, metric: cod }}
    window: {{ type: tumbling, size: 1h }}
    aggregates: {{ n: count(cod) }}
    condition: n >= 4
    severity: minor
  - id: high_cod
    match: {{ kind: discharge, metric: cod }}
    aggregates: {{ cod: last(cod) }}
    condition: cod > {threshold}
    severity: major
  - id: doomed
    match: {{ kind: discharge, metric: cod }}
    aggregates: {{ cod: last(cod) }}
    condition: cod > 0
    severity: info
"#
        )
    };
    let mut engine = engine(&rules("100.0"), event_time());
    let mut out = Emitted::default();
    // Two readings into the hour, and a firing `doomed` alert.
    for m in [1, 2] {
        engine
            .process(
                &reading("A", Kind::Discharge, T0 + m * MIN, &[("cod", 50.0)]),
                &mut out,
            )
            .unwrap();
    }
    assert_eq!(
        summary(&out),
        vec![("doomed".into(), "A".into(), "firing", "info", 1)]
    );
    out.transitions.clear();

    // Reload: `hourly_count` unchanged, `high_cod` changed, `doomed` gone, `fresh` new.
    let yaml = rules("40.0")
        .replace("  - id: doomed", "  - id: fresh")
        .replace("severity: info", "severity: minor");
    let lookups = LookupTables::from_csv_text("stations", "source,cod_limit\nA,75\n").unwrap();
    let set = RuleSet::from_sources(&[("t.yaml".into(), yaml)], lookups).unwrap();
    let summary_of_reload = engine.reload(set, &mut out);
    assert_eq!(summary_of_reload.kept, vec!["hourly_count".to_string()]);
    assert_eq!(summary_of_reload.changed, vec!["high_cod".to_string()]);
    assert_eq!(summary_of_reload.added, vec!["fresh".to_string()]);
    assert_eq!(summary_of_reload.removed, vec!["doomed".to_string()]);
    // The removed rule's alert is resolved, not left firing.
    assert_eq!(
        summary(&out),
        vec![("doomed".into(), "A".into(), "resolved", "info", 2)]
    );
    out.transitions.clear();

    // Two more readings: the kept window counts 4 (2 from before the reload) and fires at
    // the hour; the changed rule fires on its new threshold.
    for m in [3, 4] {
        engine
            .process(
                &reading("A", Kind::Discharge, T0 + m * MIN, &[("cod", 50.0)]),
                &mut out,
            )
            .unwrap();
    }
    engine
        .process(
            &reading("A", Kind::Discharge, T0 + 61 * MIN, &[("cod", 10.0)]),
            &mut out,
        )
        .unwrap();
    let got = summary(&out);
    assert!(
        got.contains(&("hourly_count".into(), "A".into(), "firing", "minor", 60)),
        "{got:?}"
    );
    assert!(
        got.contains(&("high_cod".into(), "A".into(), "firing", "major", 3)),
        "{got:?}"
    );
    assert!(
        got.contains(&("fresh".into(), "A".into(), "firing", "minor", 3)),
        "{got:?}"
    );
}

#[test]
fn a_restored_checkpoint_continues_exactly_like_an_uninterrupted_engine() {
    let rules = r#"
rules:
  - id: tumbling_mean
    match: { kind: discharge, metric: cod }
    window: { type: tumbling, size: 10m }
    aggregates: { m: avg(cod), n: count(cod) }
    condition: m > 100
    value: m
    severity: minor
    escalate: [{ after: 20m, severity: major }]
  - id: sliding_p90
    match: { kind: discharge, metric: cod }
    window: { type: sliding, size: 30m, slide: 5m }
    aggregates: { p: "percentile(cod, 90)", s: slope(cod) }
    condition: p > 150
    value: p
    severity: major
  - id: sessions
    match: { kind: discharge, metric: cod }
    window: { type: session, gap: 7m }
    aggregates: { n: count(cod) }
    condition: n >= 5
    severity: info
  - id: spike_for
    match: { kind: discharge, metric: cod }
    aggregates: { c: last(cod) }
    condition: c > 180
    for: 6m
    severity: critical
  - id: silent
    match: { kind: discharge }
    absence: 15m
    severity: minor
"#;
    // Five stations over three hours; C goes silent for 40 minutes, B has bursts.
    let mut events = Vec::new();
    for step in 0..180 {
        for (k, key) in ["A", "B", "C", "D", "E"].iter().enumerate() {
            if *key == "C" && (60..100).contains(&step) {
                continue;
            }
            if *key == "B" && step % 20 >= 12 {
                continue;
            }
            let wave =
                ((step as f64 / 9.0) + k as f64).sin() * 90.0 + 100.0 + (step % 7) as f64 * 3.0;
            events.push(reading(
                key,
                Kind::Discharge,
                T0 + step * MIN + k as i64 * 1_000,
                &[("cod", wave)],
            ));
        }
    }
    let cut = events.len() / 2 + 3;
    // Window results on, so every closed window is compared, not only alerts.
    let config = EngineConfig {
        emit_window_results: true,
        ..event_time()
    };
    let mut straight = engine(rules, config.clone());
    let mut expected = Emitted::default();
    for e in &events {
        straight.process(e, &mut expected).unwrap();
    }
    straight.finish(&mut expected);

    let mut first = engine(rules, config.clone());
    let mut got = Emitted::default();
    for e in &events[..cut] {
        first.process(e, &mut got).unwrap();
    }
    let positions = BTreeMap::from([("mqtt:test".to_string(), cut.to_string())]);
    let bytes = first.checkpoint(&positions);
    drop(first);
    let lookups =
        LookupTables::from_csv_text("stations", "source,cod_limit\nA,75\nB,50\n").unwrap();
    let set = RuleSet::from_sources(&[("t.yaml".into(), rules.into())], lookups).unwrap();
    let (mut resumed, restored) = Engine::restore(set, config.clone(), &bytes).unwrap();
    assert_eq!(restored.positions, positions);
    assert_eq!(restored.kept.len(), 5);
    for e in &events[cut..] {
        resumed.process(e, &mut got).unwrap();
    }
    resumed.finish(&mut got);
    assert!(
        expected.transitions.len() > 10,
        "the scenario exercises the rules"
    );
    // Compared as serialised (a NaN value is never equal to itself).
    let lines = |e: &Emitted| -> Vec<String> {
        e.transitions
            .iter()
            .map(|t| serde_json::to_string(t).unwrap())
            .collect()
    };
    assert_eq!(lines(&got), lines(&expected));
    let windows = |e: &Emitted| -> Vec<String> {
        e.windows
            .iter()
            .map(|w| format!("{} {} {} {} {:?}", w.rule, w.key, w.start, w.end, w.values))
            .collect()
    };
    assert!(
        expected.windows.len() > 100,
        "windows closed: {}",
        expected.windows.len()
    );
    assert_eq!(windows(&got), windows(&expected));

    // A damaged checkpoint is refused, not half-read.
    let lookups = LookupTables::from_csv_text("stations", "source,cod_limit\nA,75\n").unwrap();
    let set = RuleSet::from_sources(&[("t.yaml".into(), rules.into())], lookups).unwrap();
    assert!(Engine::restore(set, event_time(), &bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn a_restart_does_not_count_its_own_downtime_as_station_silence() {
    let yaml = r#"
rules:
  - id: offline
    match: { kind: discharge }
    absence: 15m
    severity: major
"#;
    let config = EngineConfig {
        time_mode: TimeMode::Processing,
        ..event_time()
    };
    let mut e = engine(yaml, config.clone());
    let mut out = Emitted::default();
    e.tick(T0, &mut out);
    e.process(
        &reading("A", Kind::Discharge, T0, &[("cod", 1.0)]),
        &mut out,
    )
    .unwrap();
    e.tick(T0 + 10 * MIN, &mut out);
    let bytes = e.checkpoint(&BTreeMap::new());
    // Down for an hour: A was seen 10 minutes before the crash.
    let set =
        RuleSet::from_sources(&[("t.yaml".into(), yaml.into())], LookupTables::default()).unwrap();
    let (mut back, _) = Engine::restore(set, config, &bytes).unwrap();
    back.resume(T0 + 70 * MIN);
    back.tick(T0 + 70 * MIN, &mut out);
    assert!(
        out.transitions.is_empty(),
        "no false 'offline' for the downtime"
    );
    back.tick(T0 + 74 * MIN, &mut out);
    assert!(out.transitions.is_empty());
    // 15 minutes of silence it could see: 5 before the crash, 10 after the restart.
    back.tick(T0 + 75 * MIN, &mut out);
    assert_eq!(
        summary(&out),
        vec![("offline".into(), "A".into(), "firing", "major", 75)]
    );
}

#[test]
fn the_first_event_after_a_start_sets_the_watermark_at_once() {
    let yaml = "rules:\n  - id: pm\n    match: { kind: air }\n    aggregates: { pm: last(pm25) }\n    condition: pm > 100\n    severity: minor\n";
    let mut e = engine(
        yaml,
        EngineConfig {
            time_mode: TimeMode::Processing,
            max_out_of_orderness_ms: 1_000,
            allowed_lateness_ms: 1_000,
            ..event_time()
        },
    );
    let mut out = Emitted::default();
    // Ticks while nothing has arrived yet (a pipeline waiting for its sources).
    e.tick(T0, &mut out);
    e.tick(T0 + 100, &mut out);
    e.process(&reading("A", Kind::Air, T0, &[("pm25", 1.0)]), &mut out)
        .unwrap();
    assert_eq!(e.watermark(), T0 - 1_000);
    // An hour-old reading 100 ms later, before the next recompute is due: late.
    e.tick(T0 + 200, &mut out);
    assert!(matches!(
        e.process(
            &reading("A", Kind::Air, T0 - 3_600_000, &[("pm25", 1.0)]),
            &mut out
        ),
        Err(Rejection::Late { .. })
    ));
}
