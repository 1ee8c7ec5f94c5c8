//! What leaves the centre for Kafka and `https://`, end to end: `watchfloor run` (a real
//! Mosquitto, tansu 0.6.0 for Kafka, SQLite) with a playbook whose steps notify a Kafka
//! topic and an `https://` receiver, a webhook subscription to an `https://` receiver (both
//! receivers' certificates signed by a test authority the centre trusts through
//! `[server.webhooks] ca_file`), and two CAP outputs: to a Kafka topic, and to a file with
//! drills.
//!
//! Checked: a real fire's run puts its message on the Kafka topic (keyed by the message's
//! deterministic id) and POSTs it to the https receiver (`webhook-id` the same id); a
//! drill's run puts its message on `<topic>.exercise` only and never calls the webhook; the
//! subscription's deliveries arrive over TLS with signatures the independent
//! `standardwebhooks` package verifies; a receiver whose certificate no trusted authority
//! signed gets nothing (its test delivery fails with a certificate error); the CAP outputs
//! write the very messages `/cap/alerts/{identifier}.xml` serves, valid against the OASIS
//! CAP 1.2 schema (Python `xmlschema`), the drill's (status `Exercise`, its end an Update
//! referencing its start) only to the file output's exercise twin.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until};

const SECRET: &str = "whsec_d2F0Y2hmbG9vci10ZXN0LXNlY3JldC1vbmUtMDAwMQ==";

const DRILL: &str = r#"drill:
  id: reach_drill
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

fn playbook(hook_port: u16) -> String {
    format!(
        r#"playbook:
  id: reach
  name: {{ vi: "Báo tin", en: "Reach" }}
  trigger: {{ rules: [camera_fire_smoke] }}
  steps:
    - id: to_kafka
      kind: notify
      to: {{ kafka: "ioc-notify" }}
      message: {{ vi: "Cháy: {{severity}}", en: "Fire: {{severity}}" }}
      next: [to_hook]
    - id: to_hook
      kind: notify
      to: {{ webhook: "https://127.0.0.1:{hook_port}/playbook" }}
      message: {{ vi: "Cháy: {{severity}}", en: "Fire: {{severity}}" }}
"#
    )
}

fn post(http: u16, path: &str, token: &str, body: Value) -> (u16, Value) {
    let a = call(http, "POST", path, Some(token), Some(&body))
        .unwrap_or_else(|| panic!("POST {path}: no answer"));
    (a.status, a.body)
}

