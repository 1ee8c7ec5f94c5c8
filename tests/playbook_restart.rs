//! Playbook timers survive the process: `watchfloor run` (a real Mosquitto, SQLite store)
//! with a playbook that, on a camera fire, sends a message, then starts a timed wait and a
//! task with a due time side by side (20 s and 10 s here, standing for the 10 minutes and
//! 5 minutes of an operations centre: the property is the same, the test is shorter). The
//! process is SIGKILLed a few seconds after the run started and started again. Checked on
//! the wall clock: the task breaches, and the wait ends, within 1 s of their stored due
//! times; each happens once; the breach raises the alert to critical through the engine
//! and the message sent when the wait ends says so (rendered at send time); every message
//! carries its deterministic id, and no id other than the expected ones is ever sent.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, now_ms, run_pipeline, scratch, wait_until};

const LOG: &str = "watchfloor.log";
const OPERATOR: &str = "token-operator";

const PLAYBOOK: &str = r#"playbook:
  id: timers
  name: { vi: "Hẹn giờ", en: "Timers" }
  trigger: { rules: [camera_fire_smoke] }
  when_resolved: { finish: false }
  steps:
    - id: begin
      kind: notify
      to: { mqtt: "ioc/notify/{zone}/timers" }
      message: { vi: "Bắt đầu: {severity}", en: "Start: {severity}" }
      next: [hold, check]
    - id: hold
      kind: wait
      for: 20s
      next: [after]
    - id: after
      kind: notify
      to: { mqtt: "ioc/notify/{zone}/timers" }
      message: { vi: "Sau khi chờ: {severity}", en: "After the wait: {severity}" }
    - id: check
      kind: task
      title: { vi: "Kiểm tra", en: "Check" }
      assignee: { role: operator, scope: city }
      due: 10s
      on_breach: { raise_severity: critical }
"#;

