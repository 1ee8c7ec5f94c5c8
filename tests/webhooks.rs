//! Webhooks through an outage, end to end: a running centre (`watchfloor run`, real
//! Mosquitto, SQLite) and a receiver in Python that checks every signature with the
//! independent `standardwebhooks` package from PyPI (tests/webhooks/receiver.py).
//!
//! The receiver answers 503 at first, then 429 with `Retry-After`, then 200; meanwhile
//! cameras see fires, operators resolve some, and the centre is SIGKILLed and restarted.
//! Every transition is delivered, accepted once under one id, in order per alert, every
//! signature valid (two secrets, a rotation); each attempt is in the delivery log. A
//! receiver answering 410 has its subscription disabled, with the reason in the API.
//! A drill's alerts reach only the subscription that opted in. Addresses the policy
//! refuses (the cloud metadata address, a loopback address not allowed) are a 400. The same
//! transitions are served as CAP 1.2 messages and an Atom feed (with a token: not public).

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until, Killed};

const SECRETS: [&str; 2] = [
    "whsec_d2F0Y2hmbG9vci10ZXN0LXNlY3JldC1vbmUtMDAwMQ==",
    "whsec_d2F0Y2hmbG9vci10ZXN0LXNlY3JldC10d28tMDAwMg==",
];

const DRILL: &str = r#"drill:
  id: hook_drill
  name: { vi: "Diễn tập", en: "Drill" }
  objectives:
    - { id: detect, title: { vi: "Phát hiện", en: "Detect" }, outcomes: [seen] }
  participants:
    - { role: operator, zones: [long_hoa] }
  injects:
    - { id: smoke, at: 0s, kind: camera, station: CT-CAM-20, event: fire_smoke, confidence: 0.9 }
  expect:
    - { id: seen, kind: alert, rule: camera_fire_smoke, key: CT-CAM-20, after: smoke, within: 10s }
"#;

fn post(http: u16, path: &str, body: Value) -> (u16, Value) {
    let a = call(http, "POST", path, Some("token-admin"), Some(&body))
        .unwrap_or_else(|| panic!("POST {path}: no answer"));
    (a.status, a.body)
}

fn receiver(dir: &std::path::Path, port: u16, record: &str, schedule: &str) -> Killed {
    support::receiver::start(dir, port, record, schedule, &SECRETS, None)
}

fn camera(client: &rumqttc::Client, id: &str) {
    let (topic, payload) = support::centre::camera_detection(id, 0.95);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .unwrap();
}

