//! Security hardening of the server's inputs (issue 17), each check a finding of the probe:
//! the comment storm (bodies, comment length and count bounded, the alert record stays
//! small), malformed and oversized action bodies (400/413 with a JSON error), a second
//! acknowledgement (409, the first author stands), free-text assignments (422), bogus
//! filters (400), the write rate limit (429 with `Retry-After`), refused requests in the
//! audit log, `/metrics` behind its token or on its own address, a slowloris client closed
//! within the header timeout, and WebSocket refusals with close codes and reasons, and a
//! resume token of another server run answered with a fresh snapshot.

#[path = "server_support/mod.rs"]
mod server_support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use watchfloor_server::limits;

#[tokio::test]
async fn the_comment_storm_is_bounded() {
    let h = harness(&shipped_rules());
    let (long_hoa, _) = two_fires(&h).await;
    let path = format!("/api/alerts/{long_hoa}/comment");
    // The probe's comments of ~1.9 MB: refused before they are read.
    let huge = "x".repeat(1_900_000);
    let (status, body) = h
        .request(
            "POST",
            &path,
            "city-operator",
            Body::from(json!({"text": huge}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    // Under the body limit but over the comment limit.
    let long = "ư".repeat(limits::MAX_COMMENT_CHARS + 1);
    let (status, body) = h
        .call("POST", &path, "city-operator", json!({"text": long}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A dashboard watching: each comment reaches it as the change, not the alert's past.
    let url = serve(&h).await;
    let mut ws = connect(&url, "admin").await;
    ws.send(Message::Text(
        json!({"op": "subscribe", "channel": "alerts"}).to_string(),
    ))
    .await
    .unwrap();
    let snapshot = next(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let held = snapshot["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert_id"] == long_hoa.as_str())
        .unwrap()["history"]
        .as_array()
        .unwrap()
        .len();
    // The most comments of the most length an alert takes, then a 409.
    let longest = "ư".repeat(limits::MAX_COMMENT_CHARS);
    for n in 0..limits::MAX_COMMENTS_PER_ALERT {
        let (status, body) = h
            .call("POST", &path, "city-operator", json!({"text": longest}))
            .await;
        assert_eq!(status, StatusCode::OK, "comment {n}: {body}");
    }
    let (status, body) = h
        .call("POST", &path, "city-operator", json!({"text": "one more"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let mut deltas = Vec::new();
    while deltas.len() < limits::MAX_COMMENTS_PER_ALERT {
        let m = next(&mut ws).await;
        if m["type"] == "delta" && m["data"]["alert_id"] == long_hoa.as_str() {
            deltas.push(m);
        }
    }
    for (n, d) in deltas.iter().enumerate() {
        let lines = d["data"]["history"].as_array().unwrap();
        assert_eq!(lines.len(), 1, "comment {n}: one history line");
        assert_eq!(lines[0]["event"], "commented");
        assert_eq!(d["data"]["history_from"], held + n, "comment {n}");
        let size = d.to_string().len();
        assert!(size < 16 * 1024, "comment {n}: a delta of {size} bytes");
    }
    // Stated bound: an alert's record, with its history, stays under 1 MiB (the probe's
    // alert weighed 30 MB), so a dashboard's snapshot of it does too.
    let (status, record) = h
        .request(
            "GET",
            &format!("/api/alerts/{long_hoa}"),
            "admin",
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(record.len() < 1 << 20, "{} bytes", record.len());
}

#[tokio::test]
async fn action_bodies_assignments_and_filters_are_checked() {
    let h = harness(&shipped_rules());
    let (long_hoa, tan_an) = two_fires(&h).await;
    let ack = format!("/api/alerts/{long_hoa}/ack");
    for bad in ["{\"note\": ", "{\"note\": 5}", "{\"nope\": 1}", "[1,2]"] {
        let (status, body) = h
            .request("POST", &ack, "city-operator", Body::from(bad))
            .await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let ten_mb = format!("{{\"note\": \"{}\"}}", "n".repeat(10 << 20));
    let (status, _) = h
        .request("POST", &ack, "city-operator", Body::from(ten_mb))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = h
        .call(
            "POST",
            &ack,
            "city-operator",
            json!({"note": "n".repeat(limits::MAX_NOTE_CHARS + 1)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The first acknowledgement stands.
    let (status, a) = h
        .call(
            "POST",
            &ack,
            "long-hoa-operator",
            json!({"note": "crew sent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (status, body) = h
        .call("POST", &ack, "city-operator", json!({"note": "mine"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("long-hoa-operator"),
        "{body}"
    );
    let (_, a) = h
        .call(
            "GET",
            &format!("/api/alerts/{long_hoa}"),
            "admin",
            Value::Null,
        )
        .await;
    assert_eq!(a["acknowledged"]["by"], "long-hoa-operator");
    assert_eq!(a["acknowledged"]["note"], "crew sent");
    // Assignments: an account or role that may act on the alert, nothing else.
    let assign = format!("/api/alerts/{long_hoa}/assign");
    for (to, status) in [
        ("fire brigade 3", StatusCode::UNPROCESSABLE_ENTITY),
        ("tan-an-operator", StatusCode::UNPROCESSABLE_ENTITY), // another commune's
        ("long-hoa-viewer", StatusCode::UNPROCESSABLE_ENTITY), // may not act
        ("long-hoa-operator", StatusCode::OK),
        ("operator", StatusCode::OK), // a role
    ] {
        let (got, body) = h
            .call("POST", &assign, "city-operator", json!({"to": to}))
            .await;
        assert_eq!(got, status, "{to}: {body}");
    }
    let _ = tan_an;
    // Unknown paths and methods: JSON too.
    for (method, path, status) in [
        ("GET", "/api/nope", StatusCode::NOT_FOUND),
        ("DELETE", "/api/alerts", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let (got, body) = h.call(method, path, "admin", Value::Null).await;
        assert_eq!(got, status, "{method} {path}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
    // Filters: an unknown value or parameter is a 400 with a JSON error.
    for path in [
        "/api/alerts?state=bogus",
        "/api/alerts?severity=apocalyptic",
        "/api/alerts?bogus=1",
        "/api/alerts?limit=many",
        "/api/stations?kind=lava",
        "/api/kpis?nope=1",
        "/api/quality?nope=1",
        "/api/reports/daily?nope=1",
    ] {
        let (status, body) = h.call("GET", path, "admin", Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn writes_are_rate_limited_and_refusals_audited() {
    let h = harness(&shipped_rules());
    let (long_hoa, tan_an) = two_fires(&h).await;
    // Refusals: no token, a viewer acting, another commune's alert, an integrator reload.
    let (status, _) = raw(&h, "/api/alerts", &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/ack"),
            "long-hoa-viewer",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{tan_an}/ack"),
            "long-hoa-operator",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .call("POST", "/api/rules/reload", "integrator", json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let audit = h.text("/api/audit", "admin").await;
    let refused: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["action"] == "refused")
        .collect();
    let has = |by: &str, target: &str, status: u16| {
        refused.iter().any(|l| {
            l["by"] == by
                && l["target"].as_str().unwrap().contains(target)
                && l["detail"]["status"] == status
                && l["detail"]["why"].as_str().is_some_and(|w| !w.is_empty())
        })
    };
    assert!(has("anonymous", "GET /api/alerts", 401), "{refused:?}");
    assert!(has("long-hoa-viewer", &long_hoa, 403), "{refused:?}");
    assert!(has("long-hoa-operator", &tan_an, 404), "{refused:?}");
    assert!(
        has("integrator", "POST /api/rules/reload", 403),
        "{refused:?}"
    );

    // The write bucket: a burst, then 429 with Retry-After (refusals count too).
    let mut limited = None;
    for n in 0..(limits::WRITE_BURST as usize + 10) {
        let (status, body) = h
            .call(
                "POST",
                "/api/alerts/no-such-alert/comment",
                "city-operator",
                json!({"text": "x"}),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((n, body));
            break;
        }
    }
    let (n, body) = limited.expect("a 429 after the burst");
    assert!(n >= limits::WRITE_BURST as usize - 5, "limited after {n}");
    assert!(
        body["error"].as_str().unwrap().contains("too many"),
        "{body}"
    );
    // Another account is not limited by it.
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/comment"),
            "long-hoa-operator",
            json!({"text": "ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = h.text("/metrics", "admin").await;
    assert!(
        metrics.contains("watchfloor_http_refused_total{status=\"429\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_behind_a_token_or_elsewhere() {
    let h = harness(&shipped_rules());
    h.hub
        .set_metrics_access(watchfloor_server::hub::MetricsAccess::Token(
            watchfloor_server::token_hash_hex("scrape-me"),
        ));
    let (status, _) = raw(&h, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = raw(&h, "/metrics", &[("authorization", "Bearer token-admin")]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an account's token is not the scrape token"
    );
    let response = tower::ServiceExt::oneshot(
        watchfloor_server::router(h.state.clone()),
        axum::http::Request::builder()
            .uri("/metrics")
            .header("authorization", "Bearer scrape-me")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let h = harness(&shipped_rules());
    h.hub
        .set_metrics_access(watchfloor_server::hub::MetricsAccess::Elsewhere);
    let (status, _) = raw(&h, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = tower::ServiceExt::oneshot(
        watchfloor_server::metrics_router(h.state.clone()),
        axum::http::Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A client that never finishes its headers is closed within the header timeout.
#[tokio::test]
async fn a_slowloris_client_is_closed() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    let address = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    let started = Instant::now();
    // One that sends nothing at all, and one that never finishes its headers.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let limit = limits::HEADER_TIMEOUT + Duration::from_secs(5);
    let read = tokio::time::timeout(limit, async {
        loop {
            match slow.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 answer, then the close
            }
        }
    })
    .await;
    assert!(read.is_ok(), "still open after {limit:?}");
    let idle_read = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match idle.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        idle_read.is_ok(),
        "an idle connection is closed within the header timeout too"
    );
    let took = started.elapsed();
    assert!(
        took >= limits::HEADER_TIMEOUT - Duration::from_millis(500),
        "{took:?}"
    );
    // The server still answers others.
    let mut ok = tokio::net::TcpStream::connect(&address).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

async fn close_of(ws: &mut Socket) -> (Value, Option<(u16, String)>) {
    let mut error = Value::Null;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => error = serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (
                    error,
                    frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                )
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_refusals_say_why_and_an_old_resume_token_gets_a_snapshot() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    // An unknown token: 4401.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::Text(
        json!({"op": "auth", "token": "nope"}).to_string(),
    ))
    .await
    .unwrap();
    let (error, close) = close_of(&mut ws).await;
    assert_eq!(close, Some((4401, "unknown token".into())), "{error}");
    assert_eq!(error["code"], 4401);
    // Not an authentication first: 4400.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::Text(json!({"op": "ping"}).to_string()))
        .await
        .unwrap();
    let (_, close) = close_of(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(4400));
    let audit = h.text("/api/audit", "admin").await;
    assert!(audit.contains("\"target\":\"WS /ws\""), "{audit}");

    // A resume token counted by another server run: a snapshot, not a resume.
    two_fires(&h).await;
    let mut ws = connect(&url, "admin").await;
    ws.send(Message::Text(
        json!({"op": "subscribe", "channel": "alerts", "since": 1, "epoch": "another-run"})
            .to_string(),
    ))
    .await
    .unwrap();
    let first = next(&mut ws).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    // The same position in this run's epoch resumes.
    let epoch = h.hub.epoch().to_string();
    ws.send(Message::Text(
        json!({"op": "subscribe", "channel": "alerts", "since": 1, "epoch": epoch}).to_string(),
    ))
    .await
    .unwrap();
    let resumed = next(&mut ws).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
}

/// Each subscription is answered with a snapshot: a socket asking again and again is held to
/// its bucket (an `error` with `retry_after`, audited), and the socket stays open.
#[tokio::test]
async fn websocket_subscriptions_are_rate_limited() {
    let h = harness(&shipped_rules());
    two_fires(&h).await;
    let url = serve(&h).await;
    let mut ws = connect(&url, "admin").await;
    let burst = limits::SUBSCRIBE_BURST as usize;
    for _ in 0..=burst {
        ws.send(Message::Text(
            json!({"op": "subscribe", "channel": "alerts"}).to_string(),
        ))
        .await
        .unwrap();
    }
    let mut snapshots = 0;
    let refused = loop {
        let m = next(&mut ws).await;
        match m["type"].as_str() {
            Some("snapshot") => snapshots += 1,
            Some("error") => break m,
            _ => {}
        }
    };
    assert_eq!(snapshots, burst, "{refused}");
    assert!(refused["retry_after"].as_u64().unwrap() >= 1, "{refused}");
    assert_eq!(refused["channel"], "alerts", "{refused}");
    ws.send(Message::Text(json!({"op": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "pong", "the socket stays open");
    let audit = h.text("/api/audit", "admin").await;
    assert!(audit.contains("\"target\":\"WS subscribe\""), "{audit}");
}
