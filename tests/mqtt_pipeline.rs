//! End-to-end against a real Mosquitto (`apt-get install mosquitto`; `.ci/run` installs it):
//! `watchfloor run` consumes MQTT, writes alerts to a file and an MQTT topic, dead-letters
//! bad input with its reason, and loses nothing when killed with SIGKILL and restarted.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use support::mosquitto::wait_for_port;
use support::{free_port, now_ms, runtime, scratch, wait_progressing, wait_until, Killed};

/// A real Mosquitto on a free port, holding up to any number of queued messages for
/// disconnected persistent sessions.
fn mosquitto(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\n"
        ),
    )
    .unwrap();
    let binary = if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    };
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed (apt-get install mosquitto); .ci/run installs it");
    let guard = Killed(child);
    wait_for_port(port);
    (guard, port)
}

fn write_pipeline(dir: &Path, port: u16, rules: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/rules.yaml"), rules).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "test"
rules = "rules"

[engine]
max_out_of_orderness = "1s"
allowed_lateness = "1s"
idle_timeout = "1m"
tick_interval = "100ms"

[limits]
max_payload_bytes = 65536
queue_capacity = 1024
mqtt_inflight = 500

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "watchfloor-test-json"
topics = ["ioc/+/+/telemetry"]
format = "json"

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "watchfloor-test-tt10"
topics = ["ioc/tt10/+"]
format = "tt10"
station_topic_level = 2
kind = "discharge"

[[output]]
type = "file"
path = "alerts.ndjson"

[[output]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "watchfloor-test-alerts"
topic = "ioc/alerts/{{severity}}/{{rule}}"

[dead_letter]
type = "file"
path = "dead.ndjson"
"#
        ),
    )
    .unwrap();
    path
}

fn start_watchfloor(pipeline: &Path) -> Killed {
    let log = std::fs::File::create(pipeline.with_file_name("watchfloor.log")).unwrap();
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

/// Waits until both of the pipeline's MQTT sources hold their subscriptions.
fn wait_subscribed(pipeline: &Path) {
    let log = pipeline.with_file_name("watchfloor.log");
    wait_until(
        "the pipeline's subscriptions",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("mqtt source subscribed")
                .count()
                >= 2
        },
    );
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        // A SIGKILL can cut the last line short; its message was not acknowledged and comes again.
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A QoS 1 publisher whose event loop runs in its own task and counts PUBACKs.
async fn publisher(
    port: u16,
    id: &str,
) -> (AsyncClient, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
    options.set_inflight(200);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut event_loop) = AsyncClient::new(options, 1000);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = acked.clone();
    tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    (client, acked)
}