/// The engine transitions the feed holds for non-exercise alerts: (cursor, alert, event).
fn transitions(http: u16) -> Vec<(i64, String, String)> {
    get(http, "/api/changes?limit=1000", "token-admin").body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["by"].is_null())
        .map(|c| {
            (
                c["cursor"].as_str().unwrap().parse().unwrap(),
                c["alert"]["alert_id"].as_str().unwrap().to_string(),
                c["event"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_transition_is_delivered_once_signed_in_order_through_an_outage_and_a_crash() {
    let dir = scratch("webhooks", "outage");
    let broker = Mosquitto::start(&dir);
    let http = free_port();
    let hook_port = free_port();
    let _receiver = receiver(
        &dir,
        hook_port,
        "received.ndjson",
        "503:6,drop:2,429:3:1,200",
    );
    std::fs::write(
        dir.join("accounts.toml"),
        format!(
            "[[account]]\nname = \"admin\"\nrole = \"admin\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n\
             [[account]]\nname = \"feed\"\nrole = \"integrator\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n",
            watchfloor_server::token_hash_hex("token-admin"),
            watchfloor_server::token_hash_hex("token-feed"),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/hook.yaml"), DRILL).unwrap();
    let pipeline = support::centre::write_pipeline(
        &dir,
        broker.port,
        http,
        "sqlite:incidents.db",
        "\n[server.webhooks]\nbackoff = \"200ms\"\nbackoff_max = \"1s\"\ntimeout = \"2s\"\nallow = [\"127.0.0.1\"]\n",
    );
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "accounts = \"accounts.toml\"",
        "accounts = \"accounts.toml\"\ndrills = \"drills\"",
    );
    std::fs::write(&pipeline, text).unwrap();
    let mut centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });

    // Who may, and where to.
    let hook = format!("http://127.0.0.1:{hook_port}/hook");
    let refused = call(
        http,
        "POST",
        "/api/webhooks",
        Some("token-feed"),
        Some(&json!({"url": hook})),
    )
    .unwrap();
    assert_eq!(refused.status, 403);
    for bad in [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.2:9/x",
        "ftp://x/",
    ] {
        let (status, body) = post(http, "/api/webhooks", json!({"url": bad}));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, main) = post(
        http,
        "/api/webhooks",
        json!({"url": hook, "secrets": SECRETS, "filter": {"rules": ["camera_fire_smoke"]}}),
    );
    assert_eq!(status, 201, "{main}");
    let main_id = main["id"].as_str().unwrap().to_string();
    let (_, drills) = post(
        http,
        "/api/webhooks",
        json!({"url": format!("{hook}?drills"), "secrets": [SECRETS[0]], "filter": {"exercises": true}, "format": "alertmanager"}),
    );
    let drills_id = drills["id"].as_str().unwrap().to_string();
    let (_, gone) = post(
        http,
        "/api/webhooks",
        json!({"url": format!("http://127.0.0.1:{hook_port}/gone"), "secrets": [SECRETS[0]]}),
    );
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let listed = get(http, "/api/webhooks", "token-admin").body.to_string();
    assert!(
        !listed.contains(SECRETS[0]),
        "secrets are shown only at creation"
    );

    // Fires, resolutions, a crash in the middle of the outage.
    let mut options = rumqttc::MqttOptions::new("cameras", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (cameras, mut connection) = rumqttc::Client::new(options, 100);
    std::thread::spawn(move || for _ in connection.iter() {});
    for n in 1..=6 {
        camera(&cameras, &format!("CT-CAM-{n:02}"));
    }
    wait_until("six fires", Duration::from_secs(30), || {
        transitions(http).len() >= 6
    });
    for (_, id, _) in transitions(http).into_iter().take(3) {
        let (status, body) = post(
            http,
            &format!("/api/alerts/{id}/resolve"),
            json!({"note": "xong"}),
        );
        assert_eq!(status, 200, "{body}");
    }
    wait_until("three resolutions", Duration::from_secs(30), || {
        transitions(http).len() >= 9
    });
    drop(centre); // SIGKILL, while the receiver answers 503
    centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until(
        "the centre to answer again",
        Duration::from_secs(60),
        || call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200),
    );
    for n in 7..=9 {
        camera(&cameras, &format!("CT-CAM-{n:02}"));
    }
    wait_until("nine fires", Duration::from_secs(30), || {
        transitions(http).len() >= 12
    });
    // A drill: its alert reaches only the subscription that opted in.
    let (status, started) = post(http, "/api/drills", json!({"drill": "hook_drill"}));
    assert_eq!(status, 201, "{started}");
    let exercise = started["id"].as_str().unwrap().to_string();
    wait_until("the drill's alert", Duration::from_secs(30), || {
        get(
            http,
            "/api/changes?limit=1000&exercises=include",
            "token-admin",
        )
        .body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["alert"]["labels"]["exercise"] == exercise.as_str())
    });
    post(http, &format!("/api/drills/{exercise}/end"), json!({}));

    // Every transition accepted once, under its one id, in order per alert.
    let expected = transitions(http);
    assert_eq!(expected.len(), 12, "{expected:?}");
    let accepted = |all: &[Value]| -> Vec<Value> {
        all.iter()
            .filter(|r| r["answered"] == "200" && r["path"] == "/hook")
            .cloned()
            .collect()
    };
    wait_until("every transition accepted", Duration::from_secs(90), || {
        accepted(&support::receiver::records(&dir, "received.ndjson")).len() >= expected.len()
    });
    std::thread::sleep(Duration::from_secs(2));
    let all = support::receiver::records(&dir, "received.ndjson");
    let ok = accepted(&all);
    assert!(
        all.iter().all(|r| r["verified"] == true),
        "a signature did not verify"
    );
    assert!(
        all.iter()
            .filter(|r| r["path"] == "/hook")
            .all(|r| r["signatures"] == 2),
        "one signature per secret"
    );
    for status in ["503", "drop", "429"] {
        assert!(
            all.iter().any(|r| r["answered"] == status),
            "the outage had `{status}`"
        );
    }
    assert_eq!(ok.len(), expected.len(), "accepted once each: {ok:?}");
    let ids: BTreeSet<&str> = ok.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), ok.len(), "no id accepted twice");
    let want: BTreeSet<String> = expected
        .iter()
        .map(|(seq, _, _)| format!("msg_{main_id}_{seq}"))
        .collect();
    assert_eq!(
        ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        want
    );
    // Every attempt of one transition carried the same id and the same body.
    let mut bodies: BTreeMap<&str, &Value> = BTreeMap::new();
    for r in all.iter().filter(|r| r["path"] == "/hook") {
        let id = r["id"].as_str().unwrap();
        if let Some(first) = bodies.insert(id, &r["body"]) {
            assert_eq!(first, &r["body"], "{id}: a retry with another body");
        }
    }
    let mut by_alert: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &ok {
        let body = &r["body"];
        assert!(
            body["type"].as_str().unwrap().starts_with("alert."),
            "{body}"
        );
        assert!(body["timestamp"].is_string());
        assert!(
            body["data"]["alert"]["labels"].get("exercise").is_none(),
            "a drill's alert without opting in"
        );
        by_alert
            .entry(
                body["data"]["alert"]["alert_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default()
            .push(
                body["data"]["change"]["event"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
    }
    for (alert, events) in &by_alert {
        assert_eq!(events[0], "fired", "{alert}: {events:?}");
        if events.len() > 1 {
            assert_eq!(events[1..], ["resolved"], "{alert}: {events:?}");
        }
    }

    // The delivery log: the first delivery's attempts, in order, the last one accepted.
    let first = format!("msg_{main_id}_{}", expected[0].0);
    let d = get(
        http,
        &format!("/api/webhooks/{main_id}/deliveries/{first}"),
        "token-admin",
    )
    .body;
    assert_eq!(d["status"], "delivered", "{d}");
    let log = d["attempts_log"].as_array().unwrap();
    assert!(log.len() >= 3, "retried through the outage: {d}");
    assert!(log.iter().any(|a| a["status_code"] == 503));
    assert_eq!(log.last().unwrap()["status_code"], 200);
    assert!(log.iter().all(|a| a["latency_ms"].is_i64()));
    let listed = get(
        http,
        &format!("/api/webhooks/{main_id}/deliveries"),
        "token-admin",
    )
    .body;
    assert_eq!(
        listed["deliveries"].as_array().unwrap().len(),
        expected.len()
    );
    // Resend one: the same id and body again.
    let (status, _) = post(
        http,
        &format!("/api/webhooks/{main_id}/deliveries/{first}/resend"),
        json!({}),
    );
    assert_eq!(status, 200);
    wait_until("the resend", Duration::from_secs(20), || {
        accepted(&support::receiver::records(&dir, "received.ndjson"))
            .iter()
            .filter(|r| r["id"] == first.as_str())
            .count()
            == 2
    });
    let (status, test) = post(http, &format!("/api/webhooks/{main_id}/test"), json!({}));
    assert_eq!(
        (status, test["delivered"].as_bool()),
        (200, Some(true)),
        "{test}"
    );

    // The drill went to the subscription that opted in, as an Alertmanager body.
    let drill_bodies: Vec<Value> = all
        .iter()
        .filter(|r| r["path"] == "/hook?drills" && r["answered"] == "200")
        .map(|r| r["body"].clone())
        .collect();
    assert!(
        drill_bodies
            .iter()
            .any(|b| b["version"] == "4"
                && b["alerts"][0]["labels"]["exercise"] == exercise.as_str()),
        "the opted-in subscription got the drill: {drill_bodies:?}"
    );
    let _ = drills_id;

    // The same transitions as CAP 1.2 messages and their Atom feed (not public here).
    assert_eq!(
        call(http, "GET", "/cap/feed.atom", None, None)
            .unwrap()
            .status,
        401
    );
    let feed = get(http, "/cap/feed.atom", "token-feed");
    assert_eq!(feed.status, 200);
    let atom = feed.body.as_str().unwrap().to_string();
    assert!(
        atom.contains("<feed xmlns=\"http://www.w3.org/2005/Atom\">"),
        "{atom}"
    );
    assert_eq!(
        atom.matches("<entry>").count(),
        expected.len(),
        "real transitions only: {atom}"
    );
    let (seq, alert, _) = &expected[expected.len() - 1];
    let cap = get(
        http,
        &format!("/cap/alerts/wf-{alert}-{seq}.xml"),
        "token-feed",
    );
    assert_eq!(cap.status, 200);
    let xml = cap.body.as_str().unwrap();
    let parsed: oasiscap::v1dot2::Alert = xml.parse::<oasiscap::Alert>().unwrap().into_latest();
    assert_eq!(parsed.identifier.as_str(), format!("wf-{alert}-{seq}"));
    assert_eq!(format!("{:?}", parsed.status), "Actual");
    assert_eq!(
        get(http, "/cap/alerts/wf-nothing-1.xml", "token-feed").status,
        404
    );

    // 410: disabled, and the API says why.
    wait_until(
        "the 410 to disable its subscription",
        Duration::from_secs(30),
        || {
            get(http, &format!("/api/webhooks/{gone_id}"), "token-admin").body["status"]
                == "disabled"
        },
    );
    let g = get(http, &format!("/api/webhooks/{gone_id}"), "token-admin").body;
    assert!(g["reason"].as_str().unwrap().contains("410"), "{g}");
    drop(centre);
}
