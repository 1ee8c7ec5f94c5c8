//! The alert lifecycle on per-event rules, at the engine level: escalation by value (the
//! alert opens at the highest severity that holds, rises later, never falls), `for` as a
//! duration (fires on time through a timer even with no further reading, not if the
//! condition broke meanwhile), `clear` hysteresis, and `unless_acknowledged` steps.

use super::*;
use crate::test_support::*;

fn engine(rules: &str) -> Engine {
    engine_with(rules, LookupTables::default(), strict())
}

/// (minutes after T0, firing?, severity) of each transition.
fn seen(out: &Emitted) -> Vec<(i64, bool, &'static str)> {
    out.transitions
        .iter()
        .map(|t| {
            (
                (t.at - T0) / MIN,
                t.state == AlertState::Firing,
                t.severity.as_str(),
            )
        })
        .collect()
}

const BY_VALUE: &str = r#"
rules:
  - id: pm
    match: { kind: air }
    aggregates: { p: max(pm25) }
    condition: p > 50
    clear: p < 40
    severity: minor
    escalate:
      - { when: "p >= 100.0", severity: major }
      - { when: "p >= 200.0", severity: critical }
    message: m
"#;

#[test]
fn escalation_by_value_opens_high_rises_and_never_falls() {
    let mut e = engine(BY_VALUE);
    let mut out = Emitted::default();
    // Already at 150 when it fires: one firing, at major.
    e.process(&pm("A", T0, 150.0), &mut out).unwrap();
    assert_eq!(seen(&out), [(0, true, "major")]);
    // Lower but still above the clear level: unchanged; then 250: critical.
    e.process(&pm("A", T0 + MIN, 60.0), &mut out).unwrap();
    e.process(&pm("A", T0 + 2 * MIN, 250.0), &mut out).unwrap();
    e.process(&pm("A", T0 + 3 * MIN, 120.0), &mut out).unwrap();
    assert_eq!(seen(&out), [(0, true, "major"), (2, true, "critical")]);
    // 45 is between the thresholds: still firing; 30 clears it.
    e.process(&pm("A", T0 + 4 * MIN, 45.0), &mut out).unwrap();
    assert_eq!(out.transitions.len(), 2);
    e.process(&pm("A", T0 + 5 * MIN, 30.0), &mut out).unwrap();
    assert_eq!(seen(&out).last(), Some(&(5, false, "critical")));
    // A new one opening at exactly the step's value takes it; just below, the base.
    out.transitions.clear();
    e.process(&pm("B", T0 + 6 * MIN, 100.0), &mut out).unwrap();
    e.process(&pm("C", T0 + 6 * MIN, 99.0), &mut out).unwrap();
    assert_eq!(seen(&out), [(6, true, "major"), (6, true, "minor")]);
}

const FOR_DURATION: &str = r#"
rules:
  - id: hot
    match: { kind: air }
    aggregates: { p: max(pm25) }
    condition: p > 50
    for: 10m
    severity: minor
    message: m
"#;

#[test]
fn a_duration_fires_on_time_without_more_readings_and_not_if_it_broke() {
    let mut e = engine(FOR_DURATION);
    let mut out = Emitted::default();
    e.process(&pm("A", T0, 80.0), &mut out).unwrap();
    e.process(&pm("B", T0, 80.0), &mut out).unwrap();
    e.process(&pm("B", T0 + 4 * MIN, 20.0), &mut out).unwrap(); // B breaks the streak
    e.process(&pm("C", T0 + 9 * MIN, 10.0), &mut out).unwrap();
    assert!(out.transitions.is_empty(), "not before ten minutes");
    // Event time passes ten minutes (another station's reading moves the watermark).
    e.process(&pm("C", T0 + 11 * MIN, 10.0), &mut out).unwrap();
    let fired: Vec<(String, i64)> = out
        .transitions
        .iter()
        .map(|t| (t.key.clone(), (t.at - T0) / MIN))
        .collect();
    assert_eq!(
        fired,
        [("A".to_string(), 10)],
        "A at exactly ten minutes; B broke"
    );
}

#[test]
fn a_broken_then_restarted_streak_fires_ten_minutes_after_its_new_start() {
    let mut e = engine(FOR_DURATION);
    let mut out = Emitted::default();
    e.process(&pm("B", T0, 80.0), &mut out).unwrap();
    e.process(&pm("B", T0 + 4 * MIN, 20.0), &mut out).unwrap();
    e.process(&pm("B", T0 + 6 * MIN, 80.0), &mut out).unwrap();
    // The first streak's timer (due at 10) finds a newer streak: nothing then.
    e.process(&pm("C", T0 + 12 * MIN, 10.0), &mut out).unwrap();
    e.process(&pm("B", T0 + 12 * MIN, 90.0), &mut out).unwrap();
    assert!(out.transitions.is_empty(), "{:?}", seen(&out));
    e.process(&pm("C", T0 + 17 * MIN, 10.0), &mut out).unwrap();
    e.process(&pm("B", T0 + 17 * MIN, 90.0), &mut out).unwrap();
    assert_eq!(seen(&out), [(16, true, "minor")], "at 6 + 10");
}

const UNLESS_ACK: &str = r#"
rules:
  - id: hot
    match: { kind: air }
    aggregates: { p: max(pm25) }
    condition: p > 50
    severity: minor
    escalate:
      - { after: 10m, severity: major, unless_acknowledged: true }
      - { after: 20m, severity: critical }
    message: m
"#;

#[test]
fn an_acknowledged_alert_skips_only_the_steps_that_say_so() {
    let mut e = engine(UNLESS_ACK);
    let mut out = Emitted::default();
    e.process(&pm("A", T0, 80.0), &mut out).unwrap();
    let id = out.transitions[0].alert_id.clone();
    e.acknowledge(
        &id,
        Acknowledgement {
            by: "op".into(),
            at: T0 + MIN,
            note: None,
        },
    )
    .unwrap();
    for m in 1..=25 {
        e.process(&pm("Z", T0 + m * MIN, 1.0), &mut out).unwrap();
    }
    assert_eq!(seen(&out), [(0, true, "minor"), (20, true, "critical")]);
}
