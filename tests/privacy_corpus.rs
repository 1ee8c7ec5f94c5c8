//! Personal data by policy (issue 17): the corpus `tests/data/personal/` — camera events
//! with plates, names, phone and ID numbers under many keys and in free text — fed to the
//! server; none of its secrets reaches a viewer or an integrator, over REST (the station,
//! its latest reading and detections, the station list) or the WebSocket (snapshot and
//! deltas); an operator, entitled to it, still sees the plate.

#[path = "server_support/mod.rs"]
mod server_support;

use futures_util::SinkExt;
use serde_json::{json, Value};
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

fn corpus() -> (Vec<String>, Vec<String>) {
    let dir = shipped_rules().join("../tests/data/personal");
    let events = std::fs::read_to_string(dir.join("camera_events.ndjson"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let secrets = std::fs::read_to_string(dir.join("secrets.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    (events, secrets)
}

fn leaks(text: &str, secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn no_secret_of_the_corpus_reaches_a_viewer_or_an_integrator() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    let (events, secrets) = corpus();
    assert!(secrets.len() >= 15);
    // Screens watching the station before the readings arrive (deltas), then after
    // (snapshots).
    let mut watching = Vec::new();
    for who in ["integrator", "binh-thuy-viewer", "admin"] {
        let mut ws = connect(&url, who).await;
        ws.send(Message::Text(
            json!({"op": "subscribe", "channel": "stations", "filter": {"station": "CT-CAM-01"}})
                .to_string(),
        ))
        .await
        .unwrap();
        let _snapshot = next(&mut ws).await;
        watching.push((who, ws));
    }
    h.feed(events).await;
    for who in ["integrator", "binh-thuy-viewer"] {
        for path in ["/api/stations/CT-CAM-01", "/api/stations"] {
            let text = h.text(path, who).await;
            assert!(
                leaks(&text, &secrets).is_empty(),
                "{who} {path}: {:?}",
                leaks(&text, &secrets)
            );
        }
        let station: Value =
            serde_json::from_str(&h.text("/api/stations/CT-CAM-01", who).await).unwrap();
        let detections = station["detections"].as_array().map_or(0, Vec::len);
        assert!(
            detections >= 5,
            "{who}: the detections are served, masked: {station}"
        );
    }
    for (who, mut ws) in watching {
        let deltas: String = drain(&mut ws).await.iter().map(Value::to_string).collect();
        let mut fresh = connect(&url, who).await;
        fresh
            .send(Message::Text(
                json!({"op": "subscribe", "channel": "stations", "filter": {"station": "CT-CAM-01"}})
                    .to_string(),
            ))
            .await
            .unwrap();
        let snapshot = next(&mut fresh).await.to_string();
        if who == "admin" {
            // Entitled: the plate is there.
            assert!(
                deltas.contains("65A-123.45") || snapshot.contains("65A-123.45"),
                "{deltas}"
            );
            continue;
        }
        assert!(!deltas.is_empty(), "{who}: deltas arrived");
        assert!(
            leaks(&deltas, &secrets).is_empty(),
            "{who} deltas: {:?}",
            leaks(&deltas, &secrets)
        );
        assert!(
            leaks(&snapshot, &secrets).is_empty(),
            "{who} snapshot: {:?}",
            leaks(&snapshot, &secrets)
        );
    }
    let operator = h.text("/api/stations/CT-CAM-01", "city-operator").await;
    assert!(
        operator.contains("Nguyễn Văn An") || operator.contains("65F12345"),
        "{operator}"
    );
}
