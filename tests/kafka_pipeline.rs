//! End-to-end against a real Kafka-protocol broker, tansu 0.6.0 (`cargo install tansu
//! --version 0.6.0 --locked --features dynostore`; `.ci/run` installs it), with one record
//! per producer batch (tansu gives a multi-record batch a single offset).
//!
//! - no loss: sequenced readings keyed by station, Watchfloor killed with SIGKILL
//!   mid-stream and restarted; the alert topic holds every expected alert, and duplicates
//!   only repeat an `alert_id` already there;
//! - scale-out: two instances in one consumer group over a 4-partition topic share the
//!   partitions and together emit the full alert set;
//! - takeover: one of the two is stopped (SIGTERM) mid-stream and the survivor takes its
//!   partitions over from the committed offsets; the alert set is still complete. The same
//!   with SIGKILL is ignored: tansu 0.6 keeps the old assignment after the dead member's
//!   session expires.

#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use support::{now_ms, runtime, scratch, wait_progressing, wait_until, Killed};

fn tansu(dir: &Path, topics: &[&str]) -> (Killed, String) {
    support::tansu::start(dir, topics)
}

const SEQ_RULE: &str = r#"
rules:
  - id: seq_seen
    match: { kind: traffic, metric: speed }
    key: attrs.seq
    aggregates: { speed: last(speed) }
    condition: speed >= 0
    severity: info
"#;

/// `options` is a TOML inline-table body of librdkafka settings for the source.
fn write_pipeline_named(dir: &Path, brokers: &str, file: &str, options: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/rules.yaml"), SEQ_RULE).unwrap();
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            r#"
name = "kafka-test"
rules = "rules"

[engine]
max_out_of_orderness = "1s"
allowed_lateness = "10m"
idle_timeout = "1m"
tick_interval = "200ms"

[[source]]
type = "kafka"
brokers = "{brokers}"
group_id = "watchfloor-test"
topics = ["telemetry"]
format = "json"
options = {{ {options} }}

[[output]]
type = "kafka"
brokers = "{brokers}"
topic = "alerts"

[dead_letter]
type = "file"
path = "dead.ndjson"
"#
        ),
    )
    .unwrap();
    path
}

fn start_watchfloor(pipeline: &Path, name: &str) -> Killed {
    let log = std::fs::File::create(pipeline.with_file_name(format!("{name}.log"))).unwrap();
    Killed(
        Command::new(env!("CARGO_BIN_EXE_watchfloor"))
            .args(["run", "--pipeline"])
            .arg(pipeline)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Messages an instance received so far: its log's last progress line (written every 5 s;
/// the log is plain text, no colour codes, when it goes to a file).
fn received(log: &Path) -> Option<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| l.contains("pipeline progress"))
        .and_then(|l| l.split("received=").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Publishes `count` sequenced readings keyed by station, one record per batch.
async fn publish(brokers: &str, from: u64, count: u64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .unwrap();
    let base = now_ms();
    let mut pending = Vec::new();
    for seq in from..from + count {
        let station = format!("TR-{:03}", seq % 200);
        let payload = format!(
            r#"{{"source":"{station}","kind":"traffic","ts":{},"values":{{"speed":{}}},"attrs":{{"seq":"{seq}"}}}}"#,
            base + (seq - from) as i64,
            seq % 90
        );
        let future = producer
            .send_result(
                FutureRecord::to("telemetry")
                    .key(&station)
                    .payload(&payload),
            )
            .unwrap();
        pending.push(future);
        if pending.len() >= 500 {
            for f in pending.drain(..) {
                f.await.unwrap().unwrap();
            }
        }
    }
    for f in pending {
        f.await.unwrap().unwrap();
    }
}

/// Reads the whole alert topic: alert_id → how many times it appears, and the keys seen.
fn read_alerts(brokers: &str, group: &str) -> (HashMap<String, u32>, HashSet<String>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["alerts"]).unwrap();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut keys = HashSet::new();
    let mut quiet_since = Instant::now();
    let start = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5)
        && start.elapsed() < Duration::from_secs(120)
    {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                quiet_since = Instant::now();
                let value: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap()).unwrap();
                *ids.entry(value["alert_id"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
                keys.insert(value["key"].as_str().unwrap().to_string());
            }
            Some(Err(e)) => panic!("reading alerts: {e}"),
            None => {}
        }
    }
    (ids, keys)
}

/// Reads the alert topic until it holds an alert for `total` distinct keys.
fn wait_for_alert_set(
    brokers: &str,
    total: u64,
    what: &str,
) -> (HashMap<String, u32>, HashSet<String>) {
    let mut last = (HashMap::new(), HashSet::new());
    wait_progressing(what, Duration::from_secs(60), || {
        last = read_alerts(brokers, &format!("verify-{}", now_ms()));
        (last.1.len() as u64, last.1.len() as u64 == total)
    });
    last
}

