//! Drill scripts: refusals with `file:line`; the plan (series, incident shape, silences);
//! the clock (speed, pause and resume keep the remaining injects' spacing); the scoring of
//! four outcomes played by the test as an operator would (an acknowledgement in time, one
//! late, a step completed, one missed), exact to the millisecond.

use std::collections::BTreeMap;

use watchfloor_drills::spec::compile;
use watchfloor_drills::{
    plan, score, Action, Clock, Known, Observed, Rating, SeenAlert, SeenStep, Verdict,
};

const MIN: i64 = 60_000;

const GOOD: &str = r#"drill:
  id: d
  name: { vi: "D", en: "D" }
  objectives:
    - { id: detect, title: { vi: a, en: a }, outcomes: [fire, fire_ack] }
    - { id: respond, title: { vi: b, en: b }, outcomes: [other_ack, dispatched, gone] }
  participants:
    - { role: operator, zones: [long_hoa] }
  injects:
    - { id: smoke, at: 2m, kind: camera, station: CAM-1, event: fire_smoke, confidence: 0.9 }
    - { id: rise, at: 0s, kind: readings, station: AIR-1, every: 5m, values: { pm25: [10, 20, 30, 40] } }
    - { id: quiet, at: 10m, kind: silence, station: AIR-1, for: 6m }
    - { id: say, at: 1m, kind: message, text: { vi: "x", en: "x" } }
  expect:
    - { id: fire, kind: alert, rule: fire_rule, key: CAM-1, after: smoke, within: 1m }
    - { id: other, kind: alert, rule: pm_rule, key: AIR-1, after: rise, within: 10m }
    - { id: fire_ack, kind: ack, of: fire, within: 5m }
    - { id: other_ack, kind: ack, of: other, within: 5m }
    - { id: dispatched, kind: step, playbook: pb, step: go, of: fire, within: 5m }
    - { id: gone, kind: step, playbook: pb, step: go, of: other, within: 5m }
"#;

fn known() -> Known {
    Known {
        stations: vec!["CAM-1".into(), "AIR-1".into()],
        rules: vec!["fire_rule".into(), "pm_rule".into()],
        steps: vec![("pb".into(), "go".into())],
        zones: vec!["long_hoa".into()],
    }
}

/// Refused with the line of the first line holding `at` and a message holding `words`.
fn refused(text: &str, at: &str, words: &str) {
    let line = text
        .lines()
        .position(|l| l.contains(at))
        .expect("the marker is in the text")
        + 1;
    let errors: Vec<String> = compile("d.yaml", text, &known())
        .err()
        .unwrap_or_default()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("d.yaml:{line}:")) && e.contains(words)),
        "want d.yaml:{line}: {words}; got {errors:#?}"
    );
}

#[test]
fn mistakes_are_refused_where_they_are() {
    assert!(
        compile("d.yaml", GOOD, &known()).is_ok(),
        "{:?}",
        compile("d.yaml", GOOD, &known()).err()
    );
    refused(
        &GOOD.replace("station: CAM-1", "station: CAM-9"),
        "CAM-9",
        "unknown station `CAM-9`",
    );
    refused(
        &GOOD.replace("kind: silence", "kind: blackout"),
        "blackout",
        "unknown inject kind `blackout`",
    );
    refused(
        &GOOD.replace("at: 10m", "at: later"),
        "later",
        "`later` is not a duration",
    );
    refused(
        &GOOD.replace("rule: pm_rule", "rule: pm_rul"),
        "pm_rul,",
        "unknown rule `pm_rul`",
    );
    refused(
        &GOOD.replace("after: rise", "after: rize"),
        "rize",
        "no inject `rize`",
    );
    refused(
        &GOOD.replace(
            "of: other, within: 5m }\n    - { id: dispatched",
            "of: othr, within: 5m }\n    - { id: dispatched",
        ),
        "othr",
        "no alert outcome `othr`",
    );
    refused(
        &GOOD.replace("step: go, of: fire", "step: run, of: fire"),
        "step: run",
        "no step `run` in playbook `pb`",
    );
    refused(
        &GOOD.replace("outcomes: [fire, fire_ack]", "outcomes: [fire, fire_akc]"),
        "fire_akc",
        "no outcome `fire_akc`",
    );
    refused(
        &GOOD.replace("zones: [long_hoa]", "zones: [atlantis]"),
        "atlantis",
        "unknown commune `atlantis`",
    );
    refused(
        &GOOD.replace(
            "pm25: [10, 20, 30, 40] }",
            "pm25: [10, 20, 30, 40], pm10: [1] }",
        ),
        "pm10",
        "same number of readings",
    );
}

