//! Drills on a running centre (`watchfloor run`, real Mosquitto, SQLite, the shipped rules
//! and playbooks), driven as a drill leader and as the operators playing it:
//! - who may start and steer drills (admins and drill leaders; refusals audited);
//! - scoring: four operator outcomes — an acknowledgement in time, one late, a playbook
//!   step completed, an acknowledgement never given — rated as they happened, times from
//!   the injects' event times;
//! - isolation: real telemetry alerts as usual during the drill; the real file and MQTT
//!   outputs carry no exercise record, their exercise twins carry every one; the real KPIs
//!   do not move; the store keeps the exercise's alerts with its id; the changes feed has
//!   them only for a reader that opts in;
//! - pause and resume keep the spacing of the remaining injects; abort stops injecting and
//!   closes the drill's alerts and runs;
//! - a SIGKILL mid-drill (a drill started with `watchfloor drill start`): the restarted
//!   centre resumes the drill where it was.

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, now_ms, run_pipeline, scratch, wait_until};

const ACCOUNTS: [(&str, &str); 5] = [
    ("admin", "admin"),
    ("leader", "drill_leader"),
    ("op", "operator"),
    ("viewer", "viewer"),
    ("feed", "integrator"),
];

fn token(name: &str) -> String {
    format!("token-{name}")
}

fn post(http: u16, path: &str, who: &str, body: Value) -> (u16, Value) {
    let a = call(http, "POST", path, Some(&token(who)), Some(&body))
        .unwrap_or_else(|| panic!("POST {path}: no answer"));
    (a.status, a.body)
}

/// A camera detection inject line of a script.
fn camera(id: &str, at: &str, station: &str) -> String {
    format!("    - {{ id: {id}, at: {at}, kind: camera, station: {station}, event: fire_smoke, confidence: 0.93 }}\n")
}

fn script(id: &str, injects: &[String], expect: &str) -> String {
    format!(
        "drill:\n  id: {id}\n  name: {{ vi: \"Diễn tập {id}\", en: \"Drill {id}\" }}\n  objectives:\n    - id: all\n      title: {{ vi: \"Tất cả\", en: \"All\" }}\n      outcomes: [{first}]\n  participants:\n    - {{ role: operator, zones: [long_hoa] }}\n  injects:\n{injects}  expect:\n{expect}",
        first = expect
            .lines()
            .next()
            .and_then(|l| l.split("id: ").nth(1))
            .and_then(|l| l.split(',').next())
            .unwrap_or("x"),
        injects = injects.concat(),
    )
}

/// The scoring drill: three cameras see smoke; four outcomes are the operators'.
const SCORING: &str = r#"drill:
  id: scoring
  name: { vi: "Diễn tập chấm điểm", en: "Scoring drill" }
  objectives:
    - id: detect
      title: { vi: "Phát hiện", en: "Detect" }
      outcomes: [smoke_a, smoke_b, smoke_c]
    - id: respond
      title: { vi: "Ứng phó", en: "Respond" }
      outcomes: [ack_a, ack_b, dispatched_a, ack_c]
  participants:
    - { role: operator, zones: [long_hoa] }
  injects:
    - { id: cam_a, at: 0s, kind: camera, station: CT-CAM-01, event: fire_smoke, confidence: 0.93 }
    - { id: cam_b, at: 2s, kind: camera, station: CT-CAM-02, event: fire_smoke, confidence: 0.9 }
    - { id: cam_c, at: 2s, kind: camera, station: CT-CAM-03, event: fire_smoke, confidence: 0.9 }
    - { id: brief, at: 1s, kind: message, text: { vi: "Có khói ở Long Hòa", en: "Smoke in Long Hòa" } }
  expect:
    - { id: smoke_a, kind: alert, rule: camera_fire_smoke, key: CT-CAM-01, after: cam_a, within: 10s }
    - { id: smoke_b, kind: alert, rule: camera_fire_smoke, key: CT-CAM-02, after: cam_b, within: 10s }
    - { id: smoke_c, kind: alert, rule: camera_fire_smoke, key: CT-CAM-03, after: cam_c, within: 10s }
    - { id: ack_a, kind: ack, of: smoke_a, within: 60s }
    - { id: ack_b, kind: ack, of: smoke_b, within: 1s }
    - { id: dispatched_a, kind: step, playbook: fire_confirmed, step: dispatch, of: smoke_a, within: 60s }
    - { id: ack_c, kind: ack, of: smoke_c, within: 5s }
