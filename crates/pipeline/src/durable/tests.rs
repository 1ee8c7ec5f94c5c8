//! The durability promise without brokers: input logged, a checkpoint part-way, an
//! operator's acknowledgement, then a "crash" (everything dropped, nothing flushed by
//! hand): reopening gives the engine of an uninterrupted run, transitions and
//! acknowledgement included; redeliveries of logged input are recognised.

use std::sync::Arc;

use watchfloor_engine::{Acknowledgement, Engine, RuleSet};

use super::record::{InputRecord, LogRecord, OperatorAction, Origin};
use super::*;
use watchfloor_connectors::PipelineStats;

const RULES: &str = r#"
rules:
  - id: hot
    match: { kind: air, metric: pm25 }
    aggregates: { pm25: last(pm25) }
    condition: pm25 > 50.0
    severity: major
  - id: minute_mean
    match: { kind: air, metric: pm25 }
    window: { type: tumbling, size: 1m }
    aggregates: { mean: avg(pm25) }
    condition: mean > 40.0
    severity: minor
"#;

fn rules() -> RuleSet {
    crate::test_support::rules(RULES)
}

use crate::test_support::{config, processor};

/// Reading `i`: station S(i % 5), 10 s apart per round, a hot spell for station 0.
fn reading(i: i64) -> InputRecord<'static> {
    let station = i % 5;
    let ts = 1_794_873_600_000 + (i / 5) * 10_000;
    let pm25 = if station == 0 && i / 5 >= 40 {
        80.0
    } else {
        30.0 + (i % 7) as f64
    };
    InputRecord {
        source: 0,
        now: 1_800_000_000_000 + i,
        origin: Origin::Mqtt {
            dup: false,
            connection: 1,
        },
        topic: format!("ioc/air/S{station}/telemetry").into(),
        payload: format!(
            r#"{{"source":"S{station}","kind":"air","ts":{ts},"values":{{"pm25":{pm25}}}}}"#
        )
        .into_bytes()
        .into(),
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("watchfloor-durable-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_crash_after_a_checkpoint_loses_no_input_and_no_acknowledgement() {
    let dir = scratch("crash");
    let checkpoint = dir.join("engine.checkpoint");
    let stats = Arc::new(PipelineStats::default());

    // The uninterrupted run.
    let mut reference = processor(Engine::new(rules(), config()));
    for i in 0..400 {
        reference.process(&reading(i));
    }
    let hot = reference
        .engine
        .active_alerts()
        .into_iter()
        .find(|a| a.rule == "hot")
        .expect("station 0 is hot");
    let ack = Acknowledgement {
        by: "op".into(),
        at: 7,
        note: Some("on it".into()),
    };

    // The run that crashes: a checkpoint after 150 readings, the rest only in the log.
    let opened = open(rules(), config(), Some(&checkpoint), 10_000, stats.clone()).unwrap();
    let mut durable = opened.durable.unwrap();
    let mut live = processor(opened.engine);
    let mut acknowledged = false;
    for i in 0..400 {
        let input = reading(i);
        assert!(durable.admit(&input));
        durable.log_batch().unwrap();
        live.process(&input);
        if i == 149 {
            durable.checkpoint(&live.engine, &live.exercises);
            while durable.checkpoint_busy() {
                durable.poll().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        if !acknowledged
            && live
                .engine
                .active_alerts()
                .iter()
                .any(|a| a.alert_id == hot.alert_id)
        {
            let action = OperatorAction::Acknowledge {
                id: hot.alert_id.clone(),
                ack: ack.clone(),
            };
            durable.log_operator(&action).unwrap();
            live.engine.acknowledge(&hot.alert_id, ack.clone()).unwrap();
            acknowledged = true;
        }
    }
    assert!(acknowledged);
    durable.wal.sync().unwrap();
    drop(durable); // the crash: no last checkpoint
    drop(live);

    let opened = open(rules(), config(), Some(&checkpoint), 10_000, stats.clone()).unwrap();
    assert_eq!(
        opened.replay.len(),
        400 - 150 + 1,
        "the log after the checkpoint, the ack included"
    );
    let mut restored = processor(opened.engine);
    let mut durable = opened.durable.unwrap();
    for record in &opened.replay {
        match LogRecord::decode(&record.body).unwrap() {
            LogRecord::Input(input) => restored.process(&input),
            LogRecord::Operator(OperatorAction::Acknowledge { id, ack }) => {
                restored.engine.acknowledge(&id, ack).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut want = reference.engine.active_alerts();
    for alert in want.iter_mut().filter(|a| a.alert_id == hot.alert_id) {
        alert.acknowledged = Some(ack.clone());
    }
    let key = |a: &watchfloor_engine::ActiveAlertView| a.alert_id.clone();
    let mut got = restored.engine.active_alerts();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);
    assert_eq!(
        restored.engine.stats().events,
        reference.engine.stats().events
    );
    // The broker sends the last reading again (its PUBACK was lost): recognised.
    let mut again = reading(399);
    // (The new process sees it on its first connection; the log says an earlier one.)
    again.origin = Origin::Mqtt {
        dup: false,
        connection: 1,
    };
    assert!(!durable.admit(&again));
    assert_eq!(
        stats.redelivered.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn without_a_checkpoint_file_nothing_is_logged() {
    let opened = open(
        rules(),
        config(),
        None,
        10,
        Arc::new(PipelineStats::default()),
    )
    .unwrap();
    assert!(opened.durable.is_none() && opened.replay.is_empty());
}
