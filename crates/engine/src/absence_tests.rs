//! Absence at the engine level, beyond the basic case in `engine_tests.rs`: silence is
//! counted from the last reading (every reading pushes it back), the alert's value and
//! its resolution's are the seconds of silence, and escalation follows the `escalate`
//! steps — once each, at their times.

use super::*;
use crate::test_support::*;
use watchfloor_model::{Event, Kind};

const RULES: &str = r#"
rules:
  - id: offline
    match: { kind: discharge }
    absence: 15m
    severity: minor
    escalate:
      - { after: 30m, severity: major }
      - { after: 60m, severity: critical }
    message: "{key} silent for {value:.0} s"
    resolved_message: "{key} back after {value:.0} s"
"#;

fn engine() -> Engine {
    let live = EngineConfig {
        time_mode: TimeMode::Processing,
        ..strict()
    };
    engine_with(RULES, LookupTables::default(), live)
}

fn reading(ts: i64) -> Event {
    event("A", Kind::Discharge, ts, &[("cod", 1.0)])
}

/// (minutes after T0, state, severity, message) of each transition.
fn seen(out: &Emitted) -> Vec<(i64, &'static str, &'static str, String)> {
    out.transitions
        .iter()
        .map(|t| {
            let state = if t.state == AlertState::Firing {
                "firing"
            } else {
                "resolved"
            };
            (
                (t.at - T0) / MIN,
                state,
                t.severity.as_str(),
                t.message.clone(),
            )
        })
        .collect()
}

#[test]
fn silence_counts_from_the_last_reading_and_escalates_step_by_step() {
    let mut e = engine();
    let mut out = Emitted::default();
    e.tick(T0, &mut out);
    e.process(&reading(T0), &mut out).unwrap();
    // Readings at 5 and 10 minutes push the limit to 25.
    for m in [5, 10] {
        e.tick(T0 + m * MIN, &mut out);
        e.process(&reading(T0 + m * MIN), &mut out).unwrap();
    }
    for m in 11..=24 {
        e.tick(T0 + m * MIN, &mut out);
    }
    assert!(
        out.transitions.is_empty(),
        "not before 15 minutes of silence: {:?}",
        seen(&out)
    );
    e.tick(T0 + 25 * MIN, &mut out);
    assert_eq!(
        seen(&out),
        [(25, "firing", "minor", "A silent for 900 s".to_string())]
    );
    assert_eq!(out.transitions[0].value, 900.0);
    // Escalations 30 and 60 minutes after it fired, once each.
    for m in 26..=90 {
        e.tick(T0 + m * MIN, &mut out);
    }
    let steps: Vec<(i64, &str)> = seen(&out).iter().map(|(m, _, s, _)| (*m, *s)).collect();
    assert_eq!(steps, [(25, "minor"), (55, "major"), (85, "critical")]);
    // Data is back at 100 minutes: resolved, saying how long it was silent (90 minutes).
    e.tick(T0 + 100 * MIN, &mut out);
    e.process(&reading(T0 + 100 * MIN), &mut out).unwrap();
    let last = out.transitions.last().unwrap();
    assert_eq!(last.state, AlertState::Resolved);
    assert_eq!(last.message, "A back after 5400 s");
    assert_eq!(last.value, 5400.0);
    // And it is watched again: silent 15 minutes more, it fires again.
    out.transitions.clear();
    for m in 101..=115 {
        e.tick(T0 + m * MIN, &mut out);
    }
    assert_eq!(
        seen(&out),
        [(115, "firing", "minor", "A silent for 900 s".to_string())]
    );
}