#[test]
fn kafka_and_https_notifications_and_deliveries_reach_only_trusted_receivers() {
    let dir = scratch("playbook-reach", "kafka-https");
    let trusted = support::tls::authority(&dir, "city");
    let stranger = support::tls::authority(&dir, "stranger");
    let (_tansu, brokers) = support::tansu::start(
        &dir,
        &["alerts", "ioc-notify", "ioc-notify.exercise", "cap"],
    );
    let broker = Mosquitto::start(&dir);
    let (http, hook_port, stranger_port) = (free_port(), free_port(), free_port());
    let _hooks = support::receiver::start(
        &dir,
        hook_port,
        "hooks.ndjson",
        "200",
        &[SECRET],
        Some(&trusted),
    );
    let _stranger = support::receiver::start(
        &dir,
        stranger_port,
        "stranger.ndjson",
        "200",
        &[SECRET],
        Some(&stranger),
    );
    std::fs::write(
        dir.join("accounts.toml"),
        format!(
            "[[account]]\nname = \"admin\"\nrole = \"admin\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n\
             [[account]]\nname = \"leader\"\nrole = \"drill_leader\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n",
            watchfloor_server::token_hash_hex("token-admin"),
            watchfloor_server::token_hash_hex("token-leader"),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/fire.yaml"), DRILL).unwrap();
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    std::fs::write(dir.join("playbooks/reach.yaml"), playbook(hook_port)).unwrap();
    let pipeline = support::centre::write_pipeline(
        &dir,
        broker.port,
        http,
        "sqlite:incidents.db",
        &format!(
            "\n[[output]]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"alerts\"\n\
             \n[[output]]\ntype = \"cap\"\nname = \"province\"\nto = {{ type = \"kafka\", brokers = \"{brokers}\", topic = \"cap\" }}\n\
             \n[[output]]\ntype = \"cap\"\nname = \"archive\"\nexercises = true\nto = {{ type = \"file\", path = \"cap.xml\" }}\n\
             \n[server.webhooks]\nbackoff = \"200ms\"\nbackoff_max = \"1s\"\ntimeout = \"5s\"\nallow = [\"127.0.0.1\"]\nca_file = \"{}\"\n",
            trusted.ca.display()
        ),
    );
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "accounts = \"accounts.toml\"",
        "accounts = \"accounts.toml\"\nplaybooks = \"playbooks\"\ndrills = \"drills\"",
    );
    std::fs::write(&pipeline, text).unwrap();
    let _centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });

    // A subscription over TLS, and one to a receiver no trusted authority vouches for.
    let (status, sub) = post(
        http,
        "/api/webhooks",
        "token-admin",
        json!({"url": format!("https://127.0.0.1:{hook_port}/subscription"), "secrets": [SECRET]}),
    );
    assert_eq!(status, 201, "{sub}");
    let (status, odd) = post(
        http,
        "/api/webhooks",
        "token-admin",
        json!({"url": format!("https://127.0.0.1:{stranger_port}/x"), "secrets": [SECRET]}),
    );
    assert_eq!(status, 201, "{odd}");
    let odd_id = odd["id"].as_str().unwrap();
    let (status, test) = post(
        http,
        &format!("/api/webhooks/{odd_id}/test"),
        "token-admin",
        json!({}),
    );
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["delivered"], false, "{test}");
    assert!(
        test["error"].as_str().unwrap().contains("certificate"),
        "a certificate error: {test}"
    );

    // A real fire, then a drill's.
    let mut options = rumqttc::MqttOptions::new("station", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (station, mut connection) = rumqttc::Client::new(options, 10);
    std::thread::spawn(move || for _ in connection.iter() {});
    let (topic, payload) = support::centre::camera_detection("CT-CAM-05", 0.95);
    station
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .unwrap();
    let (status, started) = post(
        http,
        "/api/drills",
        "token-leader",
        json!({"drill": "reach_drill"}),
    );
    assert_eq!(status, 201, "{started}");
    let exercise = started["id"].as_str().unwrap().to_string();

    // Both runs: the real fire's and the drill's.
    let mut runs = Vec::new();
    wait_until("both runs", Duration::from_secs(60), || {
        runs = get(http, "/api/runs", "token-admin").body["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        runs.len() == 2
    });
    let real_run = runs
        .iter()
        .find(|r| r["subject"]["key"] == "CT-CAM-05")
        .expect("the real fire's run");
    let real_run_id = real_run["id"].as_str().unwrap();

    // Kafka: the real message on the topic, the drill's on its exercise twin only.
    let (mut real, mut twin) = (Vec::new(), Vec::new());
    wait_until("the Kafka messages", Duration::from_secs(90), || {
        real = support::tansu::read_topic(&brokers, "ioc-notify");
        twin = support::tansu::read_topic(&brokers, "ioc-notify.exercise");
        !real.is_empty() && !twin.is_empty()
    });
    assert_eq!(real.len(), 1, "one message, the real run's: {real:?}");
    assert_eq!(real[0]["run"], real_run_id);
    assert_eq!(real[0]["step"], "to_kafka");
    assert_eq!(real[0]["alert"]["key"], "CT-CAM-05", "{:?}", real[0]);
    assert!(real[0]["mode"].is_null());
    assert_eq!(twin.len(), 1, "{twin:?}");
    assert_eq!(twin[0]["mode"], "exercise");
    assert_eq!(twin[0]["exercise"], exercise.as_str());

    // The https receiver: the real run's message under its id, the subscription's
    // deliveries verified; nothing of the drill. The stranger: nothing.
    let mut hooks = Vec::new();
    wait_until(
        "the subscription's delivery",
        Duration::from_secs(30),
        || {
            hooks = support::receiver::records(&dir, "hooks.ndjson");
            hooks.iter().any(|r| r["path"] == "/subscription")
                && hooks.iter().any(|r| r["path"] == "/playbook")
        },
    );
    let from_playbook: Vec<&Value> = hooks.iter().filter(|r| r["path"] == "/playbook").collect();
    assert_eq!(from_playbook.len(), 1, "{hooks:?}");
    assert_eq!(from_playbook[0]["id"], from_playbook[0]["body"]["id"]);
    assert_eq!(from_playbook[0]["body"]["step"], "to_hook");
    assert_eq!(from_playbook[0]["body"]["run"], real_run_id);
    let delivered: Vec<&Value> = hooks
        .iter()
        .filter(|r| r["path"] == "/subscription")
        .collect();
    assert!(
        delivered.iter().all(|r| r["verified"] == true),
        "signatures verified by standardwebhooks: {delivered:?}"
    );
    assert!(delivered.iter().any(|r| r["body"]["data"]["alert_id"]
        .as_str()
        .is_some_and(|a| a.contains("CT-CAM-05"))
        || r["body"].to_string().contains("CT-CAM-05")));
    assert!(
        !hooks.iter().any(|r| r["body"]["mode"] == "exercise"),
        "no drill message reaches a webhook: {hooks:?}"
    );
    assert!(support::receiver::records(&dir, "stranger.ndjson").is_empty());

    // CAP: the real fire's message on Kafka and in the file, the drill's (after its end)
    // in the file's exercise twin only; each the message `/cap/alerts/…` serves.
    let mut on_kafka = Vec::new();
    wait_until("CAP on Kafka", Duration::from_secs(60), || {
        on_kafka = support::tansu::read_topic_raw(&brokers, "cap");
        !on_kafka.is_empty()
    });
    let (status, ended) = post(
        http,
        &format!("/api/drills/{exercise}/end"),
        "token-leader",
        json!({}),
    );
    // (It may have finished by itself: every expectation met; its alerts closed then.)
    assert!(
        status == 200
            || ended["error"]
                .as_str()
                .is_some_and(|e| e.contains("finished")),
        "{status} {ended}"
    );
    let lines = |file: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    wait_until("the drill's CAP messages", Duration::from_secs(60), || {
        lines("cap.exercise.xml").len() >= 2 && !lines("cap.xml").is_empty()
    });
    // Read again once the drill's messages are written: none of them reached Kafka.
    let on_kafka: Vec<String> = support::tansu::read_topic_raw(&brokers, "cap")
        .iter()
        .map(|p| String::from_utf8(p.clone()).unwrap())
        .collect();
    let (in_file, drill) = (lines("cap.xml"), lines("cap.exercise.xml"));
    let parse = |xml: &str| -> oasiscap::v1dot2::Alert {
        xml.parse::<oasiscap::Alert>()
            .unwrap_or_else(|e| panic!("{e}: {xml}"))
            .into_latest()
    };
    let mut files = Vec::new();
    for (n, xml) in on_kafka.iter().chain(&in_file).chain(&drill).enumerate() {
        let cap = parse(xml);
        let served = get(
            http,
            &format!("/cap/alerts/{}.xml", cap.identifier.as_str()),
            "token-admin",
        );
        assert_eq!(served.status, 200, "{}", cap.identifier.as_str());
        assert_eq!(
            served.body.as_str().unwrap(),
            xml,
            "the output writes what the feed serves, byte for byte"
        );
        let file = dir.join(format!("cap-{n}.xml"));
        std::fs::write(&file, xml).unwrap();
        files.push(file);
    }
    assert!(!on_kafka.is_empty() && !in_file.is_empty());
    for xml in on_kafka.iter().chain(&in_file) {
        let cap = parse(xml);
        assert_eq!(format!("{:?}", cap.status), "Actual");
        assert!(xml.contains("CT-CAM-05"), "{xml}");
    }
    assert_eq!(drill.len(), 2, "fired and ended: {drill:?}");
    let (first, end) = (parse(&drill[0]), parse(&drill[1]));
    assert_eq!(format!("{:?}", first.status), "Exercise");
    assert!(first.note.as_deref().unwrap().contains(&exercise));
    assert_eq!(format!("{:?}", end.message_type), "Update");
    let refs: Vec<String> = end
        .references
        .iter()
        .flat_map(|r| r.iter().map(|r| r.identifier.to_string()))
        .collect();
    assert_eq!(refs, vec![first.identifier.to_string()]);
    assert!(drill[1].contains("AllClear"));
    let feed = dir.join("feed.atom");
    std::fs::write(
        &feed,
        get(http, "/cap/feed.atom", "token-admin")
            .body
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/cap/validate.py"))
        .arg(root.join("tests/cap/schema"))
        .arg(&feed)
        .args(&files)
        .output()
        .expect("python3 with xmlschema (scripts/test installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "CAP 1.2 schema: {report}");
}