#[test]
fn kafka_no_loss_across_sigkill() {
    const TOTAL: u64 = 20_000;
    let dir = scratch("kafka", "no-loss");
    let (_broker, brokers) = tansu(&dir, &["telemetry", "alerts"]);
    let pipeline = write_pipeline_named(
        &dir,
        &brokers,
        "pipeline.toml",
        r#""max.poll.interval.ms" = "20000""#,
    );
    let rt = runtime();
    let mut wf = start_watchfloor(&pipeline, "watchfloor-1");
    let log = dir.join("watchfloor-1.log");
    wait_until(
        "the first instance to join the group",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("partitions assigned")
        },
    );
    // Mid-stream: the first half is published while Watchfloor consumes it; it is killed
    // with SIGKILL, the second half is published while it is down, then it restarts.
    rt.block_on(publish(&brokers, 0, TOTAL / 2));
    // Killed once it has processed part of the first half (so the restart has committed
    // offsets to resume from, and something to lose).
    wait_until(
        "the first instance to process readings",
        Duration::from_secs(30),
        || received(&log).is_some_and(|n| n > 0),
    );
    wf.0.kill().unwrap();
    wf.0.wait().unwrap();
    let before_kill = received(&log).unwrap();
    rt.block_on(publish(&brokers, TOTAL / 2, TOTAL / 2));
    // Restart once the dead incarnation's session (10 s) has expired, so that its expiry
    // cannot set off tansu 0.6's broken rebalance after the restart; and without static
    // membership, which tansu 0.6 also mishandles (docs/pipelines.md).
    // The one time-based wait here: tansu's session expiry is on its own clock and says
    // nothing observable to a client.
    std::thread::sleep(Duration::from_secs(15));
    let _wf = start_watchfloor(&pipeline, "watchfloor-2");
    let last = wait_for_alert_set(&brokers, TOTAL, "every expected alert on the alert topic");
    let (ids, keys) = last;
    assert_eq!(keys.len() as u64, TOTAL, "every sequence number alerted");
    assert_eq!(
        ids.len() as u64,
        TOTAL,
        "one alert_id per sequence number: duplicates only repeat an id"
    );
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    // The restart resumed from the group's commits: it did not read the topic again from
    // the start (`auto.offset.reset = earliest` would let an instance that never commits
    // pass the checks above), and the repeats are only the uncommitted tail.
    let log_2 = dir.join("watchfloor-2.log");
    wait_until(
        "the second instance's progress",
        Duration::from_secs(30),
        || received(&log_2).is_some(),
    );
    let after_restart = received(&log_2).unwrap();
    eprintln!("kafka no-loss: {TOTAL} expected alerts all present; first instance received {before_kill} before the kill, the restarted one {after_restart}; {duplicates} duplicate records (repeated alert_id)");
    assert!(
        after_restart < TOTAL - before_kill / 2,
        "the restart resumed from the commits, it did not re-read everything ({after_restart} read)"
    );
    assert!(
        u64::from(duplicates) <= after_restart.saturating_sub(TOTAL / 2),
        "repeats only from the uncommitted tail: {duplicates}"
    );
}

#[test]
fn kafka_two_instances_in_one_group_emit_the_full_alert_set() {
    const TOTAL: u64 = 10_000;
    let dir = scratch("kafka", "scale-out");
    let (_broker, brokers) = tansu(&dir, &["telemetry", "alerts"]);
    let pipeline = write_pipeline_named(
        &dir,
        &brokers,
        "pipeline.toml",
        r#""max.poll.interval.ms" = "20000""#,
    );
    let rt = runtime();
    let (log_a, log_b) = (dir.join("instance-a.log"), dir.join("instance-b.log"));
    let _first = start_watchfloor(&pipeline, "instance-a");
    wait_until(
        "the first instance's assignment",
        Duration::from_secs(60),
        || log_text(&log_a).contains("partitions assigned"),
    );
    let _second = start_watchfloor(&pipeline, "instance-b");
    // Both joined and share the partitions.
    wait_until(
        "the rebalance to two instances",
        Duration::from_secs(60),
        || {
            log_text(&log_b).contains("partitions assigned")
                && log_text(&log_a).matches("partitions assigned").count() >= 2
        },
    );
    rt.block_on(publish(&brokers, 0, TOTAL));
    let last = wait_for_alert_set(&brokers, TOTAL, "the complete alert set from two instances");
    let (ids, _) = last;
    assert_eq!(
        ids.len() as u64,
        TOTAL,
        "same set of alerts as one instance would emit"
    );
    wait_until(
        "both instances' progress lines",
        Duration::from_secs(30),
        || {
            received(&dir.join("instance-a.log")).is_some()
                && received(&dir.join("instance-b.log")).is_some()
        },
    );
    let (a, b) = (
        received(&dir.join("instance-a.log")).unwrap(),
        received(&dir.join("instance-b.log")).unwrap(),
    );
    assert!(
        a > 0 && b > 0 && a + b >= TOTAL,
        "both instances did part of the work: {a} + {b} of {TOTAL}"
    );
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    eprintln!("kafka scale-out: {TOTAL} alerts from two instances; {duplicates} duplicate records");
}