/// Waits until the broker acknowledged `count` publishes, then disconnects.
async fn finish(
    client: AsyncClient,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    count: u64,
) -> u64 {
    // Bounded by progress: given up after a minute without a new acknowledgement.
    let (mut best, mut moved) = (0, Instant::now());
    while acked.load(std::sync::atomic::Ordering::SeqCst) < count
        && moved.elapsed() < Duration::from_secs(60)
    {
        let now = acked.load(std::sync::atomic::Ordering::SeqCst);
        if now > best {
            (best, moved) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = client.disconnect().await;
    acked.load(std::sync::atomic::Ordering::SeqCst)
}

const RULES: &str = r#"
rules:
  - id: cod_high
    match: { kind: discharge, metric: cod }
    aggregates: { cod: last(cod) }
    condition: cod > 150
    severity: major
    message: "COD {cod} at {key}"
  - id: camera_fire
    match: { kind: camera, event: fire_smoke }
    aggregates: { confidence: max(confidence) }
    condition: confidence >= 0.8
    clear: "false"
    severity: critical
"#;

#[test]
fn alerts_reach_file_and_mqtt_and_every_bad_message_is_dead_lettered_once() {
    let dir = scratch("mqtt", "e2e");
    let (_broker, port) = mosquitto(&dir);
    let pipeline = write_pipeline(&dir, port, RULES);
    let _wf = start_watchfloor(&pipeline);
    let rt = runtime();
    rt.block_on(async {
        // An integrator listening for alerts.
        // It keeps a persistent session and reconnects, as a real integrator would, so a
        // slow start on a loaded machine cannot lose what the broker holds for it.
        let mut options = MqttOptions::new("integrator", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(false);
        let (listener, mut listener_loop) = AsyncClient::new(options, 100);
        listener.subscribe("ioc/alerts/#", QoS::AtLeastOnce).await.unwrap();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, serde_json::Value)>::new()));
        let subscribed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, suback) = (received.clone(), subscribed.clone());
        tokio::spawn(async move {
            loop {
                match listener_loop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock().unwrap().push((p.topic.clone(), serde_json::from_slice(&p.payload).unwrap()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => suback.store(true, std::sync::atomic::Ordering::SeqCst),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        // Both watchfloor sources subscribed, and the integrator too.
        wait_subscribed(&pipeline);
        wait_until("the integrator's subscription", Duration::from_secs(30), || {
            subscribed.load(std::sync::atomic::Ordering::SeqCst)
        });

        let (client, acks) = publisher(port, "station-publisher").await;
        let now = now_ms();
        let good = |source: &str, ts: i64, cod: f64| {
            format!(r#"{{"source":"{source}","kind":"discharge","ts":{ts},"values":{{"cod":{cod}}}}}"#).into_bytes()
        };
        let big = {
            let mut v = br#"{"source":"X","kind":"discharge","ts":1,"values":{"cod":1},"pad":""#.to_vec();
            v.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
            v.extend_from_slice(br#""}"#);
            v
        };
        let t = "ioc/ninhkieu/CT-TN-01/telemetry";
        let corpus: Vec<(&str, Vec<u8>, &str)> = vec![
            (t, b"{\"source\": \"CT-TN-01\", \"kind\": ".to_vec(), "malformed_json"),
            (t, br#"{"source":17,"kind":"discharge","ts":1,"values":{"cod":1}}"#.to_vec(), "wrong_type"),
            (t, format!(r#"{{"source":"CT-TN-01","kind":"discharge","ts":{now},"values":{{"cod":"NaN"}}}}"#).into_bytes(), "non_finite"),
            (t, big, "oversize"),
            (t, format!(r#"{{"source":"CT-TN-01","kind":"sewage","ts":{now},"values":{{"cod":1}}}}"#).into_bytes(), "unknown_kind"),
            (t, br#"{"source":"CT-TN-01","kind":"discharge","ts":"2031-01-01T00:00:00Z","values":{"cod":1}}"#.to_vec(), "future_timestamp"),
            ("ioc/tt10/CT-TN-02", b"COD\t171.5\tmg/l\t2026112710".to_vec(), "malformed_line"),
            (t, format!(r#"{{"source":"CT-TN-01","kind":"discharge","ts":{now},"values":{{"cod":1}},"units":{{"cod":"kg"}}}}"#).into_bytes(), "wrong_unit"),
            (t, vec![0xff, 0xfe, 0x00, 0x01], "malformed_json"),
            (t, format!(r#"{{"source":"CT-TN-01","kind":"discharge","ts":{now}}}"#).into_bytes(), "missing_field"),
            (t, format!(r#"{{"source":"CAM-1","kind":"camera","ts":{now},"event":"crowd","confidence":7}}"#).into_bytes(), "confidence_out_of_range"),
        ];
        // Good data first (so the late and duplicate cases have something to be late or
        // a duplicate of), then the corpus.
        client.publish(t, QoS::AtLeastOnce, false, good("CT-TN-01", now - 2_000, 180.0)).await.unwrap();
        client.publish(t, QoS::AtLeastOnce, false, good("CT-TN-03", now - 1_000, 20.0)).await.unwrap();
        // The station's datalogger writes local time (UTC+7).
        let stamp = (chrono::Utc::now() - chrono::Duration::seconds(3))
            .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
            .format("%Y%m%d%H%M%S")
            .to_string();
        let tt10 = format!("COD\t171.5\tmg/l\t{stamp}\t00\nNH4\t6.8\tmg/l\t{stamp}\t01\n");
        client.publish("ioc/tt10/CT-TN-02", QoS::AtLeastOnce, false, tt10.into_bytes()).await.unwrap();
        client
            .publish(t, QoS::AtLeastOnce, false, format!(r#"{{"source":"CAM-9","kind":"camera","ts":{now},"event":"fire_smoke","confidence":0.95}}"#).into_bytes())
            .await
            .unwrap();
        // The good data is processed (its three alerts are out) before the corpus.
        let alerts = dir.join("alerts.ndjson");
        wait_until("the good readings' alerts", Duration::from_secs(30), || read_lines(&alerts).len() >= 3);
        let mut expected: Vec<&str> = Vec::new();
        for (topic, payload, reason) in corpus {
            client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
            expected.push(reason);
        }
        // A duplicate of a message already accepted, and an event an hour old.
        client.publish(t, QoS::AtLeastOnce, false, good("CT-TN-03", now - 1_000, 20.0)).await.unwrap();
        expected.push("duplicate");
        client.publish(t, QoS::AtLeastOnce, false, good("CT-TN-03", now - 3_600_000, 20.0)).await.unwrap();
        expected.push("late");
        let published = (expected.len() + 4) as u64;
        assert_eq!(finish(client, acks, published).await, published);

        let dead = dir.join("dead.ndjson");
        wait_until("dead letters", Duration::from_secs(30), || read_lines(&dead).len() >= expected.len());
        // Nothing more may come: a bad message dead-lettered twice would show within this.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let records = read_lines(&dead);
        let mut got: Vec<&str> = records.iter().map(|r| r["reason"].as_str().unwrap()).collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "one dead letter per bad message, with its reason");
        assert!(records.iter().all(|r| r["topic"].as_str().unwrap().starts_with("ioc/")), "origin recorded");
        let oversize = records.iter().find(|r| r["reason"] == "oversize").unwrap();
        assert!(oversize["raw_bytes"].as_u64().unwrap() > 10 * 1024 * 1024, "original bytes kept");

        wait_until("alerts", Duration::from_secs(20), || read_lines(&alerts).len() >= 3);
        let mut fired: Vec<(String, String)> = read_lines(&alerts)
            .iter()
            .map(|a| (a["rule"].as_str().unwrap().to_string(), a["key"].as_str().unwrap().to_string()))
            .collect();
        fired.sort();
        assert_eq!(
            fired,
            vec![
                ("camera_fire".into(), "CAM-9".into()),
                ("cod_high".into(), "CT-TN-01".into()),
                ("cod_high".into(), "CT-TN-02".into()),
            ],
            "CT-TN-02 fires from its TT10 file; its calibrating NH4 line does not count"
        );
        let over_mqtt = (0..300).any(|_| {
            let enough = received.lock().unwrap().len() >= 3;
            if !enough {
                std::thread::sleep(Duration::from_millis(100));
            }
            enough
        });
        assert!(
            over_mqtt,
            "timed out waiting for alerts over MQTT (got {:?}); watchfloor log:\n{}",
            received.lock().unwrap(),
            std::fs::read_to_string(dir.join("watchfloor.log")).unwrap_or_default()
        );
        let topics: Vec<String> = received.lock().unwrap().iter().map(|(t, _)| t.clone()).collect();
        assert!(topics.contains(&"ioc/alerts/critical/camera_fire".to_string()), "{topics:?}");
        assert!(topics.contains(&"ioc/alerts/major/cod_high".to_string()), "{topics:?}");
        // The MQTT payloads are the transitions themselves: the same records as the file
        // output, each on the topic of its own severity and rule.
        let mut over_the_wire: Vec<String> = received.lock().unwrap().iter().map(|(topic, alert)| {
            assert_eq!(
                topic,
                &format!("ioc/alerts/{}/{}", alert["severity"].as_str().unwrap_or("<no severity>"), alert["rule"].as_str().unwrap_or("<no rule>")),
                "{alert}"
            );
            alert.to_string()
        }).collect();
        let mut in_file: Vec<String> = read_lines(&alerts).iter().map(|a| a.to_string()).collect();
        over_the_wire.sort();
        in_file.sort();
        assert_eq!(over_the_wire, in_file, "MQTT payloads equal the file's records");
        let fire = received.lock().unwrap().iter().find(|(t, _)| t.ends_with("camera_fire")).unwrap().1.clone();
        assert_eq!((fire["key"].as_str(), fire["state"].as_str()), (Some("CAM-9"), Some("firing")));
    });
}

#[test]
fn the_shipped_pipeline_checks_and_a_broken_one_does_not() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ok = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["run", "--check", "--pipeline"])
        .arg(root.join("pipelines/city.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = scratch("mqtt", "check");
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "name = \"x\"\nrules = \"nowhere\"\n[dead_letter]\ntype = \"file\"\npath = \"d\"\n",
    )
    .unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["run", "--check", "--pipeline"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("at least one [[source]]"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn the_embedded_broker_carries_a_reading_to_an_alert() {
    let dir = scratch("mqtt", "embedded");
    let port = free_port();
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    let _broker = Killed(
        Command::new(env!("CARGO_BIN_EXE_watchfloor"))
            .args(["broker", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let pipeline = write_pipeline(&dir, port, RULES);
    let _wf = start_watchfloor(&pipeline);
    wait_subscribed(&pipeline);
    runtime().block_on(async {
        let (client, acks) = publisher(port, "embedded-publisher").await;
        let reading = format!(
            r#"{{"source":"CT-TN-05","kind":"discharge","ts":{},"values":{{"cod":210}}}}"#,
            now_ms()
        );
        client
            .publish(
                "ioc/ninhkieu/CT-TN-05/telemetry",
                QoS::AtLeastOnce,
                false,
                reading.into_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(finish(client, acks, 1).await, 1);
    });
    let alerts = dir.join("alerts.ndjson");
    wait_until(
        "an alert through the embedded broker",
        Duration::from_secs(20),
        || !read_lines(&alerts).is_empty(),
    );
    assert_eq!(read_lines(&alerts)[0]["key"], "CT-TN-05");
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

#[test]
fn no_message_is_lost_when_watchfloor_is_killed_three_times() {
    const TOTAL: u64 = 100_000;
    let dir = scratch("mqtt", "no-loss");
    let (_broker, port) = mosquitto(&dir);
    let pipeline = write_pipeline(&dir, port, SEQ_RULE);
    let alerts = dir.join("alerts.ndjson");
    let mut wf = start_watchfloor(&pipeline);
    wait_subscribed(&pipeline); // the persistent session and its subscription exist
    let rt = runtime();
    let publishing = rt.spawn(async move {
        let (client, acks) = publisher(port, "seq-publisher").await;
        let base = now_ms();
        for seq in 0..TOTAL {
            // 1,000 sensors, event time moving forward with the sequence.
            let payload = format!(
                r#"{{"source":"TR-{:04}","kind":"traffic","ts":{},"values":{{"speed":{}}},"attrs":{{"seq":"{seq}"}}}}"#,
                seq % 1000,
                base + seq as i64,
                seq % 90
            );
            client.publish("ioc/d1/tr/telemetry", QoS::AtLeastOnce, false, payload.into_bytes()).await.unwrap();
        }
        finish(client, acks, TOTAL).await
    });
    // Kill watchfloor with SIGKILL three times while the stream runs, restarting it each time.
    for kill in 1..=3 {
        let threshold = kill * TOTAL as usize / 5;
        wait_progressing("progress before a kill", Duration::from_secs(60), || {
            let n = read_lines(&alerts).len();
            (n as u64, n >= threshold)
        });
        wf.0.kill().unwrap(); // SIGKILL
        wf.0.wait().unwrap();
        wf = start_watchfloor(&pipeline);
    }
    let published = rt.block_on(publishing).unwrap();
    assert_eq!(published, TOTAL, "the broker acknowledged every publish");
    wait_progressing("every sequence number", Duration::from_secs(60), || {
        let seen: std::collections::HashSet<String> = read_lines(&alerts)
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect();
        (seen.len() as u64, seen.len() as u64 == TOTAL)
    });
    let lines = read_lines(&alerts);
    let distinct: std::collections::HashSet<&str> = lines
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        distinct.len() as u64,
        TOTAL,
        "one alert id per sequence number"
    );
    let duplicates = lines.len() as u64 - TOTAL;
    eprintln!("no-loss: {TOTAL} sequence numbers, all processed; {duplicates} redelivered duplicates (same alert_id)");
    let _ = std::io::stderr().flush();
}

/// Where the first half of a window is when the process is killed.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    /// Anywhere: killed as soon as the first checkpoint exists.
    Checkpoint,
    /// Only in the write-ahead log: no checkpoint is ever written before the kill.
    Log,
}

#[test]
fn window_state_survives_a_crash_through_the_checkpoint() {
    window_state_survives_a_crash(Held::Checkpoint);
}

#[test]
fn window_state_survives_a_crash_through_the_write_ahead_log() {
    window_state_survives_a_crash(Held::Log);
}

fn window_state_survives_a_crash(held: Held) {
    let dir = scratch(
        "mqtt",
        if held == Held::Log {
            "wal"
        } else {
            "checkpoint"
        },
    );
    let (_broker, port) = mosquitto(&dir);
    let rules = r#"
rules:
  - id: six_readings
    match: { kind: discharge, metric: cod }
    window: { type: tumbling, size: 10s }
    aggregates: { n: count(cod) }
    condition: n >= 6
    value: n
    severity: minor
"#;
    let pipeline = write_pipeline(&dir, port, rules);
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "tick_interval = \"100ms\"",
        &format!(
            "tick_interval = \"100ms\"\ncheckpoint = \"state/engine.checkpoint\"\ncheckpoint_interval = \"{}\"",
            if held == Held::Log { "1h" } else { "200ms" }
        ),
    );
    std::fs::write(&pipeline, text).unwrap();
    // A 10-second window 20 s ahead: it cannot close before both halves are in.
    let window = (now_ms() / 10_000 + 2) * 10_000;
    let readings = |from: i64, to: i64| -> Vec<Vec<u8>> {
        (from..to)
            .map(|i| {
                format!(
                    r#"{{"source":"CT-TN-07","kind":"discharge","ts":{},"values":{{"cod":50}}}}"#,
                    window + i * 1_000
                )
                .into_bytes()
            })
            .collect()
    };
    let publish = |batch: Vec<Vec<u8>>, id: &'static str| {
        runtime().block_on(async {
            let (client, acks) = publisher(port, id).await;
            let n = batch.len() as u64;
            for payload in batch {
                client
                    .publish(
                        "ioc/ninhkieu/CT-TN-07/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .unwrap();
            }
            assert_eq!(finish(client, acks, n).await, n);
        })
    };

    let mut first = start_watchfloor(&pipeline);
    wait_subscribed(&pipeline);
    publish(readings(0, 3), "checkpoint-publisher-1");
    let log = dir.join("watchfloor.log");
    let checkpoint = dir.join("state/engine.checkpoint");
    if held == Held::Checkpoint {
        // Killed as soon as a checkpoint exists, wherever the three readings are (queued at
        // the broker, in the write-ahead log, in the checkpoint): none may be lost or
        // counted twice.
        wait_until("a checkpoint", Duration::from_secs(20), || {
            checkpoint.exists()
        });
    } else {
        // Killed once the log holds all three (their payloads are in its records): the
        // restart has no checkpoint and must rebuild the window from the log alone.
        let wal = dir.join("state/engine.checkpoint.wal");
        let payloads = readings(0, 3);
        wait_until(
            "the three readings in the log",
            Duration::from_secs(20),
            || {
                let bytes: Vec<u8> = std::fs::read_dir(&wal)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
                    .collect();
                payloads
                    .iter()
                    .all(|p| bytes.windows(p.len()).any(|w| w == p.as_slice()))
            },
        );
        assert!(!checkpoint.exists(), "no checkpoint within the hour");
    }
    first.0.kill().unwrap();
    let _ = first.0.wait();

    let _second = start_watchfloor(&pipeline);
    let restored = if held == Held::Log {
        "write-ahead log replayed"
    } else {
        "engine state restored from the checkpoint"
    };
    wait_until("the restore", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(restored)
    });
    wait_subscribed(&pipeline);
    // The last three, and one 13 s in that moves the watermark past the window.
    let mut rest = readings(3, 6);
    rest.extend(readings(13, 14));
    publish(rest, "checkpoint-publisher-2");
    // The window closes at its end plus out-of-orderness and lateness: six readings in it
    // only if the first three came back from the checkpoint.
    let alerts = dir.join("alerts.ndjson");
    wait_until(
        "the alert over both halves",
        Duration::from_secs(40),
        || {
            read_lines(&alerts)
                .iter()
                .any(|a| a["rule"] == "six_readings")
        },
    );
    let fired: Vec<f64> = read_lines(&alerts)
        .iter()
        .filter(|a| a["rule"] == "six_readings" && a["state"] == "firing")
        .map(|a| a["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        fired,
        vec![6.0],
        "exactly the six readings, none counted twice"
    );
}