/// Messages received on `ioc/notify/#`: (arrival, JSON).
fn listen(mqtt: u16) -> Arc<Mutex<Vec<(i64, Value)>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let mut options = rumqttc::MqttOptions::new("notify-listener", "127.0.0.1", mqtt);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(options, 100);
    client
        .subscribe("ioc/notify/#", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = event {
                let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                sink.lock().unwrap().push((now_ms(), v));
            }
        }
    });
    got
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[test]
fn timers_fire_on_time_after_a_sigkill_and_nothing_fires_twice() {
    let dir = scratch("playbook-restart", "sigkill");
    let broker = Mosquitto::start(&dir);
    let http = free_port();
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    std::fs::write(dir.join("playbooks/timers.yaml"), PLAYBOOK).unwrap();
    support::centre::write_accounts(&dir, "duty-operator", OPERATOR);
    let extra = format!(
        "\n[[output]]\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"centre-alerts\"\ntopic = \"ioc/alerts/{{severity}}/{{rule}}\"\n",
        broker.port
    );
    let pipeline =
        support::centre::write_pipeline(&dir, broker.port, http, "sqlite:incidents.db", &extra);
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "accounts = \"accounts.toml\"",
        "accounts = \"accounts.toml\"\nplaybooks = \"playbooks\"",
    );
    std::fs::write(&pipeline, text).unwrap();
    let messages = listen(broker.port);

    let mut centre = run_pipeline(&pipeline, LOG);
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });
    let mut options = rumqttc::MqttOptions::new("camera", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (camera, mut connection) = rumqttc::Client::new(options, 10);
    std::thread::spawn(move || for _ in connection.iter() {});
    let (topic, payload) = support::centre::camera_detection("CT-CAM-01", 0.95);
    camera
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .unwrap();

    let mut run = Value::Null;
    wait_until("the run to start", Duration::from_secs(30), || {
        let runs = get(http, "/api/runs", OPERATOR).body;
        run = runs["runs"].get(0).cloned().unwrap_or(Value::Null);
        !run.is_null()
    });
    let id = run["id"].as_str().unwrap().to_string();
    let hold_due = step(&run, "hold")["due_at"].as_i64().unwrap();
    let check_due = step(&run, "check")["due_at"].as_i64().unwrap();
    assert_eq!(hold_due - check_due, 10_000, "{run}");
    wait_until("the first message", Duration::from_secs(10), || {
        !messages.lock().unwrap().is_empty()
    });

    // Killed mid-shift, 3 s after the run started; started again at once.
    let kill_at = check_due - 10_000 + 3_000;
    std::thread::sleep(Duration::from_millis((kill_at - now_ms()).max(0) as u64));
    assert!(
        now_ms() < check_due - 5_000,
        "the kill must come well before the due times"
    );
    drop(centre);
    centre = run_pipeline(&pipeline, LOG);
    wait_until(
        "the centre to answer again",
        Duration::from_secs(60),
        || call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200),
    );

    // Watched every 100 ms on the wall clock.
    let (mut breached_seen, mut hold_seen) = (None, None);
    wait_until("both timers", Duration::from_secs(40), || {
        let Some(a) = call(
            http,
            "GET",
            &format!("/api/runs/{id}"),
            Some(OPERATOR),
            None,
        ) else {
            return false;
        };
        if a.status != 200 {
            return false;
        }
        let now = now_ms();
        if breached_seen.is_none() && !step(&a.body, "check")["breached_at"].is_null() {
            breached_seen = Some(now);
        }
        if hold_seen.is_none() && step(&a.body, "hold")["status"] == "done" {
            hold_seen = Some(now);
        }
        std::thread::sleep(Duration::from_millis(100));
        breached_seen.is_some() && hold_seen.is_some()
    });
    let (breached, hold) = (breached_seen.unwrap(), hold_seen.unwrap());
    eprintln!("after the restart: the task breached {} ms, the wait ended {} ms from their due times (seen by polling every 100 ms)", breached - check_due, hold - hold_due);
    assert!(
        (breached - check_due).abs() <= 1_000,
        "the task breached {} ms from its due time",
        breached - check_due
    );
    assert!(
        (hold - hold_due).abs() <= 1_000,
        "the wait ended {} ms from its due time",
        hold - hold_due
    );

    // Settle, then: each timer once on the timeline; the alert raised to critical.
    std::thread::sleep(Duration::from_secs(3));
    let run = get(http, &format!("/api/runs/{id}"), OPERATOR).body;
    let count = |step: &str, event: &str| {
        run["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["step"] == step && e["event"] == event)
            .count()
    };
    assert_eq!(count("check", "breached"), 1, "{run}");
    assert_eq!(count("hold", "completed"), 1, "{run}");
    assert_eq!(count("after", "notified"), 1, "{run}");
    assert_eq!(count("check", "escalated"), 1, "{run}");
    let alert = get(
        http,
        &format!("/api/alerts/{}", run["alert_id"].as_str().unwrap()),
        OPERATOR,
    )
    .body;
    assert_eq!(alert["severity"], "critical", "{alert}");

    // The messages: only the two expected ids (a message sent right before the kill may
    // come twice, with its id); the one after the wait once, saying critical.
    let got = messages.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<String> = got
        .iter()
        .map(|(_, v)| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [format!("{id}/after/1"), format!("{id}/begin/1")]
            .into_iter()
            .collect(),
        "{got:?}"
    );
    let after: Vec<&Value> = got
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["step"] == "after")
        .collect();
    assert_eq!(after.len(), 1, "{got:?}");
    assert_eq!(after[0]["text"]["en"], "After the wait: critical");
    let begin = got.iter().find(|(_, v)| v["step"] == "begin").unwrap();
    assert_eq!(begin.1["text"]["en"], "Start: major");
    let log = support::log_of(&pipeline, LOG);
    assert!(
        log.contains("runs restored from the store playbooks=1 runs=1"),
        "{log}"
    );
    drop(centre);
}
