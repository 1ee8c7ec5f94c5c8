//! The command-centre server's edges, through the real HTTP and WebSocket server: a client
//! that fails to authenticate (wrong token, another message first, nothing at all) gets an
//! error and is closed without ever counting as connected; the stations channel's snapshot
//! and deltas follow the account's scope and filter and mask personal data for roles not
//! entitled to it; an engine that is gone, silent or cannot record an action makes the
//! acting endpoints answer 503 with a JSON reason while the read-only ones keep serving.

mod server_support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use watchfloor_engine::EngineError;
use watchfloor_pipeline::EngineCommand;

use server_support::*;

/// What the server does with a socket that sends `first` (or nothing) before authenticating:
/// the error message it gets and how long it took; fails unless the server then closes it.
async fn refused(url: &str, first: Option<Message>) -> (Value, Duration) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let started = Instant::now();
    if let Some(m) = first {
        ws.send(m).await.unwrap();
    }
    // The first text frame, waited for longer than the server's 10 s authentication timeout.
    let error = loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an answer within 20 s");
        match frame {
            Some(Ok(Message::Text(text))) => break serde_json::from_str::<Value>(&text).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("closed without an error message: {other:?}"),
        }
    };
    let answered = started.elapsed();
    // The server closes: a close frame or the end of the stream, nothing else.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => panic!("after a refusal: {t}"),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the refused socket was left open");
    (error, answered)
}

async fn metric(url: &str, name: &str) -> f64 {
    let http = url.replace("ws://", "http://").replace("/ws", "/metrics");
    let text = reqwest_free_get(&http).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// A plain HTTP/1.1 GET over a TCP socket (the server closes after one answer).
async fn reqwest_free_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    tcp.write_all(
        format!("GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_authenticate_gets_an_error_and_is_closed() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    // Each refusal says why, with its close code: 4400 not an authentication, 4401 an
    // unknown token, 4408 none in time.
    let auth_error = |v: &Value| {
        v["type"] == "error"
            && matches!(v["code"].as_u64(), Some(4400 | 4401 | 4408))
            && !v["message"].as_str().unwrap().is_empty()
    };

    // The silent client, started first: the others run while it waits out its 10 s.
    let silent = tokio::spawn({
        let url = url.clone();
        async move { refused(&url, None).await }
    });
    let cases = [
        (
            "an unknown token",
            json!({"op": "auth", "token": "token-nobody"}).to_string(),
        ),
        (
            "a token with the wrong case",
            json!({"op": "auth", "token": "TOKEN-admin"}).to_string(),
        ),
        (
            "an empty token",
            json!({"op": "auth", "token": ""}).to_string(),
        ),
        (
            "a subscription before authenticating",
            json!({"op": "subscribe", "channel": "alerts"}).to_string(),
        ),
        (
            "an auth message without a token",
            json!({"op": "auth"}).to_string(),
        ),
        ("text that is not JSON", "hello".to_string()),
    ];
    for (what, text) in cases {
        let (error, _) = refused(&url, Some(Message::Text(text))).await;
        assert!(auth_error(&error), "{what}: {error}");
    }
    let (error, _) = refused(
        &url,
        Some(Message::Binary(
            b"{\"op\":\"auth\",\"token\":\"token-admin\"}".to_vec(),
        )),
    )
    .await;
    assert!(auth_error(&error), "a binary frame: {error}");

    let (error, waited) = silent.await.unwrap();
    assert!(auth_error(&error), "a silent client: {error}");
    assert_eq!(error["code"], 4408, "{error}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "a silent client is dropped after the 10 s authentication timeout, not after {waited:?}"
    );
    assert_eq!(
        metric(&url, "watchfloor_ws_clients").await,
        0.0,
        "no refused client counted"
    );

    // The right token still works, with surrounding blanks trimmed.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::Text(
        json!({"op": "auth", "token": " token-admin\n"}).to_string(),
    ))
    .await
    .unwrap();
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["account"]["name"], "admin", "{welcome}");
    assert_eq!(metric(&url, "watchfloor_ws_clients").await, 1.0);
}

