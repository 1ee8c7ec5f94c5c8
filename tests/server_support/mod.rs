//! The command-centre server's test harness: a real engine running the shipped rule packs on
//! its own task, fed envelopes by the test, answering the server's commands and reporting to
//! the hub (the pipeline without its MQTT/Kafka transport); accounts for every role and
//! scope; helpers to call the REST API and to speak the WebSocket protocol.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;
use watchfloor_city::{load_rules, City};
use watchfloor_engine::{Emitted, Engine, EngineConfig, TimeMode};
use watchfloor_model::{decode_envelope, DecodeLimits};
use watchfloor_pipeline::{EngineCommand, Outcome, PipelineObserver, PipelineStats};
use watchfloor_server::{token_hash_hex, Accounts, AppState, Hub};

pub const ACCOUNTS: [(&str, &str, &str); 10] = [
    ("admin", "admin", "city"),
    ("city-operator", "operator", "city"),
    ("binh-thuy-viewer", "viewer", "district:binh_thuy"),
    ("long-hoa-operator", "operator", "ward:long_hoa"),
    ("long-hoa-viewer", "viewer", "ward:long_hoa"),
    ("tan-an-operator", "operator", "ward:tan_an"),
    ("integrator", "integrator", "city"),
    ("ninh-kieu-operator", "operator", "district:ninh_kieu"),
    // A cluster centre of two communes, and the commune spelling of a one-ward scope.
    ("cluster-operator", "operator", "commune:long_hoa,tan_an"),
    ("long-hoa-commune-viewer", "viewer", "commune:long_hoa"),
];

/// Accounts limited to sectors (departments): (name, role, area, sectors).
pub const SECTOR_ACCOUNTS: [(&str, &str, &str, &str); 4] = [
    // A department centre: one sector, the whole city.
    ("environment-department", "operator", "city", "environment"),
    ("transport-department", "viewer", "city", "transport"),
    // A commune operator limited to one sector.
    (
        "long-hoa-environment",
        "operator",
        "commune:long_hoa",
        "environment",
    ),
    // An admin of one department: its audit lines only.
    ("environment-admin", "admin", "city", "environment"),
];

pub fn accounts() -> Accounts {
    let mut text = String::new();
    for (name, role, scope) in ACCOUNTS {
        text += &format!(
            "[[account]]\nname = \"{name}\"\nrole = \"{role}\"\nscope = \"{scope}\"\ntoken_sha256 = \"{}\"\n",
            token_hash_hex(&format!("token-{name}"))
        );
    }
    for (name, role, scope, sectors) in SECTOR_ACCOUNTS {
        text += &format!(
            "[[account]]\nname = \"{name}\"\nrole = \"{role}\"\nscope = \"{scope}\"\nsectors = [\"{sectors}\"]\ntoken_sha256 = \"{}\"\n",
            token_hash_hex(&format!("token-{name}"))
        );
    }
    Accounts::from_toml(&text).unwrap()
}

pub fn shipped_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules")
}

/// A real engine on its own task, fed envelopes by the test, answering the server's
/// commands, reporting to the hub: the pipeline without its MQTT/Kafka transport.
/// Lines to feed: each with the time it is received (`None`: at its own timestamp, and
/// a line the pipeline would refuse is a mistake of the test: it panics).
pub type Batch = (Vec<(String, Option<i64>)>, tokio::sync::oneshot::Sender<()>);

pub struct Harness {
    pub feed: mpsc::Sender<Batch>,
    pub state: AppState,
    pub hub: Arc<Hub>,
}

pub const T0: i64 = 1_795_712_400_000; // 2026-11-27T00:00:00+07:00

