//! Crash-exact state, end to end against a real Mosquitto: a generated city dataset
//! (≥ 100,000 readings from 220 sources; tumbling, sliding, session, per-event with `for`
//! and escalation, and ward-keyed rules) is published at QoS 1 while `watchfloor run` is
//! disrupted (SIGKILLed at random moments, one within a second of its restart; stopped
//! cleanly; or its broker restarted), and the distinct alert transitions it writes must
//! equal `watchfloor replay` of the same file exactly: nothing missing, nothing extra, and
//! every repeated transition byte-identical to its first emission.
//!
//! The rules here are all on event time (windows, `for: N`, escalation by value), so the
//! comparison is exact; rules on the wall clock are not part of it.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::mosquitto::Mosquitto;
use support::{runtime, scratch, Killed};

/// 2026-11-17T00:00:00Z: event time of the first reading.
const START: i64 = 1_794_873_600_000;
const STEP_MS: i64 = 15_000;
const STEPS: i64 = 480; // two hours
const AIR: usize = 200;
const GAUGES: usize = 20;
const WARDS: usize = 12;

const RULES: &str = r#"
rules:
  - id: air_minute_mean
    match: { kind: air, metric: pm25 }
    window: { type: tumbling, size: 1m }
    aggregates: { mean: avg(pm25), n: count(pm25) }
    condition: n >= 3 && mean > 62.0
    clear: mean < 55.0
    value: mean
    severity: minor
    message: "PM2.5 minute mean {mean:.3} at {key}"
  - id: air_sliding_peak
    match: { kind: air, metric: pm25 }
    window: { type: sliding, size: 5m, slide: 1m }
    aggregates:
      peak: max(pm25)
      p90: "percentile(pm25, 90)"
      spread: stddev(pm25)
    condition: peak > 95.0 && p90 > 80.0
    value: p90
    severity: major
    message: "PM2.5 5-minute p90 {p90:.3} (peak {peak:.1}, spread {spread:.2}) at {key}"
  - id: air_session_mean
    match: { kind: air, metric: pm25, source: "A??0" }
    window: { type: session, gap: 2m }
    aggregates: { mean: avg(pm25), n: count(pm25) }
    condition: n >= 8 && mean > 45.0
    value: mean
    severity: minor
    message: "session of {n} readings, mean {mean:.3} at {key}"
  - id: gauge_level_high
    match: { kind: water_level, metric: water_level }
    aggregates: { level: last(water_level) }
    condition: level > 2.0
    clear: level < 1.9
    for: 3
    value: level
    severity: major
    escalate:
      - { when: "level > 2.5", severity: critical }
    message: "level {level:.3} m at {key}"
  - id: ward_air_mean
    match: { kind: air, metric: pm25 }
    key: zone
    window: { type: tumbling, size: 5m }
    aggregates: { mean: avg(pm25), n: count(pm25) }
    condition: mean > 48.0
    clear: mean < 44.0
    value: mean
    severity: minor
    message: "ward {key} PM2.5 5-minute mean {mean:.3}"
"#;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The dataset: (topic, payload) in publishing order (event time), and the last event time
/// of real data. Closing readings an hour later let the live watermark pass every window
/// (transitions after the last real reading are not compared).
fn dataset() -> (Vec<(String, String)>, i64) {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut lines = Vec::new();
    for step in 0..STEPS {
        let ts = START + step * STEP_MS;
        let minute = step / 4;
        for a in 0..AIR {
            // Every tenth station pauses 4 minutes in every 20 (sessions close).
            if a % 10 == 0 && (minute % 20) >= 16 {
                continue;
            }
            // Episodes: a station's air is bad for a while.
            let episode = ((minute + a as i64 * 7) % 37) < 6;
            let base = if episode { 70.0 } else { 32.0 };
            let pm25 = base + rng.unit() * 40.0 - 10.0;
            let source = format!("A{a:03}");
            let zone = format!("w{:02}", a % WARDS);
            lines.push((
                format!("ioc/air/{source}/telemetry"),
                format!(
                    r#"{{"source":"{source}","kind":"air","ts":{ts},"zone":"{zone}","values":{{"pm25":{pm25:.2}}}}}"#
                ),
            ));
        }
        for g in 0..GAUGES {
            let phase = (step as f64 / 40.0) + g as f64;
            let level = 1.9 + 0.7 * phase.sin() + rng.unit() * 0.1;
            let source = format!("W{g:02}");
            lines.push((
                format!("ioc/water_level/{source}/telemetry"),
                format!(
                    r#"{{"source":"{source}","kind":"water_level","ts":{ts},"values":{{"water_level":{level:.3}}}}}"#
                ),
            ));
        }
    }
    let last = START + (STEPS - 1) * STEP_MS;
    let close = last + 3_600_000;
    for a in 0..AIR {
        lines.push((
            format!("ioc/air/A{a:03}/telemetry"),
            format!(
                r#"{{"source":"A{a:03}","kind":"air","ts":{close},"zone":"w{:02}","values":{{"pm25":5.0}}}}"#,
                a % WARDS
            ),
        ));
    }
    for g in 0..GAUGES {
        lines.push((
            format!("ioc/water_level/W{g:02}/telemetry"),
            format!(
                r#"{{"source":"W{g:02}","kind":"water_level","ts":{close},"values":{{"water_level":0.5}}}}"#
            ),
        ));
    }
    (lines, last)
}

