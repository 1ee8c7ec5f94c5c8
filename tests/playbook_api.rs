//! Playbook runs over the API of a running centre (`watchfloor run`, real Mosquitto, SQLite,
//! the shipped playbooks): a camera fire in Long Hòa starts `fire_confirmed`; who sees the
//! run (the commune's operator and viewer, the city admin — not another commune's operator,
//! not the transport department); who may act (not a viewer, not another commune; the
//! evidence a step asks for; a step given to a named account is theirs); a playbook started
//! by hand on a reported incident; every refusal a JSON error and a line in the audit log;
//! the per-step metrics.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until};

const ACCOUNTS: [(&str, &str, &str, &str); 5] = [
    ("admin", "admin", "city", ""),
    ("op-long-hoa", "operator", "commune:long_hoa", ""),
    ("op-tan-an", "operator", "commune:tan_an", ""),
    ("viewer-long-hoa", "viewer", "commune:long_hoa", ""),
    ("op-transport", "operator", "city", "transport"),
];

fn token(name: &str) -> String {
    format!("token-{name}")
}

fn post(http: u16, path: &str, who: &str, body: Value) -> (u16, Value) {
    let a = call(http, "POST", path, Some(&token(who)), Some(&body))
        .unwrap_or_else(|| panic!("POST {path}: no answer"));
    (a.status, a.body)
}