pub fn harness(rules_dir: &Path) -> Harness {
    let (rules, city) = load_rules(rules_dir).unwrap();
    let city: Arc<City> = city.unwrap();
    let hub = Hub::new(Some(city.clone()), None);
    hub.set_sector_views(accounts().sector_views());
    let (commands_tx, mut commands) = mpsc::channel::<EngineCommand>(16);
    let (feed, mut lines) = mpsc::channel::<Batch>(16);
    let observer = hub.clone();
    tokio::spawn(async move {
        let mut engine = Engine::new(
            rules,
            EngineConfig {
                time_mode: TimeMode::Event,
                max_out_of_orderness_ms: 0,
                allowed_lateness_ms: 0,
                idle_timeout_ms: 60_000,
                ..EngineConfig::default()
            },
        );
        let mut city = Some(city);
        let mut out = Emitted::default();
        loop {
            tokio::select! {
                batch = lines.recv() => {
                    let Some((batch, done)) = batch else { return };
                    for (line, received) in batch {
                        let decoded = decode_envelope(line.as_bytes(), None, &DecodeLimits::default());
                        let (station, ts) = match &decoded {
                            Ok(e) => (Some(e.source.clone()), Some(e.ts)),
                            Err(_) => (None, None),
                        };
                        let result = decoded.and_then(|mut event| {
                            if let Some(c) = &city { c.place(&mut event)?; }
                            engine.process(&event, &mut out)?;
                            Ok(event)
                        });
                        let at = received.or(ts).unwrap_or(0);
                        match result {
                            Ok(event) => {
                                observer.on_event(&event);
                                observer.on_outcome(&Outcome { station: station.as_deref(), ts, event: Some(&event), refusal: None, received: at });
                            }
                            Err(reason) if received.is_some() => {
                                observer.on_outcome(&Outcome { station: station.as_deref(), ts, event: None, refusal: Some(&reason), received: at });
                            }
                            Err(reason) => panic!("the test fed a line the pipeline refuses ({reason}): {line}"),
                        }
                    }
                    if !out.transitions.is_empty() {
                        observer.on_transitions(&out.transitions);
                        out.transitions.clear();
                    }
                    let _ = done.send(());
                }
                command = commands.recv() => match command {
                    Some(EngineCommand::Acknowledge { id, ack, reply }) => { let _ = reply.send(engine.acknowledge(&id, ack)); }
                    Some(EngineCommand::Resolve { id, at, reply }) => { let _ = reply.send(engine.resolve_manually(&id, at, &mut out)); }
                    Some(EngineCommand::Raise { id, severity, at, reply }) => { let _ = reply.send(engine.raise_severity(&id, severity, at, &mut out).map(|_| ())); }
                    Some(EngineCommand::Reload { rules, city: c, reply }) => { let _ = reply.send(engine.reload(rules, &mut out)); city = c; }
                    Some(EngineCommand::ActiveAlerts { reply }) => { let _ = reply.send(engine.active_alerts()); }
                    Some(EngineCommand::WithActiveAlerts { with }) => with(engine.active_alerts()),
                    Some(EngineCommand::Exercise { reply, .. }) => {
                        let _ = reply.send(Err(watchfloor_engine::EngineError::Exercise("this test stand-in runs no exercises".into())));
                    }
                    None => return,
                }
            }
            if !out.transitions.is_empty() {
                observer.on_transitions(&out.transitions);
                out.transitions.clear();
            }
        }
    });
    let state = AppState {
        hub: hub.clone(),
        accounts: Arc::new(accounts()),
        commands: commands_tx,
        rules_dir: rules_dir.to_path_buf(),
        indicators_dir: None,
        stats: Arc::new(PipelineStats::default()),
    };
    Harness { feed, state, hub }
}

impl Harness {
    /// Feeds readings and returns once the engine processed them and the hub saw the
    /// result.
    pub async fn feed(&self, lines: Vec<String>) {
        self.feed_received(lines.into_iter().map(|l| (l, None)).collect())
            .await;
    }

    /// Feeds lines received at the given times (refusals are counted, not a panic).
    pub async fn feed_received(&self, lines: Vec<(String, Option<i64>)>) {
        let (done, processed) = tokio::sync::oneshot::channel();
        self.feed.send((lines, done)).await.unwrap();
        processed.await.unwrap();
    }

    /// A request as `who`: the status and the body's bytes.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        who: &str,
        body: Body,
    ) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer token-{who}"))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = watchfloor_server::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let (status, bytes) = self
            .request(method, path, who, Body::from(body.to_string()))
            .await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A GET's status and body as text (CSV, NDJSON).
    pub async fn get_text(&self, path: &str, who: &str) -> (StatusCode, String) {
        let (status, bytes) = self.request("GET", path, who, Body::empty()).await;
        (status, String::from_utf8(bytes).unwrap())
    }

    /// A GET's body as text, asserting a 200.
    pub async fn text(&self, path: &str, who: &str) -> String {
        let (status, text) = self.get_text(path, who).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        text
    }
}

pub fn camera(source: &str, ts: i64, event: &str, confidence: f64, plate: &str) -> String {
    json!({"source": source, "kind": "camera", "ts": ts, "event": event, "confidence": confidence, "attrs": {"plate": plate}}).to_string()
}

pub fn cod(source: &str, ts: i64, value: f64) -> String {
    json!({"source": source, "kind": "discharge", "ts": ts, "values": {"cod": value}}).to_string()
}

/// Fires in Long Hòa (CT-CAM-01, district Bình Thủy) and Tân An (CT-CAM-21, Ninh Kiều).
pub async fn two_fires(h: &Harness) -> (String, String) {
    h.feed(vec![
        camera("CT-CAM-01", T0 + 1_000, "fire_smoke", 0.95, "65A-123.45"),
        camera("CT-CAM-21", T0 + 2_000, "fire_smoke", 0.9, "65B-999.99"),
    ])
    .await;
    let alerts = h.hub.alerts();
    let id = |key: &str| {
        alerts
            .iter()
            .find(|a| a.key == key)
            .unwrap()
            .alert_id
            .clone()
    };
    (id("CT-CAM-01"), id("CT-CAM-21"))
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn serve(h: &Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(watchfloor_server::serve(
        h.state.clone(),
        listener,
        std::future::pending(),
    ));
    format!("ws://{addr}/ws")
}

pub async fn connect(url: &str, who: &str) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        json!({"op": "auth", "token": format!("token-{who}")}).to_string(),
    ))
    .await
    .unwrap();
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws
}

/// The next message that is not a heartbeat.
pub async fn next(ws: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] != "heartbeat" {
                return v;
            }
        }
    }
}

/// Messages until none arrives for 300 ms.
pub async fn drain(ws: &mut Socket) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), ws.next()).await
    {
        out.push(serde_json::from_str(&text).unwrap());
    }
    out
}

/// A request with exactly these headers (no bearer token added).
pub async fn raw(h: &Harness, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = Request::builder().uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = watchfloor_server::router(h.state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