async fn subscribe(ws: &mut Socket, channel: &str, filter: Value) -> Value {
    ws.send(Message::Text(
        json!({"op": "subscribe", "channel": channel, "filter": filter}).to_string(),
    ))
    .await
    .unwrap();
    let snapshot = next(ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    snapshot
}

fn stations_of(message: &Value) -> Vec<(String, String)> {
    let items: Vec<&Value> = match message["data"].as_array() {
        Some(list) => list.iter().collect(),
        None => vec![&message["data"]],
    };
    items
        .iter()
        .map(|s| {
            (
                s["station"].as_str().unwrap().to_string(),
                s["attrs"]["plate"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_stations_channel_follows_scope_and_filter_and_masks_plates() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    // Long Hòa: CT-CAM-01; Tân An: CT-CAM-21.
    h.feed(vec![
        camera("CT-CAM-01", T0 + 1_000, "wrong_way", 0.9, "65A-111.11"),
        camera("CT-CAM-21", T0 + 2_000, "wrong_way", 0.9, "65B-222.22"),
    ])
    .await;

    let mut operator = connect(&url, "long-hoa-operator").await;
    let mut viewer = connect(&url, "long-hoa-viewer").await;
    let mut admin = connect(&url, "admin").await;
    let mut one_station = connect(&url, "city-operator").await;
    assert_eq!(
        stations_of(&subscribe(&mut operator, "stations", json!({})).await),
        [("CT-CAM-01".to_string(), "65A-111.11".to_string())],
        "a ward operator: the ward's station with its plate"
    );
    assert_eq!(
        stations_of(&subscribe(&mut viewer, "stations", json!({})).await),
        [("CT-CAM-01".to_string(), "***".to_string())],
        "a ward viewer: the ward's station, plate masked"
    );
    let all = stations_of(&subscribe(&mut admin, "stations", json!({})).await);
    assert!(
        all.contains(&("CT-CAM-01".into(), "65A-111.11".into()))
            && all.contains(&("CT-CAM-21".into(), "65B-222.22".into())),
        "the admin sees both: {all:?}"
    );
    assert_eq!(
        stations_of(
            &subscribe(
                &mut one_station,
                "stations",
                json!({"station": "CT-CAM-21"})
            )
            .await
        ),
        [("CT-CAM-21".to_string(), "65B-222.22".to_string())],
        "a station filter"
    );

    // Deltas: Tân An first, then Long Hòa; the ward accounts' first delta is Long Hòa's.
    h.feed(vec![camera(
        "CT-CAM-21",
        T0 + 3_000,
        "wrong_way",
        0.9,
        "65B-333.33",
    )])
    .await;
    h.feed(vec![camera(
        "CT-CAM-01",
        T0 + 4_000,
        "wrong_way",
        0.9,
        "65A-444.44",
    )])
    .await;
    let d = next(&mut operator).await;
    assert_eq!(d["type"], "delta", "{d}");
    assert_eq!(d["channel"], "stations", "{d}");
    assert_eq!(
        stations_of(&d),
        [("CT-CAM-01".to_string(), "65A-444.44".to_string())]
    );
    let d = next(&mut viewer).await;
    assert_eq!(
        stations_of(&d),
        [("CT-CAM-01".to_string(), "***".to_string())],
        "{d}"
    );
    assert!(
        !d.to_string().contains("65A-444.44"),
        "no plate anywhere in a viewer's delta: {d}"
    );
    let d = next(&mut one_station).await;
    assert_eq!(
        stations_of(&d),
        [("CT-CAM-21".to_string(), "65B-333.33".to_string())]
    );
    let (a, b) = (next(&mut admin).await, next(&mut admin).await);
    assert_eq!(
        [stations_of(&a), stations_of(&b)].concat(),
        [
            ("CT-CAM-21".to_string(), "65B-333.33".to_string()),
            ("CT-CAM-01".to_string(), "65A-444.44".to_string())
        ],
        "the admin gets both, in order"
    );
    assert_eq!(
        b["seq"].as_u64(),
        a["seq"].as_u64().map(|s| s + 1),
        "numbered without a gap"
    );
    // Nothing else is on its way to the filtered client.
    let rest = drain(&mut one_station).await;
    assert!(rest.iter().all(|m| m["type"] == "heartbeat"), "{rest:?}");

    // An unknown kind in a filter is an error on the socket, which stays usable.
    viewer
        .send(Message::Text(
            json!({"op": "subscribe", "channel": "stations", "filter": {"kind": "submarine"}})
                .to_string(),
        ))
        .await
        .unwrap();
    let e = next(&mut viewer).await;
    assert_eq!(e["type"], "error", "{e}");
    assert!(e["message"].as_str().unwrap().contains("submarine"), "{e}");
    viewer
        .send(Message::Text(json!({"op": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next(&mut viewer).await["type"], "pong");
}

/// The harness's state with its engine replaced by `engine`, which gets every command.
fn with_engine(h: &Harness, engine: impl FnOnce(mpsc::Receiver<EngineCommand>)) -> Harness {
    let (tx, rx) = mpsc::channel(4);
    engine(rx);
    let mut state = h.state.clone();
    state.commands = tx;
    Harness {
        feed: h.feed.clone(),
        state,
        hub: h.hub.clone(),
    }
}

#[tokio::test]
async fn acting_without_a_working_engine_answers_503_with_a_reason() {
    let h = harness(&shipped_rules());
    let (fire, _) = two_fires(&h).await;
    let ack = format!("/api/alerts/{fire}/ack");
    let resolve = format!("/api/alerts/{fire}/resolve");
    let body = json!({"note": "on my way"});

    // Gone: the engine's command channel is closed.
    let gone = with_engine(&h, drop);
    // Silent: it takes commands and drops them unanswered.
    let silent = with_engine(&h, |mut rx| {
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
    });
    // Unable: it cannot make the action durable (a full or failing log).
    let unable = with_engine(&h, |mut rx| {
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                match c {
                    EngineCommand::Acknowledge { reply, .. }
                    | EngineCommand::Resolve { reply, .. } => {
                        let _ = reply.send(Err(EngineError::Unavailable("the log is full".into())));
                    }
                    _ => {}
                }
            }
        });
    });
    for (engine, reason) in [
        (&gone, "the engine is not running"),
        (&silent, "the engine did not answer"),
        (&unable, "try again: the log is full"),
    ] {
        for path in [&ack, &resolve] {
            let (status, answer) = engine.call("POST", path, "admin", body.clone()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {answer}");
            let message = answer["error"]
                .as_str()
                .unwrap_or_else(|| panic!("a JSON reason: {answer}"));
            assert!(
                message.contains(reason),
                "{path}: `{message}` gives the reason `{reason}`"
            );
        }
        // Reading still works, and nothing changed.
        let (status, alert) = engine
            .call("GET", &format!("/api/alerts/{fire}"), "admin", Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(alert["state"], "firing", "{alert}");
        assert!(alert["acknowledged"].is_null(), "{alert}");
    }
    // Held up: it takes the command but cannot get to it (an output it waits for is
    // stuck). The answer comes after 10 s, not never, and says why; /healthz says so too.
    let held = with_engine(&h, |mut rx| {
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some(c) = rx.recv().await {
                kept.push(c);
            }
        });
    });
    held.state.stats.set_output_stuck(
        "mqtt:ioc/alerts",
        Some("output failing for 42 s: broker unreachable".into()),
    );
    let started = std::time::Instant::now();
    let (status, answer) = held.call("POST", &ack, "admin", body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("did not answer within 10 s") && message.contains("broker unreachable"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let (status, health) = held.call("GET", "/healthz", "admin", Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert!(
        health["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("output stuck: mqtt:ioc/alerts: output failing"),
        "{health}"
    );
    held.state.stats.set_output_stuck("mqtt:ioc/alerts", None);
    let (status, _) = held.call("GET", "/healthz", "admin", Value::Null).await;
    assert_eq!(status, StatusCode::OK);

    // The real engine, still there, takes the same acknowledgement.
    let (status, alert) = h.call("POST", &ack, "admin", body).await;
    assert_eq!(status, StatusCode::OK, "{alert}");
}