fn write_pipeline(dir: &Path, port: u16) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/rules.yaml"), RULES).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "crash"
rules = "rules"

[engine]
max_out_of_orderness = "10s"
allowed_lateness = "30s"
idle_timeout = "10m"
tick_interval = "100ms"
checkpoint = "state/engine.checkpoint"
checkpoint_interval = "1s"

[limits]
queue_capacity = 2048
mqtt_inflight = 1000

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "watchfloor-crash"
topics = ["ioc/+/+/telemetry"]
format = "json"

[[output]]
type = "file"
path = "alerts.ndjson"

[dead_letter]
type = "file"
path = "dead.ndjson"
"#
        ),
    )
    .unwrap();
    path
}

/// `watchfloor run`, its log appended to `watchfloor.log` across restarts.
fn start(pipeline: &Path) -> Killed {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pipeline.with_file_name("watchfloor.log"))
        .unwrap();
    Killed(
        Command::new(env!("CARGO_BIN_EXE_watchfloor"))
            .args(["run", "--pipeline"])
            .arg(pipeline)
            .current_dir(pipeline.parent().unwrap())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn log_of(pipeline: &Path) -> String {
    std::fs::read_to_string(pipeline.with_file_name("watchfloor.log")).unwrap_or_default()
}

fn wait_subscriptions(pipeline: &Path, count: usize) {
    support::wait_until(
        "the pipeline's subscription",
        Duration::from_secs(60),
        || log_of(pipeline).matches("mqtt source subscribed").count() >= count,
    );
}

/// The comparable identity of a transition.
type Key = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn identity(t: &serde_json::Value) -> Key {
    let s = |f: &str| t[f].to_string();
    (
        s("alert_id"),
        s("rule"),
        s("key"),
        s("state"),
        s("severity"),
        s("at"),
        s("window_start"),
        s("window_end"),
        s("value"),
    )
}

/// Transitions at or before `last` (RFC 3339 in one format compares as text), by identity,
/// with every distinct text seen for each.
fn transitions(text: &str, last: &str) -> BTreeMap<Key, BTreeSet<String>> {
    let mut out: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        // A SIGKILL can cut the last line short; its input was not acknowledged.
        let Ok(t) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if t["at"].as_str().is_some_and(|at| at <= last) {
            out.entry(identity(&t))
                .or_default()
                .insert(line.to_string());
        }
    }
    out
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// What happens to the running system while the data is published.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Disruption {
    /// SIGKILL at four random moments (the third within a second of its restart).
    Kill,
    /// SIGTERM (a clean stop) once, mid-stream.
    Term,
    /// The broker stopped and started again mid-stream.
    BrokerRestart,
}