#[test]
fn the_plan_spaces_series_shapes_incidents_and_drops_a_silenced_stations_readings() {
    let drill = compile("d.yaml", GOOD, &known()).unwrap();
    let got: Vec<(i64, String)> = plan(&drill)
        .into_iter()
        .map(|p| {
            (
                p.at_ms / MIN,
                match p.action {
                    Action::Reading { station, values } => format!("{station} {}", values["pm25"]),
                    Action::Camera { station, event, .. } => format!("{station} {event}"),
                    Action::Message { .. } => "message".into(),
                },
            )
        })
        .collect();
    // Readings at 0, 5, 10, 15 min; the silence covers 10–16 min: the 10 and 15 min
    // readings are not sent.
    assert_eq!(
        got,
        [
            (0, "AIR-1 10".to_string()),
            (1, "message".into()),
            (2, "CAM-1 fire_smoke".into()),
            (5, "AIR-1 20".into())
        ]
    );
    let incident = "drill:\n  id: f\n  name: { vi: f, en: f }\n  objectives: []\n  injects:\n    - { id: w, at: 1m, kind: incident, station: AIR-1, metric: level, base: 1.0, peak: 1.0, for: 100m, every: 10m }\n";
    let drill = compile("f.yaml", incident, &known()).unwrap();
    let levels: Vec<(i64, f64)> = plan(&drill)
        .into_iter()
        .map(|p| match p.action {
            Action::Reading { values, .. } => (p.at_ms / MIN, values["level"]),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        levels,
        [
            (1, 1.0),
            (11, 1.25),
            (21, 1.5),
            (31, 1.75),
            (41, 2.0),
            (51, 2.0),
            (61, 2.0),
            (71, 1.75),
            (81, 1.5),
            (91, 1.25),
            (101, 1.0)
        ]
    );
}

#[test]
fn pause_and_resume_keep_the_remaining_injects_spacing_and_speed_compresses_time() {
    let t0 = 1_800_000_000_000;
    let mut clock = Clock::new(t0, 10.0);
    assert_eq!(clock.wall_of(10 * MIN), t0 + MIN, "ten times faster");
    assert_eq!(clock.drill_time(t0 + 30_000), 5 * MIN);
    clock.pause(t0 + 30_000);
    assert_eq!(
        clock.drill_time(t0 + 10 * MIN),
        5 * MIN,
        "a paused clock stands still"
    );
    clock.resume(t0 + 2 * MIN + 30_000);
    // Two minutes paused: every later inject comes two minutes later, spaced as before.
    assert_eq!(clock.wall_of(6 * MIN), t0 + 2 * MIN + 36_000);
    assert_eq!(clock.wall_of(8 * MIN) - clock.wall_of(6 * MIN), 12_000);
    assert_eq!(clock.drill_time(t0 + 2 * MIN + 36_000), 6 * MIN);
}

#[test]
fn the_scoring_rates_each_outcome_from_the_observed_times_exactly() {
    let drill = compile("d.yaml", GOOD, &known()).unwrap();
    let t0 = 1_800_000_000_000;
    let seen = Observed {
        injects: BTreeMap::from([("smoke".into(), t0 + 2 * MIN), ("rise".into(), t0)]),
        alerts: vec![
            // 41 s after the smoke inject; acknowledged 4 min 10 s after firing (in time).
            SeenAlert {
                alert_id: "A-fire".into(),
                rule: "fire_rule".into(),
                key: "CAM-1".into(),
                fired_at: t0 + 2 * MIN + 41_000,
                acked_at: Some(t0 + 6 * MIN + 51_000),
            },
            // 9 min 59 s after the rise; acknowledged 7 min after (late).
            SeenAlert {
                alert_id: "A-pm".into(),
                rule: "pm_rule".into(),
                key: "AIR-1".into(),
                fired_at: t0 + 9 * MIN + 59_000,
                acked_at: Some(t0 + 16 * MIN + 59_000),
            },
            // Nobody expected this one.
            SeenAlert {
                alert_id: "A-x".into(),
                rule: "pm_rule".into(),
                key: "CAM-1".into(),
                fired_at: t0 + 3 * MIN,
                acked_at: None,
            },
        ],
        steps: vec![
            SeenStep {
                alert_id: "A-fire".into(),
                playbook: "pb".into(),
                step: "go".into(),
                started_at: t0 + 2 * MIN + 41_000,
                completed_at: Some(t0 + 5 * MIN + 11_000),
                breached_at: None,
            },
            // The other alert's step was never completed, and breached.
            SeenStep {
                alert_id: "A-pm".into(),
                playbook: "pb".into(),
                step: "go".into(),
                started_at: t0 + 9 * MIN + 59_000,
                completed_at: None,
                breached_at: Some(t0 + 14 * MIN + 59_000),
            },
        ],
    };
    let report = score(&drill, &seen);
    let got: Vec<(&str, Option<i64>, Verdict)> = report
        .outcomes
        .iter()
        .map(|r| (r.id.as_str(), r.took_ms, r.verdict))
        .collect();
    assert_eq!(
        got,
        [
            ("fire", Some(41_000), Verdict::Met),
            ("other", Some(9 * MIN + 59_000), Verdict::Met),
            ("fire_ack", Some(4 * MIN + 10_000), Verdict::Met),
            ("other_ack", Some(7 * MIN), Verdict::Late),
            ("dispatched", Some(2 * MIN + 30_000), Verdict::Met),
            ("gone", None, Verdict::Missed),
        ]
    );
    let ratings: Vec<(&str, Rating, f64)> = report
        .objectives
        .iter()
        .map(|o| (o.id.as_str(), o.rating, o.score))
        .collect();
    // detect: both met → performed; respond: late ½ + met 1 + missed 0 = 0.5 → major challenges.
    assert_eq!(
        ratings,
        [
            ("detect", Rating::Performed, 1.0),
            ("respond", Rating::MajorChallenges, 0.5)
        ]
    );
    assert_eq!(report.missed, ["gone"]);
    assert_eq!(
        report
            .unexpected_alerts
            .iter()
            .map(|a| a.alert_id.as_str())
            .collect::<Vec<_>>(),
        ["A-x"]
    );
    assert_eq!(report.breached_steps.len(), 1);
}
