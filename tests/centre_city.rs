//! The shipped city pipeline (`pipelines/city.toml`) as a city would run it: `watchfloor
//! run` next to a real Mosquitto, only its ports, paths and accounts moved into a scratch
//! folder. It serves the dashboard, `/api/*`, `/ws`, `/metrics` and `/healthz`; a camera's
//! fire published over MQTT reaches the API and a WebSocket client, and an operator's
//! acknowledgement through the API is kept.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until};
use tokio_tungstenite::tungstenite::Message;

const LOG: &str = "watchfloor.log";
const OPERATOR: &str = "token-city-operator";

/// `pipelines/city.toml` with `from` replaced by `to`, each replacement required (so the
/// test notices when the shipped file changes under it).
fn moved(text: String, replacements: &[(&str, String)]) -> String {
    replacements.iter().fold(text, |text, (from, to)| {
        assert!(
            text.contains(from),
            "pipelines/city.toml no longer has `{from}`"
        );
        text.replace(from, to)
    })
}

#[test]
fn the_shipped_city_pipeline_serves_the_command_centre() {
    let dir = scratch("centre", "city");
    let broker_dir = dir.join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir);
    let http = free_port();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shipped = std::fs::read_to_string(root.join("pipelines/city.toml")).unwrap();
    let text = moved(
        shipped,
        &[
            ("port = 1883", format!("port = {}", broker.port)),
            ("127.0.0.1:8080", format!("127.0.0.1:{http}")),
            (
                "rules = \"../alert-rules\"",
                format!("rules = \"{}\"", root.join("alert-rules").display()),
            ),
            (
                "indicators = \"../indicators\"",
                format!("indicators = \"{}\"", root.join("indicators").display()),
            ),
            (
                "playbooks = \"../playbooks\"",
                format!("playbooks = \"{}\"", root.join("playbooks").display()),
            ),
            (
                "drills = \"../drills\"",
                format!("drills = \"{}\"", root.join("drills").display()),
            ),
            ("\"../var/", "\"var/".to_string()),
            ("sqlite:../var/", "sqlite:var/".to_string()),
        ],
    );
    let pipeline = dir.join("city.toml");
    std::fs::write(&pipeline, text).unwrap();
    support::centre::write_accounts(&dir, "duty-officer-1", OPERATOR);
    std::fs::rename(dir.join("accounts.toml"), dir.join("city-accounts.toml")).unwrap();
    let _wf = run_pipeline(&pipeline, LOG);
    wait_until("the centre to answer", Duration::from_secs(30), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
            && support::log_of(&pipeline, LOG)
                .matches("mqtt source subscribed")
                .count()
                >= 2
    });

    // The dashboard, the API, the metrics.
    let page = call(http, "GET", "/", None, None).expect("the dashboard answers");
    assert_eq!(page.status, 200);
    assert!(
        page.body.as_str().unwrap_or_default().contains("<html"),
        "{:?}",
        page.body
    );
    let me = get(http, "/api/me", OPERATOR);
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["name"], "duty-officer-1", "{}", me.body);
    let metrics = call(http, "GET", "/metrics", None, None).unwrap();
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or_default()
            .contains("watchfloor_received_total"),
        "{:?}",
        metrics.body
    );

    let runtime = support::runtime();
    runtime.block_on(async {
        // A screen on the WebSocket, subscribed to the alerts.
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{http}/ws"))
            .await
            .unwrap();
        ws.send(Message::Text(
            json!({"op": "auth", "token": OPERATOR}).to_string(),
        ))
        .await
        .unwrap();
        ws.send(Message::Text(
            json!({"op": "subscribe", "channel": "alerts"}).to_string(),
        ))
        .await
        .unwrap();
        // Subscribed once the snapshot is there (an alert before that would be in it, not
        // in a delta).
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let Some(Ok(Message::Text(text))) = ws.next().await else {
                    panic!("the WebSocket closed");
                };
                let m: Value = serde_json::from_str(&text).unwrap();
                if m["type"] == "snapshot" && m["channel"] == "alerts" {
                    return;
                }
            }
        })
        .await
        .expect("the alerts snapshot within 10 s");

        // A camera sees fire.
        let mut options = rumqttc::MqttOptions::new("city-camera", "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = rumqttc::AsyncClient::new(options, 10);
        let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
        let (topic, reading) = support::centre::camera_detection("CT-CAM-01", 0.95);
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, reading)
            .await
            .unwrap();

        // The screen gets it as a delta.
        let delta = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let Some(Ok(Message::Text(text))) = ws.next().await else {
                    panic!("the WebSocket closed");
                };
                let m: Value = serde_json::from_str(&text).unwrap();
                if m["type"] == "delta" && m["data"]["key"] == "CT-CAM-01" {
                    return m;
                }
            }
        })
        .await
        .expect("a delta for the camera's alert within 20 s");
        assert_eq!(delta["data"]["state"], "firing", "{delta}");
        poller.abort();
        let id = delta["data"]["alert_id"].as_str().unwrap().to_string();

        // The API has it, and keeps an acknowledgement.
        let http_call = |method: &'static str, path: String, body: Option<Value>| {
            tokio::task::spawn_blocking(move || {
                call(http, method, &path, Some(OPERATOR), body.as_ref())
            })
        };
        // (The list reads the store, which the writer commits to just after the screens
        // hear of it: a moment later at most.)
        let mut list = http_call("GET", "/api/alerts?state=open".into(), None)
            .await
            .unwrap()
            .unwrap();
        for _ in 0..50 {
            if list
                .body
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["alert_id"] == id.as_str())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            list = http_call("GET", "/api/alerts?state=open".into(), None)
                .await
                .unwrap()
                .unwrap();
        }
        assert!(
            list.body
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["alert_id"] == id.as_str()),
            "{}",
            list.body
        );
        let ack = http_call(
            "POST",
            format!("/api/alerts/{id}/ack"),
            Some(json!({"note": "fire crew sent"})),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(ack.status, 200, "{:?}", ack.body);
        let alert = http_call("GET", format!("/api/alerts/{id}"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            alert.body["acknowledged"]["note"], "fire crew sent",
            "{}",
            alert.body
        );
    });
    // Kept in the store the shipped file names (SQLite under var/city/).
    assert!(dir.join("var/city/incidents.db").exists());
}
