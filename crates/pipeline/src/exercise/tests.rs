//! Exercises beside real telemetry, without brokers: injected readings alert on their own
//! engine, marked; the real engine's alerts are exactly those of a run without the drill;
//! acknowledgements reach the exercise's engine; an end closes what is open; a crash
//! mid-drill (checkpoint, more commands only in the log) gives the same exercise back.

use std::sync::Arc;

use watchfloor_connectors::PipelineStats;
use watchfloor_engine::{Acknowledgement, Engine, RuleSet};
use watchfloor_model::AlertState;

use super::{ExerciseAction, ExerciseRecord};
use crate::durable::open;
use crate::durable::record::{InputRecord, LogRecord, Origin};

const RULES: &str = r#"
rules:
  - id: hot
    match: { kind: air, metric: pm25 }
    aggregates: { pm25: last(pm25) }
    condition: pm25 > 50.0
    severity: major
"#;

fn rules() -> RuleSet {
    crate::test_support::rules(RULES)
}

use crate::test_support::{config, processor};

const T0: i64 = 1_800_000_000_000;

fn envelope(station: &str, ts: i64, pm25: f64) -> String {
    format!(r#"{{"source":"{station}","kind":"air","ts":{ts},"values":{{"pm25":{pm25}}}}}"#)
}

/// Real reading `i` of S0: clean air, 10 s apart.
fn real(i: i64) -> InputRecord<'static> {
    InputRecord {
        source: 0,
        now: T0 + i * 10_000,
        origin: Origin::None,
        topic: "ioc/air/S0/telemetry".into(),
        payload: envelope("S0", T0 + i * 10_000, 20.0 + i as f64)
            .into_bytes()
            .into(),
    }
}

fn command(id: &str, now: i64, action: ExerciseAction) -> ExerciseRecord {
    ExerciseRecord {
        id: id.into(),
        now,
        action,
    }
}

/// The drill: S0 polluted in the exercise only.
fn inject(i: i64) -> ExerciseRecord {
    command(
        "drill-1",
        T0 + i * 10_000 + 5,
        ExerciseAction::Inject {
            payloads: vec![envelope("S0", T0 + i * 10_000 + 5, 90.0)],
        },
    )
}

#[test]
fn an_exercise_alerts_on_its_own_engine_marked_and_leaves_the_real_alerts_as_they_were() {
    let mut without = processor(Engine::new(rules(), config()));
    for i in 0..20 {
        without.process(&real(i));
    }
    let mut with = processor(Engine::new(rules(), config()));
    with.exercise(&command("drill-1", T0, ExerciseAction::Start))
        .unwrap();
    for i in 0..20 {
        with.process(&real(i));
        let answer = with.exercise(&inject(i)).unwrap();
        assert_eq!((answer.accepted, answer.refused.len()), (1, 0));
    }
    let (real_alerts, exercise): (Vec<_>, Vec<_>) = with
        .emitted
        .transitions
        .iter()
        .partition(|t| t.exercise().is_none());
    assert_eq!(
        real_alerts.len(),
        without.emitted.transitions.len(),
        "the real engine saw nothing of the drill"
    );
    assert!(with.engine.active_alerts().is_empty());
    assert_eq!(exercise.len(), 1, "one exercise alert fired: {exercise:?}");
    let t = exercise[0];
    assert!(t.alert_id.starts_with("drill-1~"), "{}", t.alert_id);
    assert_eq!(t.labels["exercise"], "drill-1");
    assert_eq!(t.labels["mode"], "exercise");
    assert_eq!((t.rule.as_str(), t.key.as_str()), ("hot", "S0"));
}

#[test]
fn commands_for_an_exercise_not_running_or_with_a_bad_id_are_refused() {
    let mut p = processor(Engine::new(rules(), config()));
    assert!(p.exercise(&inject(0)).is_err(), "not started");
    assert!(p
        .exercise(&command("Bad Id", T0, ExerciseAction::Start))
        .is_err());
    p.exercise(&command("drill-1", T0, ExerciseAction::Start))
        .unwrap();
    let answer = p
        .exercise(&command(
            "drill-1",
            T0,
            ExerciseAction::Inject {
                payloads: vec!["{not json".into()],
            },
        ))
        .unwrap();
    assert_eq!((answer.accepted, answer.refused.len()), (0, 1));
}

#[test]
fn an_acknowledgement_reaches_the_exercise_and_an_end_closes_its_alerts() {
    let mut p = processor(Engine::new(rules(), config()));
    p.exercise(&command("drill-1", T0, ExerciseAction::Start))
        .unwrap();
    p.exercise(&inject(1)).unwrap();
    let id = p.exercise_alerts()[0].alert_id.clone();
    let ack = Acknowledgement {
        by: "op".into(),
        at: T0 + 20_000,
        note: None,
    };
    let mut emitted = watchfloor_engine::Emitted::default();
    p.exercises
        .on_alert(&id, &mut emitted, |engine, inner, _| {
            engine.acknowledge(inner, ack.clone())
        })
        .expect("an exercise alert id")
        .unwrap();
    assert_eq!(p.exercise_alerts()[0].acknowledged, Some(ack));
    let answer = p
        .exercise(&command(
            "drill-1",
            T0 + 30_000,
            ExerciseAction::End { at: T0 + 30_000 },
        ))
        .unwrap();
    assert_eq!(answer.closed, 1);
    let last = p.emitted.transitions.last().unwrap();
    assert_eq!(
        (last.alert_id.as_str(), last.state),
        (id.as_str(), AlertState::Resolved)
    );
    assert!(p.exercise_alerts().is_empty());
    assert_eq!(p.exercises.running().count(), 0);
}

#[test]
fn a_crash_mid_drill_gives_the_same_exercise_back() {
    let dir = std::env::temp_dir().join(format!("watchfloor-exercise-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("engine.checkpoint");
    let stats = Arc::new(PipelineStats::default());

    let opened = open(rules(), config(), Some(&checkpoint), 1000, stats.clone()).unwrap();
    let mut durable = opened.durable.unwrap();
    let mut live = processor(opened.engine);
    let start = command("drill-1", T0, ExerciseAction::Start);
    durable.log_exercise(&start).unwrap();
    live.exercise(&start).unwrap();
    for i in 0..6 {
        let c = inject(i);
        durable.log_exercise(&c).unwrap();
        live.exercise(&c).unwrap();
        if i == 2 {
            durable.checkpoint(&live.engine, &live.exercises);
            while durable.checkpoint_busy() {
                durable.poll().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
    let before = live.exercise_alerts();
    assert_eq!(before.len(), 1);
    drop((live, durable)); // the crash

    let opened = open(rules(), config(), Some(&checkpoint), 1000, stats).unwrap();
    let mut back = processor(opened.engine);
    back.exercises = opened.exercises;
    assert_eq!(back.exercises.running().collect::<Vec<_>>(), ["drill-1"]);
    assert_eq!(opened.replay.len(), 3, "the injects after the checkpoint");
    for record in &opened.replay {
        match LogRecord::decode(&record.body).unwrap() {
            LogRecord::Exercise(c) => {
                back.exercise(&c).unwrap();
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
    assert_eq!(back.exercise_alerts(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
