//! A drill beside real telemetry with a Kafka alert output that takes exercises (tansu
//! 0.6.0, real Mosquitto, `watchfloor run` with its server): the real topic `alerts` holds
//! the real alert and no exercise record; the exercise topic `alerts.exercise` holds every
//! transition of the drill (its firing and its resolution at the end), each carrying the
//! exercise id and `mode: exercise`.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;

use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until};

const DRILL: &str = r#"drill:
  id: kafka_fire
  name: { vi: "Diễn tập cháy", en: "Fire drill" }
  objectives:
    - { id: detect, title: { vi: "Phát hiện", en: "Detect" }, outcomes: [seen] }
  participants:
    - { role: operator, zones: [long_hoa] }
  injects:
    - { id: smoke, at: 0s, kind: camera, station: CT-CAM-02, event: fire_smoke, confidence: 0.9 }
  expect:
    - { id: seen, kind: alert, rule: camera_fire_smoke, key: CT-CAM-02, after: smoke, within: 10s }
"#;

#[test]
fn a_kafka_output_keeps_exercise_records_on_the_exercise_topic_only() {
    let dir = scratch("drill-kafka", "outputs");
    let (_tansu, brokers) = support::tansu::start(&dir, &["alerts", "alerts.exercise"]);
    let broker = Mosquitto::start(&dir);
    let http = free_port();
    std::fs::write(
        dir.join("accounts.toml"),
        format!(
            "[[account]]\nname = \"leader\"\nrole = \"drill_leader\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n[[account]]\nname = \"op\"\nrole = \"operator\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n",
            watchfloor_server::token_hash_hex("token-leader"),
            watchfloor_server::token_hash_hex("token-op"),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/fire.yaml"), DRILL).unwrap();
    let pipeline = support::centre::write_pipeline(
        &dir,
        broker.port,
        http,
        "sqlite:incidents.db",
        &format!("\n[[output]]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"alerts\"\nexercises = true\n"),
    );
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "accounts = \"accounts.toml\"",
        "accounts = \"accounts.toml\"\ndrills = \"drills\"",
    );
    std::fs::write(&pipeline, text).unwrap();
    let _centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });

    // Real telemetry: a real fire.
    let mut options = rumqttc::MqttOptions::new("station", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (station, mut connection) = rumqttc::Client::new(options, 10);
    std::thread::spawn(move || for _ in connection.iter() {});
    let (topic, payload) = support::centre::camera_detection("CT-CAM-05", 0.95);
    station
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .unwrap();

    let started = call(
        http,
        "POST",
        "/api/drills",
        Some("token-leader"),
        Some(&json!({"drill": "kafka_fire"})),
    )
    .unwrap();
    assert_eq!(started.status, 201, "{}", started.body);
    let exercise = started.body["id"].as_str().unwrap().to_string();
    wait_until("the exercise alert", Duration::from_secs(30), || {
        get(http, "/api/alerts", "token-op")
            .body
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .any(|x| x["labels"]["exercise"] == exercise.as_str())
            })
    });
    let ended = call(
        http,
        "POST",
        &format!("/api/drills/{exercise}/end"),
        Some("token-leader"),
        Some(&json!({})),
    )
    .unwrap();
    assert_eq!(ended.status, 200, "{}", ended.body);

    let mut twin = Vec::new();
    wait_until(
        "both exercise transitions on Kafka",
        Duration::from_secs(60),
        || {
            twin = support::tansu::read_topic(&brokers, "alerts.exercise");
            twin.len() >= 2
        },
    );
    assert_eq!(twin.len(), 2, "firing and resolution: {twin:?}");
    assert!(twin
        .iter()
        .all(|t| t["labels"]["exercise"] == exercise.as_str()
            && t["labels"]["mode"] == "exercise"
            && t["key"] == "CT-CAM-02"));
    let real = support::tansu::read_topic(&brokers, "alerts");
    assert!(
        real.iter().any(|t| t["key"] == "CT-CAM-05"),
        "the real alert on the real topic: {real:?}"
    );
    assert!(
        real.iter().all(|t| t["labels"].get("exercise").is_none()),
        "an exercise record on the real topic: {real:?}"
    );
}