"#;

/// The exercise alerts the operator sees, by key.
fn exercise_alerts(http: u16, exercise: &str) -> Vec<Value> {
    get(http, "/api/alerts", &token("op"))
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["exercise"] == exercise)
        .collect()
}

fn alert_of(http: u16, exercise: &str, key: &str) -> Option<Value> {
    exercise_alerts(http, exercise)
        .into_iter()
        .find(|a| a["key"] == key)
}

fn wait_alert(http: u16, exercise: &str, key: &str) -> Value {
    wait_until(
        &format!("the exercise alert of {key}"),
        Duration::from_secs(30),
        || alert_of(http, exercise, key).is_some(),
    );
    alert_of(http, exercise, key).unwrap()
}

fn outcome<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("outcome {id} in {report}"))
}

/// A KPI row: zone, view, and each indicator's id and value.
type KpiRow = (String, String, Vec<(String, String)>);

/// Every KPI row's indicator values, by zone and view (what a screen shows).
fn kpis(http: u16) -> Vec<KpiRow> {
    let rows = get(http, "/api/kpis", &token("admin")).body;
    let mut out: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let values = r["indicators"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["id"].to_string(), i["value"].to_string()))
                .collect();
            (r["zone"].to_string(), r["view"].to_string(), values)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn drills_run_isolated_scored_steered_and_resumed_after_a_crash() {
    let dir = scratch("drill-live", "all");
    let broker = Mosquitto::start(&dir);
    let http = free_port();
    let mut accounts = String::new();
    for (name, role) in ACCOUNTS {
        accounts.push_str(&format!(
            "[[account]]\nname = \"{name}\"\nrole = \"{role}\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n",
            watchfloor_server::token_hash_hex(&token(name)),
        ));
    }
    std::fs::write(dir.join("accounts.toml"), accounts).unwrap();
    let drills = dir.join("drills");
    std::fs::create_dir_all(&drills).unwrap();
    std::fs::write(drills.join("scoring.yaml"), SCORING).unwrap();
    std::fs::write(
        drills.join("paced.yaml"),
        script(
            "paced",
            &[
                camera("first", "0s", "CT-CAM-06"),
                camera("second", "3s", "CT-CAM-07"),
                camera("third", "8s", "CT-CAM-08"),
            ],
            "    - { id: seen_first, kind: alert, rule: camera_fire_smoke, key: CT-CAM-06, after: first, within: 10s }\n    - { id: seen_second, kind: alert, rule: camera_fire_smoke, key: CT-CAM-07, after: second, within: 10s }\n",
        ),
    )
    .unwrap();
    std::fs::write(
        drills.join("long.yaml"),
        script(
            "long",
            &[
                camera("early", "0s", "CT-CAM-09"),
                camera("late", "5s", "CT-CAM-10"),
            ],
            "    - { id: seen_early, kind: alert, rule: camera_fire_smoke, key: CT-CAM-09, after: early, within: 10s }\n    - { id: seen_late, kind: alert, rule: camera_fire_smoke, key: CT-CAM-10, after: late, within: 10s }\n",
        ),
    )
    .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../");
    let pipeline = support::centre::write_pipeline(
        &dir,
        broker.port,
        http,
        "sqlite:incidents.db",
        &format!(
            "\n[[output]]\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"centre-alerts\"\ntopic = \"ioc/alerts/{{severity}}/{{rule}}\"\nexercises = true\n",
            broker.port
        ),
    );
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace(
            "path = \"alerts.ndjson\"",
            "path = \"alerts.ndjson\"\nexercises = true",
        )
        .replace(
            "accounts = \"accounts.toml\"",
            &format!(
                "accounts = \"accounts.toml\"\nplaybooks = {:?}\ndrills = \"drills\"",
                root.join("playbooks").display().to_string()
            ),
        );
    std::fs::write(&pipeline, text).unwrap();
    let mut centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });

    // Everything on the broker's alert topics, real and exercise.
    let heard: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut options = rumqttc::MqttOptions::new("listener", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (listener, mut connection) = rumqttc::Client::new(options, 100);
    listener
        .subscribe("ioc/alerts/#", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    listener
        .subscribe("exercise/#", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    {
        let heard = heard.clone();
        std::thread::spawn(move || {
            for event in connection.iter().flatten() {
                if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    heard.lock().unwrap().push((p.topic.clone(), body));
                }
            }
        });
    }
    let mut options = rumqttc::MqttOptions::new("station", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (station, mut connection) = rumqttc::Client::new(options, 10);
    std::thread::spawn(move || for _ in connection.iter() {});

    // Real telemetry: a real fire in Bùi Hữu Nghĩa before and during the drill.
    let (topic, payload) = support::centre::camera_detection("CT-CAM-05", 0.95);
    station
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .unwrap();
    wait_until("the real alert", Duration::from_secs(30), || {
        get(http, "/api/alerts", &token("op"))
            .body
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["key"] == "CT-CAM-05"))
    });
    std::thread::sleep(Duration::from_millis(1500)); // one KPI refresh
    let kpis_before = kpis(http);

    // Who may start and steer drills.
    let scripts = get(http, "/api/drills/scripts", &token("leader")).body;
    assert_eq!(scripts["scripts"].as_array().unwrap().len(), 3, "{scripts}");
    for who in ["op", "viewer", "feed"] {
        let (status, body) = post(http, "/api/drills", who, json!({"drill": "scoring"}));
        assert_eq!(status, 403, "{who} started a drill: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(get(http, "/api/drills", &token("feed")).status, 403);
    assert_eq!(get(http, "/api/drills", &token("op")).status, 200);

    // Scoring: the leader starts it; the test plays the operators.
    let (status, started) = post(http, "/api/drills", "leader", json!({"drill": "scoring"}));
    assert_eq!(status, 201, "{started}");
    let exercise = started["id"].as_str().unwrap().to_string();
    assert!(exercise.starts_with("scoring-"), "{exercise}");
    assert_eq!(
        post(
            http,
            &format!("/api/drills/{exercise}/pause"),
            "op",
            json!({})
        )
        .0,
        403
    );
    let a = wait_alert(http, &exercise, "CT-CAM-01");
    assert_eq!(a["labels"]["mode"], "exercise");
    assert!(a["alert_id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{exercise}~")));
    let a_id = a["alert_id"].as_str().unwrap().to_string();
    let ack_a_from = now_ms();
    let (status, body) = post(
        http,
        &format!("/api/alerts/{a_id}/ack"),
        "op",
        json!({"note": "đã thấy"}),
    );
    assert_eq!(status, 200, "{body}");
    let ack_a_to = now_ms();
    // The run of alert a: complete its dispatch step.
    wait_until("the exercise run", Duration::from_secs(20), || {
        get(http, &format!("/api/runs?alert={a_id}"), &token("op")).body["runs"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let run = get(http, &format!("/api/runs?alert={a_id}"), &token("op")).body["runs"][0].clone();
    assert_eq!(run["subject"]["exercise"], exercise.as_str());
    let (status, body) = post(
        http,
        &format!("/api/runs/{}/steps/dispatch", run["id"].as_str().unwrap()),
        "op",
        json!({"action": "complete", "value": "PCCC-07", "note": "diễn tập"}),
    );
    assert_eq!(status, 200, "{body}");
    // Alert b acknowledged late (more than its second), c never.
    let b = wait_alert(http, &exercise, "CT-CAM-02");
    wait_alert(http, &exercise, "CT-CAM-03");
    std::thread::sleep(Duration::from_millis(2500));
    let b_id = b["alert_id"].as_str().unwrap();
    assert_eq!(
        post(http, &format!("/api/alerts/{b_id}/ack"), "op", json!({})).0,
        200
    );
    // The real KPIs did not move with three exercise alerts open.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(kpis(http), kpis_before, "real KPIs moved during the drill");
    let view = get(http, &format!("/api/drills/{exercise}"), &token("op")).body;
    assert_eq!(
        view["messages"][0]["text"]["en"], "Smoke in Long Hòa",
        "{view}"
    );
    let (status, ended) = post(
        http,
        &format!("/api/drills/{exercise}/end"),
        "leader",
        json!({}),
    );
    assert_eq!(
        (status, ended["status"].as_str()),
        (200, Some("finished")),
        "{ended}"
    );
    let report = get(
        http,
        &format!("/api/drills/{exercise}/report"),
        &token("leader"),
    )
    .body;
    for (id, from) in [("smoke_a", 0), ("smoke_b", 2000), ("smoke_c", 2000)] {
        let o = outcome(&report, id);
        assert_eq!(
            (
                o["verdict"].as_str(),
                o["from"].as_i64(),
                o["took_ms"].as_i64()
            ),
            (Some("met"), Some(from), Some(0)),
            "{id}: the alert at the inject's event time: {o}"
        );
    }
    let ack_a = outcome(&report, "ack_a");
    assert_eq!(ack_a["verdict"], "met", "{ack_a}");
    let took = ack_a["took_ms"].as_i64().unwrap();
    let fired_wall = a["fired_at"].as_i64().unwrap();
    assert!(
        (ack_a_from - fired_wall - 1000..=ack_a_to - fired_wall + 1000).contains(&took),
        "ack_a took {took} ms; acknowledged {}..{} ms after the firing",
        ack_a_from - fired_wall,
        ack_a_to - fired_wall
    );
    assert_eq!(outcome(&report, "ack_b")["verdict"], "late");
    assert!(outcome(&report, "ack_b")["took_ms"].as_i64().unwrap() >= 2500);
    assert_eq!(outcome(&report, "dispatched_a")["verdict"], "met");
    assert_eq!(outcome(&report, "ack_c")["verdict"], "missed");
    let ratings: Vec<(&str, &str)> = report["findings"]["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o["rating"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ratings,
        [("detect", "performed"), ("respond", "major_challenges")],
        "respond: (1 + ½ + 1 + 0) / 4"
    );
    assert_eq!(report["findings"]["missed"], json!(["ack_c"]));
    assert!(
        report["timeline"].as_array().unwrap().len() >= 8,
        "{report}"
    );
    assert!(
        exercise_alerts(http, &exercise)
            .iter()
            .all(|x| x["state"] == "resolved"),
        "the end closed the drill's alerts"
    );

    // Isolation: outputs, the store.
    let real = std::fs::read_to_string(dir.join("alerts.ndjson")).unwrap();
    assert!(
        real.contains("CT-CAM-05"),
        "real alerts flow during the drill"
    );
    assert!(
        !real.contains("\"exercise\""),
        "an exercise record in the real file output"
    );
    let twin = std::fs::read_to_string(dir.join("alerts.exercise.ndjson")).unwrap();
    let twin: Vec<Value> = twin
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(twin.len(), 6, "three firings, three resolutions: {twin:?}");
    assert!(
        twin.iter()
            .all(|t| t["labels"]["exercise"] == exercise.as_str()
                && t["labels"]["mode"] == "exercise")
    );
    wait_until("the exercise topic", Duration::from_secs(10), || {
        heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.starts_with("exercise/"))
            .count()
            >= 6
    });
    {
        let heard = heard.lock().unwrap();
        for (topic, body) in heard.iter() {
            let is_exercise = body["labels"]["exercise"].is_string();
            assert_eq!(
                topic.starts_with("exercise/ioc/alerts/"),
                is_exercise,
                "{topic}: {body}"
            );
        }
        assert!(heard
            .iter()
            .any(|(t, b)| t.starts_with("ioc/alerts/") && b["key"] == "CT-CAM-05"));
    }
    // The changes feed: no exercise line for a reader that did not opt in.
    let feed = get(http, "/api/changes?limit=1000", &token("feed")).body;
    let ids: Vec<&str> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["alert"]["alert_id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().any(|id| !id.contains('~')), "real lines: {feed}");
    assert!(
        ids.iter().all(|id| !id.contains('~')),
        "an exercise line: {ids:?}"
    );
    let opted = get(
        http,
        "/api/changes?limit=1000&exercises=include",
        &token("feed"),
    )
    .body;
    assert!(opted["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["alert"]["labels"]["exercise"] == exercise.as_str()));
    let listed = get(http, "/api/drills", &token("admin")).body;
    assert!(
        listed["drills"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == exercise.as_str() && d["status"] == "finished"),
        "{listed}"
    );

    // Pause and resume keep the spacing; abort stops the rest.
    let (_, paced) = post(http, "/api/drills", "leader", json!({"drill": "paced"}));
    let paced = paced["id"].as_str().unwrap().to_string();
    wait_alert(http, &paced, "CT-CAM-06");
    let (status, body) = post(
        http,
        &format!("/api/drills/{paced}/pause"),
        "leader",
        json!({}),
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("paused")),
        "{body}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        alert_of(http, &paced, "CT-CAM-07").is_none(),
        "an inject went in while paused"
    );
    assert_eq!(
        post(
            http,
            &format!("/api/drills/{paced}/resume"),
            "admin",
            json!({})
        )
        .0,
        200
    );
    let second = wait_alert(http, &paced, "CT-CAM-07");
    let first = alert_of(http, &paced, "CT-CAM-06").unwrap();
    let gap = second["fired_at"].as_i64().unwrap() - first["fired_at"].as_i64().unwrap();
    assert!(
        gap >= 3000 + 3500,
        "the pause is added to the spacing: {gap} ms"
    );
    let live = get(
        http,
        &format!("/api/drills/{paced}/report"),
        &token("leader"),
    )
    .body;
    assert_eq!(
        outcome(&live, "seen_second")["from"].as_i64(),
        Some(3000),
        "drill time does not count the pause"
    );
    assert_eq!(outcome(&live, "seen_second")["took_ms"].as_i64(), Some(0));
    let (status, aborted) = post(
        http,
        &format!("/api/drills/{paced}/abort"),
        "leader",
        json!({}),
    );
    assert_eq!(
        (status, aborted["status"].as_str()),
        (200, Some("aborted")),
        "{aborted}"
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        alert_of(http, &paced, "CT-CAM-08").is_none(),
        "an inject after the abort"
    );
    assert!(exercise_alerts(http, &paced)
        .iter()
        .all(|x| x["state"] == "resolved"));
    let runs = get(http, "/api/runs", &token("admin")).body["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let paced_runs: Vec<&Value> = runs
        .iter()
        .filter(|r| r["subject"]["exercise"] == paced.as_str())
        .collect();
    assert!(!paced_runs.is_empty());
    assert!(
        paced_runs.iter().all(|r| r["finished_at"].is_i64()),
        "the abort ended the drill's runs: {paced_runs:?}"
    );
    assert_eq!(
        post(
            http,
            &format!("/api/drills/{paced}/resume"),
            "leader",
            json!({})
        )
        .0,
        409
    );

    // Every start, change and refusal on record.
    let audit = get(http, "/api/audit", &token("admin")).body.to_string();
    for line in [
        "drill refused",
        "drill started",
        "drill pause",
        "drill abort",
    ] {
        assert!(audit.contains(line), "audit has `{line}`");
    }

    // A crash mid-drill: the restarted centre goes on with it.
    // (started from the command line, as a leader would: the script's text, checked there)
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(support::watchfloor_binary())
            .arg("drill")
            .args(args)
            .args(["--server", &format!("http://127.0.0.1:{http}")])
            .env("WATCHFLOOR_TOKEN", token("leader"))
            .output()
            .unwrap();
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), body)
    };
    let file = drills.join("long.yaml");
    let (ok, long) = cli(&["start", file.to_str().unwrap()]);
    assert!(ok, "watchfloor drill start: {long}");
    let long = long["id"].as_str().unwrap().to_string();
    let (ok, _) = cli(&["start", "/nonexistent.yaml"]);
    assert!(!ok, "a missing script fails");
    let early = wait_alert(http, &long, "CT-CAM-09");
    drop(centre); // SIGKILL
    centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until(
        "the centre to answer again",
        Duration::from_secs(60),
        || call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200),
    );
    let late = wait_alert(http, &long, "CT-CAM-10");
    assert_eq!(
        late["fired_at"].as_i64().unwrap() - early["fired_at"].as_i64().unwrap(),
        5000,
        "the inject after the restart keeps its planned event time"
    );
    assert_eq!(
        alert_of(http, &long, "CT-CAM-09").unwrap()["state"],
        "firing",
        "the exercise's alert survived the crash"
    );
    let (status, ended) = post(
        http,
        &format!("/api/drills/{long}/end"),
        "leader",
        json!({}),
    );
    assert_eq!(status, 200, "{ended}");
    let (ok, report) = cli(&["report", &long]);
    assert!(ok, "watchfloor drill report: {report}");
    assert_eq!(outcome(&report, "seen_early")["verdict"], "met");
    assert_eq!(outcome(&report, "seen_late")["verdict"], "met");
    assert_eq!(outcome(&report, "seen_late")["took_ms"].as_i64(), Some(0));
    drop(centre);
}