fn runs(http: u16, who: &str) -> Vec<Value> {
    get(http, "/api/runs", &token(who)).body["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn step_status(run: &Value, step: &str) -> String {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == step)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn runs_are_scoped_acted_on_by_the_right_people_and_refusals_are_on_record() {
    let dir = scratch("playbook-api", "scoped");
    let broker = Mosquitto::start(&dir);
    let http = free_port();
    let mut accounts = String::new();
    for (name, role, scope, sectors) in ACCOUNTS {
        accounts.push_str(&format!(
            "[[account]]\nname = \"{name}\"\nrole = \"{role}\"\nscope = \"{scope}\"\ntoken_sha256 = \"{}\"\n{}\n",
            watchfloor_server::token_hash_hex(&token(name)),
            if sectors.is_empty() { String::new() } else { format!("sectors = [\"{sectors}\"]") }
        ));
    }
    let pipeline =
        support::centre::write_pipeline(&dir, broker.port, http, "sqlite:incidents.db", "");
    std::fs::write(dir.join("accounts.toml"), accounts).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../playbooks");
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "accounts = \"accounts.toml\"",
        &format!(
            "accounts = \"accounts.toml\"\nplaybooks = {:?}",
            shipped.display().to_string()
        ),
    );
    std::fs::write(&pipeline, text).unwrap();
    let _centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });
    let playbooks = get(http, "/api/playbooks", &token("viewer-long-hoa")).body;
    assert_eq!(
        playbooks["playbooks"].as_array().unwrap().len(),
        8,
        "{playbooks}"
    );

    let mut options = rumqttc::MqttOptions::new("camera", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (camera, mut connection) = rumqttc::Client::new(options, 10);
    std::thread::spawn(move || for _ in connection.iter() {});
    let (topic, payload) = support::centre::camera_detection("CT-CAM-01", 0.95);
    camera
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .unwrap();
    wait_until("the fire's run", Duration::from_secs(30), || {
        !runs(http, "op-long-hoa").is_empty()
    });
    let run = runs(http, "op-long-hoa").remove(0);
    let id = run["id"].as_str().unwrap().to_string();
    assert_eq!(run["playbook"], "fire_confirmed");
    assert_eq!(step_status(&run, "dispatch"), "active");

    // Who sees it.
    assert_eq!(runs(http, "admin").len(), 1);
    assert_eq!(runs(http, "viewer-long-hoa").len(), 1);
    assert!(
        runs(http, "op-tan-an").is_empty(),
        "another commune's operator sees the run"
    );
    assert!(
        runs(http, "op-transport").is_empty(),
        "the transport department sees a public-safety run"
    );
    assert_eq!(
        get(http, &format!("/api/runs/{id}"), &token("op-tan-an")).status,
        404
    );
    let by_alert = get(
        http,
        &format!("/api/runs?alert={}", run["alert_id"].as_str().unwrap()),
        &token("op-long-hoa"),
    )
    .body;
    assert_eq!(by_alert["runs"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(http, "/api/runs?state=bogus", &token("admin")).status,
        400
    );

    // Who may act, with what.
    let dispatch = format!("/api/runs/{id}/steps/dispatch");
    let complete = |value: Value| json!({"action": "complete", "value": value, "note": "xe số 7"});
    let (status, body) = post(
        http,
        &dispatch,
        "viewer-long-hoa",
        complete(json!("PCCC-07")),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(
        post(http, &dispatch, "op-tan-an", complete(json!("PCCC-07"))).0,
        404
    );
    let (status, body) = post(
        http,
        &dispatch,
        "op-long-hoa",
        json!({"action": "complete"}),
    );
    assert_eq!(
        (
            status,
            body["error"].as_str().unwrap().contains("attachment")
        ),
        (422, true),
        "{body}"
    );
    assert_eq!(
        post(http, &dispatch, "op-long-hoa", json!({"action": "fly"})).0,
        400
    );
    let (status, done) = post(http, &dispatch, "op-long-hoa", complete(json!("PCCC-07")));
    assert_eq!(status, 200, "{done}");
    assert_eq!(step_status(&done, "dispatch"), "done");
    assert_eq!(step_status(&done, "divert_traffic"), "active");
    assert_eq!(
        post(http, &dispatch, "op-long-hoa", complete(json!("PCCC-08"))).0,
        409
    );
    assert_eq!(
        post(
            http,
            &dispatch,
            "op-long-hoa",
            json!({"action": "comment", "note": "đã đến"})
        )
        .0,
        200
    );

    // A step given to a named account is theirs.
    let divert = format!("/api/runs/{id}/steps/divert_traffic");
    assert_eq!(
        post(
            http,
            &divert,
            "op-long-hoa",
            json!({"action": "reassign", "to": "op-tan-an"})
        )
        .0,
        422
    );
    assert_eq!(
        post(
            http,
            &divert,
            "op-long-hoa",
            json!({"action": "reassign", "to": "admin"})
        )
        .0,
        200
    );
    let (status, body) = post(
        http,
        &divert,
        "op-long-hoa",
        json!({"action": "complete", "note": "đã phân luồng"}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        http,
        &divert,
        "admin",
        json!({"action": "complete", "note": "đã phân luồng"}),
    );
    assert_eq!(status, 200, "{body}");

    // The stored timeline.
    let full = get(http, &format!("/api/runs/{id}"), &token("op-long-hoa")).body;
    let lines: Vec<String> = full["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["step"].as_str().unwrap_or("-"),
                e["event"].as_str().unwrap(),
                e["by"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "dispatch completed op-long-hoa",
        "dispatch commented op-long-hoa",
        "divert_traffic reassigned op-long-hoa",
        "divert_traffic completed admin",
        "air_watch started ",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} in {lines:#?}");
    }

    // Started by hand on a reported incident.
    let incident = |zone: &str, playbook: &str| json!({"playbook": playbook, "incident": {"title": "Người mắc kẹt trên mái nhà", "zone": zone}});
    let (status, sar) = post(
        http,
        "/api/runs",
        "op-long-hoa",
        incident("long_hoa", "search_and_rescue"),
    );
    assert_eq!(status, 201, "{sar}");
    assert_eq!(step_status(&sar, "assess"), "active");
    assert_eq!(
        post(
            http,
            "/api/runs",
            "op-long-hoa",
            incident("tan_an", "search_and_rescue")
        )
        .0,
        403
    );
    assert_eq!(
        post(
            http,
            "/api/runs",
            "viewer-long-hoa",
            incident("long_hoa", "search_and_rescue")
        )
        .0,
        403
    );
    assert_eq!(
        post(
            http,
            "/api/runs",
            "op-long-hoa",
            incident("long_hoa", "flood_response")
        )
        .0,
        403
    );
    assert_eq!(
        post(
            http,
            "/api/runs",
            "op-long-hoa",
            json!({"playbook": "search_and_rescue"})
        )
        .0,
        400
    );

    // The daily report counts the day's steps in the caller's scope.
    let today = watchfloor_model::day_text(watchfloor_model::local_day(support::now_ms()));
    let report = |who: &str| {
        get(
            http,
            &format!("/api/reports/daily?date={today}"),
            &token(who),
        )
        .body["playbooks"]
            .clone()
    };
    let mine = report("op-long-hoa");
    let dispatch_row = mine["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["playbook"] == "fire_confirmed" && r["step"] == "dispatch")
        .cloned();
    assert_eq!(
        dispatch_row.as_ref().map(|r| (
            r["started"].clone(),
            r["completed"].clone(),
            r["breached"].clone()
        )),
        Some((json!(1), json!(1), json!(0))),
        "{mine}"
    );
    assert_eq!(
        mine["runs_started"],
        json!({"fire_confirmed": 1, "search_and_rescue": 1}),
        "{mine}"
    );
    assert_eq!(
        report("op-tan-an")["steps"],
        json!([]),
        "another commune's report counts none of them"
    );

    // Refusals are on the record; the metrics count the steps.
    let audit = call(http, "GET", "/api/audit", Some(&token("admin")), None).unwrap();
    let text = audit.body.to_string();
    assert!(
        text.contains("playbook step refused") && text.contains("viewer-long-hoa"),
        "{text}"
    );
    assert!(text.contains("playbook start refused"), "{text}");
    let metrics = call(http, "GET", "/metrics", None, None).unwrap().body;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("watchfloor_playbook_steps_completed_total{playbook=\"fire_confirmed\",step=\"dispatch\"} 1"), "{metrics}");
    assert!(metrics.contains("watchfloor_playbook_step_seconds_count{playbook=\"fire_confirmed\",step=\"dispatch\"} 1"), "{metrics}");
}