/// The three runs take turns: each publishes at a fixed rate against a two-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(name: &str, disruption: Disruption) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("crash", name);
    let mut broker = Mosquitto::start(&dir);
    let pipeline = write_pipeline(&dir, broker.port);
    let (lines, last) = dataset();
    assert!(lines.len() >= 100_000, "{} readings", lines.len());

    // The reference: replay of the same input.
    let input = dir.join("input.ndjson");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for (_, payload) in &lines {
        writeln!(file, "{payload}").unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let replay = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["replay", "--rules"])
        .arg(dir.join("rules"))
        .arg("--input")
        .arg(&input)
        .args(["--idle-timeout", "10m"])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let last_text = rfc3339(last);
    let expected = transitions(&String::from_utf8(replay.stdout).unwrap(), &last_text);
    let rules_seen: BTreeSet<String> = expected.keys().map(|k| k.1.clone()).collect();
    assert_eq!(
        rules_seen.len(),
        5,
        "every rule kind fires in the reference: {rules_seen:?}"
    );
    assert!(
        expected.len() > 300,
        "{} reference transitions",
        expected.len()
    );

    let mut wf = start(&pipeline);
    wait_subscriptions(&pipeline, 1);
    let rt = runtime();
    let acked = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let total = lines.len() as u64;
    let publisher = {
        let (acked, published, port) = (acked.clone(), published.clone(), broker.port);
        rt.spawn(async move {
            let mut options = MqttOptions::new("crash-stations", "127.0.0.1", port);
            options.set_keep_alive(Duration::from_secs(30));
            options.set_clean_session(false);
            options.set_inflight(500);
            let (client, mut event_loop) = AsyncClient::new(options, 2000);
            let counter = acked.clone();
            tokio::spawn(async move {
                loop {
                    match event_loop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            // About 8,000 readings a second: long enough for every disruption to land
            // mid-stream.
            let start = Instant::now();
            for (i, (topic, payload)) in lines.into_iter().enumerate() {
                if i % 400 == 0 {
                    let due = Duration::from_millis(i as u64 / 8);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
                published.fetch_add(1, Ordering::SeqCst);
            }
            client
        })
    };

    let mut rng = Rng(support::now_ms() as u64 | 1);
    let mut restarts = 0;
    let fraction = |f: f64| (total as f64 * f) as u64;
    let wait_published = |n: u64| {
        support::wait_until("the publisher", Duration::from_secs(120), || {
            published.load(Ordering::SeqCst) >= n
        })
    };
    match disruption {
        Disruption::Kill => {
            for k in 0..4 {
                if k == 2 {
                    // Within a second of the restart: the log replay may be under way.
                    std::thread::sleep(Duration::from_millis(200 + rng.next() % 700));
                } else {
                    let at = fraction(0.12 + 0.2 * k as f64 + rng.unit() * 0.1);
                    wait_published(at);
                }
                drop(wf); // SIGKILL
                eprintln!(
                    "SIGKILL {k} at {} published",
                    published.load(Ordering::SeqCst)
                );
                wf = start(&pipeline);
                restarts += 1;
            }
        }
        Disruption::Term => {
            wait_published(fraction(0.4 + rng.unit() * 0.2));
            let _ = Command::new("kill")
                .args(["-TERM", &wf.0.id().to_string()])
                .status();
            let _ = wf.0.wait();
            wf = start(&pipeline);
            restarts += 1;
        }
        Disruption::BrokerRestart => {
            wait_published(fraction(0.4 + rng.unit() * 0.2));
            broker.stop();
            std::thread::sleep(Duration::from_millis(500));
            broker.restart();
        }
    }
    let client = rt.block_on(publisher).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while acked.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        acked.load(Ordering::SeqCst),
        total,
        "the broker took every reading"
    );
    rt.block_on(async {
        let _ = client.disconnect().await;
    });

    // Wait until the live output holds the reference (or stops growing without it).
    let alerts = dir.join("alerts.ndjson");
    let start_wait = Instant::now();
    let mut seen = 0;
    let mut unchanged_since = Instant::now();
    loop {
        let live = transitions(
            &std::fs::read_to_string(&alerts).unwrap_or_default(),
            &last_text,
        );
        if expected.keys().all(|k| live.contains_key(k)) {
            break;
        }
        if live.len() != seen {
            seen = live.len();
            unchanged_since = Instant::now();
        }
        if unchanged_since.elapsed() > Duration::from_secs(60)
            || start_wait.elapsed() > Duration::from_secs(300)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    let live = transitions(&text, &last_text);
    drop(wf);
    let log = log_of(&pipeline);
    let missing: Vec<&Key> = expected.keys().filter(|k| !live.contains_key(*k)).collect();
    let extra: Vec<&Key> = live.keys().filter(|k| !expected.contains_key(*k)).collect();
    let differing: Vec<(&Key, &BTreeSet<String>)> =
        live.iter().filter(|(_, texts)| texts.len() > 1).collect();
    let lines_written = text.lines().count();
    eprintln!(
        "{name}: {} reference transitions, {} live distinct, {lines_written} lines written ({} repeats), {restarts} restarts; missing {}, extra {}, repeats that differ {}",
        expected.len(),
        live.len(),
        lines_written.saturating_sub(live.len()),
        missing.len(),
        extra.len(),
        differing.len()
    );
    if !(missing.is_empty() && extra.is_empty() && differing.is_empty()) {
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        panic!(
            "live output differs from replay\nmissing (first 10): {:#?}\nextra (first 10): {:#?}\ndiffering repeats (first 3): {:#?}\nlog tail:\n{}",
            &missing[..missing.len().min(10)],
            &extra[..extra.len().min(10)],
            &differing[..differing.len().min(3)],
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // Every reading was processed once: late and duplicate refusals would show here.
    let dead = std::fs::read_to_string(dir.join("dead.ndjson")).unwrap_or_default();
    assert_eq!(
        dead.lines().count(),
        0,
        "nothing dead-lettered: {}",
        dead.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    if disruption == Disruption::Kill {
        assert!(
            log.contains("write-ahead log replayed"),
            "a restart replayed the log"
        );
    }
}

#[test]
fn sigkills_at_random_moments_change_no_alert() {
    run("kill", Disruption::Kill);
}

#[test]
fn a_clean_stop_and_restart_changes_no_alert() {
    run("term", Disruption::Term);
}

#[test]
fn a_broker_restart_changes_no_alert() {
    run("broker", Disruption::BrokerRestart);
}
