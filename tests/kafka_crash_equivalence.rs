//! Crash-exact state over Kafka, against tansu 0.6.0 (4 partitions, the crash-equivalence
//! city dataset keyed by station): the distinct alert transitions of `watchfloor run` equal
//! `watchfloor replay` of the same input exactly, and nothing in order per source is
//! refused as late,
//! - when Watchfloor is SIGKILLed at four random moments while the topic is produced (one
//!   within a second of its restart);
//! - when one partition is held back while the others' backlog is consumed, a rebalance
//!   happens in the middle (the instance leaves the group and joins again), and the held
//!   partition is released afterwards: the per-partition watermark waits for it.
//!
//! A killed instance restarts once its dead incarnation's session (10 s) has expired:
//! tansu 0.6 mishandles the rebalance that expiry sets off otherwise (docs/pipelines.md).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use support::equivalence::{
    assert_matches_replay, dataset, log_of, reference, start, wait_for_reference, Refusals, Rng,
};
use support::tansu::PARTITIONS;
use support::{runtime, scratch, wait_until};

/// A record to produce: its partition and payload.
type Record = (i32, String);

fn write_pipeline(dir: &Path, brokers: &str) -> PathBuf {
    support::equivalence::write_pipeline(
        dir,
        "kafka-crash",
        &format!(
            "[[source]]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ngroup_id = \"watchfloor-crash\"\ntopics = [\"telemetry\"]\nformat = \"json\"\noptions = {{ \"max.poll.interval.ms\" = \"20000\" }}"
        ),
    )
}

fn wait_assigned(pipeline: &Path, times: usize) {
    wait_until(
        "the partitions to be assigned",
        Duration::from_secs(60),
        || log_of(pipeline).matches("partitions assigned").count() >= times,
    );
}

/// The partition of a station: its number modulo the partitions (so the test knows which
/// readings a partition holds).
fn partition_of(payload: &str) -> i32 {
    let source = payload
        .split(r#""source":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    source[1..].parse::<i32>().unwrap() % PARTITIONS
}

/// Produces `records` (partition, key = station, payload), one record per batch, about
/// `rate` a second; counts them in `produced`.
async fn produce(
    brokers: String,
    records: Vec<(i32, String)>,
    rate: u64,
    produced: Arc<AtomicU64>,
) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .unwrap();
    let start = Instant::now();
    let mut pending = Vec::new();
    for (i, (partition, payload)) in records.into_iter().enumerate() {
        let key = payload
            .split(r#""source":""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let future = producer
            .send_result(
                FutureRecord::to("telemetry")
                    .partition(partition)
                    .key(&key)
                    .payload(&payload),
            )
            .unwrap();
        pending.push(future);
        if pending.len() >= 500 {
            for f in pending.drain(..) {
                f.await.unwrap().unwrap();
            }
            produced.store(i as u64 + 1, Ordering::SeqCst);
            let due = Duration::from_millis((i as u64 + 1) * 1000 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let n = pending.len() as u64;
    for f in pending {
        f.await.unwrap().unwrap();
    }
    produced.fetch_add(n, Ordering::SeqCst);
}

/// Compares the live output with the reference, and asserts nothing was dead-lettered.
fn check(name: &str, dir: &Path, pipeline: &Path, reference: &support::equivalence::Reference) {
    let (expected, last_text) = reference;
    let text = wait_for_reference(
        expected,
        &dir.join("alerts.ndjson"),
        last_text,
        Duration::from_secs(60),
    );
    assert_matches_replay(name, dir, pipeline, reference, &text, Refusals::None);
}

/// Restarts after the dead incarnation's session expired (tansu 0.6, see the file doc).
const SESSION_EXPIRY: Duration = Duration::from_secs(12);

#[test]
fn kafka_sigkills_at_random_moments_change_no_alert() {
    let dir = scratch("kafka-crash", "kill");
    let (_broker, brokers) = support::tansu::start(&dir, &["telemetry"]);
    let pipeline = write_pipeline(&dir, &brokers);
    let (lines, last) = dataset();
    let expected = reference(support::watchfloor_binary(), &dir, &lines, last);
    let records: Vec<(i32, String)> = lines
        .into_iter()
        .map(|(_, p)| (partition_of(&p), p))
        .collect();
    let total = records.len() as u64;

    let mut wf = start(&pipeline);
    wait_assigned(&pipeline, 1);
    let rt = runtime();
    let produced = Arc::new(AtomicU64::new(0));
    // 1,500 a second: the production outlasts four kills and their session expiries.
    let producer = rt.spawn(produce(brokers.clone(), records, 1_500, produced.clone()));
    let mut rng = Rng(support::now_ms() as u64 | 1);
    for k in 0..4u64 {
        if k == 2 {
            // Within a second of the restart.
            std::thread::sleep(Duration::from_millis(200 + rng.next() % 700));
        } else {
            let at = (total as f64 * (0.1 + 0.18 * k as f64 + rng.unit() * 0.08)) as u64;
            support::wait_progressing("the producer", Duration::from_secs(60), || {
                let p = produced.load(Ordering::SeqCst);
                (p, p >= at)
            });
        }
        let at = produced.load(Ordering::SeqCst);
        assert!(
            at < total,
            "SIGKILL {k} while the topic is being produced ({at} of {total})"
        );
        drop(wf); // SIGKILL
        eprintln!("SIGKILL {k} at {at} produced");
        std::thread::sleep(SESSION_EXPIRY);
        wf = start(&pipeline);
    }
    rt.block_on(producer).unwrap();
    check("kafka kill", &dir, &pipeline, &expected);
    drop(wf);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kafka_a_partition_held_back_and_a_rebalance_change_no_alert() {
    let dir = scratch("kafka-crash", "skew");
    let (_broker, brokers) = support::tansu::start(&dir, &["telemetry"]);
    let pipeline = write_pipeline(&dir, &brokers);
    let (lines, last) = dataset();
    let expected = reference(support::watchfloor_binary(), &dir, &lines, last);
    let (held, rest): (Vec<Record>, Vec<Record>) = lines
        .into_iter()
        .map(|(_, p)| (partition_of(&p), p))
        .partition(|(partition, _)| *partition == PARTITIONS - 1);
    let rt = runtime();
    let produced = Arc::new(AtomicU64::new(0));
    // The backlog of three partitions, the fourth held back.
    rt.block_on(produce(brokers.clone(), rest, 1_000_000, produced.clone()));
    let wf = start(&pipeline);
    wait_assigned(&pipeline, 1);
    // A rebalance in the middle of the backlog: once the instance is working on it (its
    // gauges' per-event alerts are coming out) it leaves the group cleanly and joins again.
    let alerts = dir.join("alerts.ndjson");
    let lines = || {
        std::fs::read_to_string(&alerts)
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_until("the backlog under way", Duration::from_secs(60), || {
        lines() >= 20
    });
    let _ = Command::new("kill")
        .args(["-TERM", &wf.0.id().to_string()])
        .status();
    let mut wf = wf;
    let _ = wf.0.wait();
    let before = lines();
    let wf = start(&pipeline);
    wait_assigned(&pipeline, 2);
    // The restarted instance works on the rest of the backlog before the release.
    wait_until("the backlog resumed", Duration::from_secs(60), || {
        lines() > before + 10
    });
    // The held partition is released, hours of event time behind the others.
    rt.block_on(produce(brokers.clone(), held, 1_000_000, produced.clone()));
    check("kafka skew", &dir, &pipeline, &expected);
    drop(wf);
    let _ = std::fs::remove_dir_all(&dir);
}
