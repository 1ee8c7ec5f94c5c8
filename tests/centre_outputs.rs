//! An alert output whose destination goes away: `watchfloor run` with `[server]` and
//! `[store]`, telemetry from one real Mosquitto, alerts to a file and over MQTT to a
//! second Mosquitto, which is stopped. While that output is stuck the screen and the
//! operators' commands keep working (an acknowledgement answers 200 in seconds) and
//! `/healthz` says which output and why; at the give-up point what it could not deliver is
//! in its undelivered file (counted in `/metrics`) and the pipeline takes input again.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until};

const LOG: &str = "watchfloor.log";
const OPERATOR: &str = "token-operator";

/// The centre with a second alert output over MQTT to the broker on `alerts`, giving up
/// after 20 s.
fn write_centre(dir: &Path, telemetry: u16, alerts: u16, http: u16) -> PathBuf {
    support::centre::write_accounts(dir, "duty-operator", OPERATOR);
    let extra = format!(
        r#"
[limits]
output_give_up = "20s"
undelivered_dir = "undelivered"

[[output]]
type = "mqtt"
host = "127.0.0.1"
port = {alerts}
client_id = "outputs-alerts"
topic = "ioc/alerts/{{severity}}/{{rule}}"
"#
    );
    support::centre::write_pipeline(dir, telemetry, http, "sqlite:incidents.db", &extra)
}

/// Publishes camera detections: `fires` confident fires from distinct cameras, then
/// `quiet` low-confidence ones (each its own small batch at this rate).
fn publish(port: u16, first_camera: usize, fires: usize, quiet: usize) {
    let mut options =
        rumqttc::MqttOptions::new(format!("cameras-{first_camera}"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(options, 100);
    let acks = std::thread::spawn(move || {
        let mut acked = 0;
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    acked += 1;
                    if acked == fires + quiet {
                        return;
                    }
                }
                Err(e) => panic!("publisher: {e}"),
                _ => {}
            }
        }
    });
    for i in 0..fires + quiet {
        let camera = format!("CT-CAM-{:02}", first_camera + i.min(fires));
        let confidence = if i < fires { 0.95 } else { 0.3 };
        let (topic, payload) = support::centre::camera_detection(&camera, confidence);
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    acks.join().unwrap();
    let _ = client.disconnect();
}

fn alert_ids(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("alerts.ndjson"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|a| a["state"] == "firing")
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect()
}

fn health(http: u16) -> (u16, Value) {
    call(http, "GET", "/healthz", None, None)
        .map(|a| (a.status, a.body))
        .unwrap_or((0, Value::Null))
}

#[test]
fn a_stuck_output_keeps_the_centre_working_and_gives_up_into_its_undelivered_file() {
    let dir = scratch("centre", "outputs");
    let telemetry = Mosquitto::start(&dir.join("telemetry-broker").tap_mkdir());
    let mut alerts_broker = Mosquitto::start(&dir.join("alerts-broker").tap_mkdir());
    let http = free_port();
    let pipeline = write_centre(&dir, telemetry.port, alerts_broker.port, http);
    let _wf = run_pipeline(&pipeline, LOG);
    wait_until("the centre to answer", Duration::from_secs(30), || {
        health(http).0 == 200 && support::log_of(&pipeline, LOG).contains("mqtt source subscribed")
    });

    // The integrators' broker goes away; a fire, then enough quiet detections to fill
    // the batches that wait for acknowledgement.
    alerts_broker.stop();
    publish(telemetry.port, 1, 1, 400);
    wait_until(
        "the fire in the file output",
        Duration::from_secs(20),
        || !alert_ids(&dir).is_empty(),
    );
    let fire = alert_ids(&dir)[0].clone();
    wait_until(
        "/healthz to name the stuck output",
        Duration::from_secs(20),
        || {
            let (status, body) = health(http);
            status == 503 && body.to_string().contains("mqtt:ioc/alerts")
        },
    );
    let (_, body) = health(http);
    assert!(body.to_string().contains("not confirmed"), "{body}");

    // The operator works on: the acknowledgement is answered at once, and kept.
    let started = Instant::now();
    let answer = call(
        http,
        "POST",
        &format!("/api/alerts/{fire}/ack"),
        Some(OPERATOR),
        Some(&json!({"note": "crew dispatched"})),
    )
    .expect("an answer");
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    let alert = get(http, &format!("/api/alerts/{fire}"), OPERATOR).body;
    assert_eq!(alert["acknowledged"]["note"], "crew dispatched", "{alert}");

    // The give-up point (20 s): the fire goes to the undelivered file, counted.
    let undelivered = dir.join("undelivered");
    wait_until("the undelivered file", Duration::from_secs(40), || {
        std::fs::read_dir(&undelivered)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains(&fire)
            })
    });
    let metrics = get(http, "/metrics", OPERATOR).body;
    let text = metrics.as_str().unwrap_or_default().to_string();
    let undelivered_total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("watchfloor_output_undelivered_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(undelivered_total >= 1, "{text}");
    let (status, body) = health(http);
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("gave up"), "{body}");

    // Input flows again: a new fire reaches the file output and the screen.
    publish(telemetry.port, 20, 1, 0);
    wait_until("a fire after the give-up", Duration::from_secs(20), || {
        alert_ids(&dir).len() >= 2
    });
    let second = alert_ids(&dir)[1].clone();
    let screen = get(http, &format!("/api/alerts/{second}"), OPERATOR).body;
    assert_eq!(screen["state"], "firing", "{screen}");
}

/// Creates a folder and returns it.
trait TapMkdir {
    fn tap_mkdir(self) -> PathBuf;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn alerts_a_broker_lost_with_its_session_are_published_again() {
    let dir = scratch("centre", "lost-session");
    let telemetry = Mosquitto::start(&dir.join("telemetry-broker").tap_mkdir());
    let alerts_dir = dir.join("alerts-broker").tap_mkdir();
    let mut alerts_broker = Mosquitto::start(&alerts_dir);
    let http = free_port();
    let pipeline = write_centre(&dir, telemetry.port, alerts_broker.port, http);
    // Never give up here: only the publish again can confirm the alert.
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("output_give_up = \"20s\"", "output_give_up = \"never\"");
    std::fs::write(&pipeline, text).unwrap();
    let _wf = run_pipeline(&pipeline, LOG);
    wait_until("the centre to answer", Duration::from_secs(30), || {
        health(http).0 == 200 && support::log_of(&pipeline, LOG).contains("mqtt source subscribed")
    });

    // The alerts' broker goes away while a fire is published, and comes back with no
    // memory of the centre's session (its saved state deleted).
    alerts_broker.stop();
    publish(telemetry.port, 1, 1, 0);
    wait_until(
        "the fire in the file output",
        Duration::from_secs(20),
        || !alert_ids(&dir).is_empty(),
    );
    for entry in std::fs::read_dir(&alerts_dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "db") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    alerts_broker.restart();
    // Published again and acknowledged: the output is healthy again, not stuck until it
    // gives up.
    wait_until("the output to recover", Duration::from_secs(30), || {
        support::log_of(&pipeline, LOG).contains("publishing again what the destination lost")
            && health(http).0 == 200
    });
}