/// Two instances share the partitions; half the readings are published, one instance is
/// stopped with `signal` (`victim` 0: the first started, the group's leader; 1: the other),
/// the other half is published; the alert topic must hold every expected alert. Returns how
/// many records repeat an `alert_id`.
fn survivor_takes_over(name: &str, signal: &str, victim: usize) -> u32 {
    const TOTAL: u64 = 10_000;
    let dir = scratch("kafka", name);
    let (_broker, brokers) = tansu(&dir, &["telemetry", "alerts"]);
    let pipeline = write_pipeline_named(
        &dir,
        &brokers,
        "pipeline.toml",
        r#""max.poll.interval.ms" = "20000""#,
    );
    let rt = runtime();
    let (log_a, log_b) = (dir.join("instance-a.log"), dir.join("instance-b.log"));
    let first = start_watchfloor(&pipeline, "instance-a");
    // The first to join leads the group.
    wait_until(
        "the first instance's assignment",
        Duration::from_secs(60),
        || log_text(&log_a).contains("partitions assigned"),
    );
    let second = start_watchfloor(&pipeline, "instance-b");
    // The group has rebalanced: the second has its share, the first was assigned again.
    wait_until(
        "the rebalance to two instances",
        Duration::from_secs(60),
        || {
            log_text(&log_b).contains("partitions assigned")
                && log_text(&log_a).matches("partitions assigned").count() >= 2
        },
    );
    rt.block_on(publish(&brokers, 0, TOTAL / 2));
    // Both took part of the first half before one of them stops.
    wait_until(
        "both instances to process readings",
        Duration::from_secs(30),
        || received(&log_a).is_some_and(|n| n > 0) && received(&log_b).is_some_and(|n| n > 0),
    );
    let mut instances = [first, second];
    let stopped = &mut instances[victim].0;
    let status = Command::new("kill")
        .args([signal, &stopped.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    stopped.wait().unwrap();
    rt.block_on(publish(&brokers, TOTAL / 2, TOTAL / 2));
    let (ids, _) = wait_for_alert_set(&brokers, TOTAL, "the complete alert set after takeover");
    assert_eq!(ids.len() as u64, TOTAL);
    ids.values().map(|n| n - 1).sum()
}

#[test]
fn kafka_survivor_takes_over_the_partitions_of_a_stopped_instance() {
    // SIGTERM: the instance finishes what it took, commits and leaves the group.
    let duplicates = survivor_takes_over("takeover", "-TERM", 0);
    eprintln!("kafka takeover (SIGTERM): 10000 alerts complete; {duplicates} duplicate records");
}

#[test]
#[ignore = "tansu 0.6: the rebalance after a SIGKILLed member's session expires keeps generation 1 and SyncGroup returns the old assignment, so the dead member's partitions are read by nobody (docs/pipelines.md). Run with --ignored against another broker"]
fn kafka_survivor_takes_over_the_partitions_of_a_killed_instance() {
    // SIGKILL: no leave, no final commit; the group notices when the session (10 s)
    // expires, and the leader reassigns the dead member's partitions from their last commit.
    let duplicates = survivor_takes_over("takeover-kill", "-KILL", 1);
    eprintln!("kafka takeover (SIGKILL): 10000 alerts complete; {duplicates} duplicate records");
}

#[test]
fn the_simulator_publishes_the_city_to_kafka_keyed_by_station() {
    let dir = scratch("kafka", "simulate");
    let (_broker, brokers) = tansu(&dir, &["telemetry"]);
    let bin = env!("CARGO_BIN_EXE_watchfloor");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let common = [
        "simulate",
        "--seed",
        "9",
        "--duration",
        "15m",
        "--start",
        "2026-11-27T00:00:00+07:00",
    ];
    // The same run as NDJSON: what Kafka must hold.
    let expected = Command::new(bin)
        .current_dir(&root)
        .args(common)
        .args(["--output", "-"])
        .output()
        .unwrap();
    assert!(expected.status.success());
    let expected: HashSet<String> = String::from_utf8(expected.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Fifteen simulated minutes at 100,000 x: well under a second of pacing.
    let published = Command::new(bin)
        .current_dir(&root)
        .args(common)
        .args([
            "--kafka",
            &brokers,
            "--kafka-topic",
            "telemetry",
            "--speed",
            "100000",
        ])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "simulate-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["telemetry"]).unwrap();
    let mut got = HashSet::new();
    let start = Instant::now();
    while got.len() < expected.len() && start.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let line = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).to_string()),
                value["source"].as_str().map(str::to_string),
                "records are keyed by station"
            );
            got.insert(line);
        }
    }
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}
