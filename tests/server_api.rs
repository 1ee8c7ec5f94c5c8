//! The command-centre server against a real engine running the shipped rule packs: REST
//! API, the authorization matrix (roles × scopes, masked personal data), rule reloads
//! (a broken set is rejected and changes nothing; a valid one keeps unchanged rules'
//! state), and the WebSocket protocol (snapshot then deltas, filters, scopes, resume after
//! a dropped connection without a gap or a duplicate).

mod server_support;

#[path = "support/fs.rs"]
mod fs_support;
use fs_support::copy_dir;
use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use server_support::*;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;
use watchfloor_pipeline::PipelineObserver;

#[tokio::test]
async fn authorization_matrix_every_role_and_scope() {
    let h = harness(&shipped_rules());
    let (long_hoa, tan_an) = two_fires(&h).await;
    // (account, sees Long Hòa, sees Tân An, may act, sees plates, is admin)
    let matrix = [
        ("admin", true, true, true, true, true),
        ("city-operator", true, true, true, true, false),
        ("binh-thuy-viewer", true, false, false, false, false),
        ("long-hoa-operator", true, false, true, true, false),
        ("long-hoa-viewer", true, false, false, false, false),
        ("tan-an-operator", false, true, true, true, false),
        ("integrator", true, true, false, false, false),
        ("ninh-kieu-operator", false, true, true, true, false),
        ("cluster-operator", true, true, true, true, false),
        ("long-hoa-commune-viewer", true, false, false, false, false),
    ];
    for (who, sees_lh, sees_ta, acts, plates, admin) in matrix {
        let (status, list) = h.call("GET", "/api/alerts", who, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        let keys: BTreeSet<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect();
        let mut want = BTreeSet::new();
        if sees_lh {
            want.insert("CT-CAM-01".to_string());
        }
        if sees_ta {
            want.insert("CT-CAM-21".to_string());
        }
        assert_eq!(keys, want, "{who}: alerts outside the scope must not show");
        for (id, visible) in [(&long_hoa, sees_lh), (&tan_an, sees_ta)] {
            let (status, _) = h
                .call("GET", &format!("/api/alerts/{id}"), who, Value::Null)
                .await;
            assert_eq!(
                status,
                if visible {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
                "{who} get {id}"
            );
            let (status, _) = h
                .call(
                    "POST",
                    &format!("/api/alerts/{id}/comment"),
                    who,
                    json!({"text": "seen"}),
                )
                .await;
            let want = match (visible, acts) {
                (false, _) => StatusCode::NOT_FOUND,
                (true, false) => StatusCode::FORBIDDEN,
                (true, true) => StatusCode::OK,
            };
            assert_eq!(status, want, "{who} comment {id}");
        }
        let (status, station) = h
            .call("GET", "/api/stations/CT-CAM-01", who, Value::Null)
            .await;
        if sees_lh {
            assert_eq!(status, StatusCode::OK, "{who}");
            let plate = station["latest"]["attrs"]["plate"].as_str().unwrap();
            assert_eq!(plate == "65A-123.45", plates, "{who}: plate {plate}");
            assert_eq!(plate == "***", !plates, "{who}: plate {plate}");
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "{who}");
        }
        let (status, _) = h.call("POST", "/api/rules/reload", who, Value::Null).await;
        assert_eq!(status == StatusCode::OK, admin, "{who} reload: {status}");
        let (status, _) = h.call("GET", "/api/audit", who, Value::Null).await;
        assert_eq!(status == StatusCode::OK, admin, "{who} audit: {status}");
        // KPIs: only zones inside the scope (computed now; the harness has no timer).
        h.hub.refresh_kpis();
        let (status, kpis) = h.call("GET", "/api/kpis", who, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{who} kpis");
        let zones = kpis.as_array().unwrap();
        let want = match who {
            "long-hoa-operator"
            | "long-hoa-viewer"
            | "tan-an-operator"
            | "long-hoa-commune-viewer" => 1,
            _ => 2,
        };
        assert!(zones.len() >= want, "{who} sees KPIs: {}", zones.len());
        for z in zones {
            let zone = z["zone"].as_str().unwrap();
            let ok = match who {
                "long-hoa-operator" | "long-hoa-viewer" | "long-hoa-commune-viewer" => {
                    zone == "long_hoa"
                }
                "cluster-operator" => zone == "long_hoa" || zone == "tan_an",
                "tan-an-operator" => zone == "tan_an",
                "binh-thuy-viewer" => z["district"] == "binh_thuy",
                "ninh-kieu-operator" => z["district"] == "ninh_kieu",
                _ => true,
            };
            assert!(ok, "{who} sees KPIs of {zone}");
        }
    }
    // No token, or a wrong one.
    let (status, _) = h.call("GET", "/api/alerts", "nobody", Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn acknowledge_resolve_assign_and_the_alert_history() {
    let h = harness(&shipped_rules());
    let (long_hoa, _) = two_fires(&h).await;
    let (status, a) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/ack"),
            "long-hoa-operator",
            json!({"note": "crew sent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a["state"], "acknowledged");
    assert_eq!(a["acknowledged"]["by"], "long-hoa-operator");
    let (status, a) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/assign"),
            "city-operator",
            json!({"to": "fire brigade 3"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "free text is not an assignee: {a}"
    );
    let (status, a) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/assign"),
            "city-operator",
            json!({"to": "long-hoa-operator"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a["assignee"], "long-hoa-operator");
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/resolve"),
            "long-hoa-operator",
            json!({"note": "out"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The engine's resolved transition reaches the hub after the answer: wait for it.
    let mut a = Value::Null;
    for _ in 0..200 {
        a = h
            .call(
                "GET",
                &format!("/api/alerts/{long_hoa}"),
                "admin",
                Value::Null,
            )
            .await
            .1;
        if a["state"] == "resolved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a["state"], "resolved");
    let events: Vec<&str> = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "fired",
            "acknowledged",
            "assigned",
            "resolved",
            "resolved by hand"
        ],
        "{a}"
    );
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/ack"),
            "admin",
            Value::Null,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a resolved alert cannot be acknowledged"
    );
    let (_, list) = h
        .call("GET", "/api/alerts?state=open", "admin", Value::Null)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, list) = h
        .call("GET", "/api/alerts?severity=critical", "admin", Value::Null)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let (status, _) = h
        .call(
            "GET",
            "/api/alerts?severity=catastrophic",
            "admin",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let audit = h.hub.audit_text();
    for action in ["acknowledge", "assign", "resolve"] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\"")),
            "{audit}"
        );
    }
    let (status, doc) = h
        .call("GET", "/api/openapi.json", "admin", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/alerts/{id}/ack"].is_object());
}

#[tokio::test]
async fn a_broken_reload_is_rejected_and_a_valid_one_keeps_unchanged_rules_state() {
    let dir = std::env::temp_dir().join(format!("watchfloor-server-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&shipped_rules(), &dir);
    let h = harness(&dir);
    // Four readings of an hour's six needed: COD 300 at CT-DIS-01 (Cmax 150) from 00:00.
    h.feed(
        (0..4)
            .map(|i| cod("CT-DIS-01", T0 + i * 300_000 + 1_000, 300.0))
            .collect(),
    )
    .await;

    std::fs::write(dir.join("broken.yaml"), "rules:\n  - id: oops\n    match: { kind: discharge }\n    condition: cod >\n    severity: major\n").unwrap();
    let (status, body) = h
        .call("POST", "/api/rules/reload", "admin", Value::Null)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["applied"], false);
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("broken.yaml:4"),
        "{body}"
    );

    // A valid change: the broken file becomes a new rule; the discharge rules are unchanged.
    std::fs::write(dir.join("broken.yaml"), "rules:\n  - id: extra_rule\n    match: { kind: camera, event: crowd }\n    aggregates: { c: max(confidence) }\n    condition: c > 0.99\n    severity: info\n").unwrap();
    let (status, body) = h
        .call("POST", "/api/rules/reload", "admin", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"]["added"], json!(["extra_rule"]));
    assert!(body["summary"]["kept"]
        .as_array()
        .unwrap()
        .contains(&json!("discharge_cod_hourly_mean")));

    // Two more readings and the hour closes: the alert needs all six, so the four from
    // before both reloads were kept.
    h.feed(
        (4..6)
            .map(|i| cod("CT-DIS-01", T0 + i * 300_000 + 1_000, 300.0))
            .collect(),
    )
    .await;
    h.feed(vec![cod("CT-DIS-01", T0 + 3_600_000 + 1_000, 300.0)])
        .await;
    let fired: Vec<_> = h
        .hub
        .alerts()
        .into_iter()
        .filter(|a| a.rule == "discharge_cod_hourly_mean")
        .collect();
    assert_eq!(fired.len(), 1, "the hourly mean over six readings fired");
    assert!(h.hub.audit_text().contains("reload rejected"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn websocket_snapshot_deltas_filters_scopes_and_resume_without_gap() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    two_fires(&h).await;

    // Snapshot first.
    let mut city = connect(&url, "city-operator").await;
    city.send(Message::Text(
        json!({"op": "subscribe", "channel": "alerts"}).to_string(),
    ))
    .await
    .unwrap();
    let snapshot = next(&mut city).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["data"].as_array().unwrap().len(), 2);
    let mut last = snapshot["seq"].as_u64().unwrap();

    // A ward operator filtered to critical alerts, and a ward viewer of Tân An.
    let mut ward = connect(&url, "long-hoa-operator").await;
    ward.send(Message::Text(
        json!({"op": "subscribe", "channel": "alerts", "filter": {"severity": "critical"}})
            .to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next(&mut ward).await["data"],
        json!([]),
        "no critical alert yet"
    );
    let mut tan_an = connect(&url, "tan-an-operator").await;
    tan_an
        .send(Message::Text(
            json!({"op": "subscribe", "channel": "alerts"}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut tan_an).await["data"].as_array().unwrap().len(), 1);

    // Deltas: wrong-way drivers in Long Hòa (CT-CAM-02) and, critical, smoke confirmed
    // next to CT-CAM-01 by a PM2.5 jump at CT-AIR-01.
    let air = |ts: i64, pm25: f64| {
        json!({"source": "CT-AIR-01", "kind": "air", "ts": ts, "values": {"pm25": pm25}})
            .to_string()
    };
    h.feed(vec![
        camera("CT-CAM-02", T0 + 60_000, "wrong_way", 0.95, "x"),
        air(T0 + 61_000, 15.0),
        air(T0 + 3 * 60_000, 15.0),
        air(T0 + 6 * 60_000, 180.0),
        // Closes the 15-minute window ending 00:10, 10 minutes after the fire (the quiet
        // cameras stop holding the watermark back after a minute).
        air(T0 + 11 * 60_000 + 1_000, 180.0),
    ])
    .await;
    let mut seen = BTreeSet::new();
    for m in drain(&mut city).await {
        assert_eq!(m["type"], "delta");
        let seq = m["seq"].as_u64().unwrap();
        assert_eq!(seq, last + 1, "consecutive sequence numbers");
        last = seq;
        seen.insert(m["data"]["alert_id"].as_str().unwrap().to_string());
    }
    let ward_deltas = drain(&mut ward).await;
    assert!(!ward_deltas.is_empty());
    assert!(
        ward_deltas
            .iter()
            .all(|m| m["data"]["severity"] == "critical" && m["data"]["ward"] == "long_hoa"),
        "{ward_deltas:?}"
    );
    assert!(ward_deltas
        .iter()
        .any(|m| m["data"]["rule"] == "fire_confirmed"));
    assert!(
        drain(&mut tan_an).await.is_empty(),
        "nothing from Long Hòa reaches Tân An"
    );

    // The city client drops; alerts change while it is away; it resumes from `last`.
    drop(city);
    let ids: Vec<String> = h
        .hub
        .alerts()
        .iter()
        .filter(|a| a.state != "resolved")
        .map(|a| a.alert_id.clone())
        .take(2)
        .collect();
    for id in &ids {
        let (status, _) = h
            .call(
                "POST",
                &format!("/api/alerts/{id}/ack"),
                "city-operator",
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    h.feed(vec![camera(
        "CT-CAM-03",
        T0 + 20 * 60_000,
        "road_flooding",
        0.9,
        "y",
    )])
    .await;
    let mut city = connect(&url, "city-operator").await;
    city.send(Message::Text(
        json!({"op": "subscribe", "channel": "alerts", "since": last}).to_string(),
    ))
    .await
    .unwrap();
    let resumed = next(&mut city).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    let missed = drain(&mut city).await;
    // Two acknowledgements, the road-flooding alert, and the wrong-way alert resolving
    // after its 10 quiet minutes (event time moved to 00:20).
    assert_eq!(missed.len(), 4, "{missed:?}");
    for m in &missed {
        let seq = m["seq"].as_u64().unwrap();
        assert_eq!(seq, last + 1, "no gap and no duplicate after the resume");
        last = seq;
        seen.insert(m["data"]["alert_id"].as_str().unwrap().to_string());
    }
    // Everything the hub holds reached the client: snapshot, deltas, resumed deltas.
    let all: BTreeSet<String> = h.hub.alerts().iter().map(|a| a.alert_id.clone()).collect();
    let first_two: BTreeSet<String> = snapshot["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seen.union(&first_two).cloned().collect::<BTreeSet<_>>(),
        all
    );

    // A resume point older than the replay buffer gets a fresh snapshot instead.
    let mut stale = connect(&url, "city-operator").await;
    stale
        .send(Message::Text(
            json!({"op": "subscribe", "channel": "alerts", "since": 0}).to_string(),
        ))
        .await
        .unwrap();
    // (Here `since: 0` is still inside the buffer: a resume. The stale case has its own
    // test, `a_resume_point_older_than_the_replay_buffer_gets_a_snapshot`.)
    assert_eq!(next(&mut stale).await["type"], "resumed");

    // KPIs arrive conflated for the scope; bad input gets an error, not a disconnect.
    ward.send(Message::Text(
        json!({"op": "subscribe", "channel": "kpis"}).to_string(),
    ))
    .await
    .unwrap();
    let kpis = next(&mut ward).await;
    assert_eq!(kpis["type"], "snapshot");
    assert!(
        kpis["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|z| z["zone"] == "long_hoa"),
        "{kpis}"
    );
    ward.send(Message::Text("{\"op\":\"launch\"}".into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ward).await["type"], "error");
    ward.send(Message::Text(json!({"op": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next(&mut ward).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_never_holds_up_the_stream_or_the_others() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    let mut stalled = connect(&url, "admin").await;
    stalled
        .send(Message::Text(
            json!({"op": "subscribe", "channel": "alerts"}).to_string(),
        ))
        .await
        .unwrap();
    let mut reader = connect(&url, "admin").await;
    reader
        .send(Message::Text(
            json!({"op": "subscribe", "channel": "alerts"}).to_string(),
        ))
        .await
        .unwrap();
    let first = next(&mut reader).await;
    assert_eq!(first["type"], "snapshot");
    let mut last = first["seq"].as_u64().unwrap();
    // The stalled client reads its snapshot (so its subscription is live), then nothing.
    assert_eq!(next(&mut stalled).await["type"], "snapshot");

    // The reading client reads concurrently, on its own task.
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < 6_000 {
            let m = next(&mut reader).await;
            if m["type"] == "delta" {
                assert_eq!(m["seq"].as_u64().unwrap(), last + 1);
                last += 1;
                got += 1;
            } else {
                panic!(
                    "the reading client was resynchronised: {} at seq {}",
                    m["type"], m["seq"]
                );
            }
        }
    });
    // 6,000 alert transitions (more than the 4,096-delta buffer) while `stalled` reads
    // nothing: publishing never waits for it.
    let started = std::time::Instant::now();
    for i in 0..6_000u64 {
        h.hub.on_transitions(&[watchfloor_model::AlertTransition {
            alert_id: format!("load-{i}"),
            rule: "camera_wrong_way".into(),
            key: "CT-CAM-02".into(),
            state: watchfloor_model::AlertState::Firing,
            severity: watchfloor_model::Severity::Minor,
            at: T0 + i as i64,
            window_start: T0,
            window_end: T0,
            value: 1.0,
            // 8 kB per alert: 48 MB in all, far more than the socket buffers hold.
            message: "x".repeat(8_000),
            labels: Default::default(),
        }]);
        // A steady stream the reading client can follow (it reads concurrently).
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let publishing = started.elapsed();
    // The reading client gets every delta, in order, none skipped.
    reading.await.unwrap();
    // The stalled one, reading at last, is either skipped ahead with a fresh snapshot or
    // was disconnected; it never gets a gap silently.
    let mut saw_resync = false;
    let mut disconnected = false;
    let mut previous: Option<u64> = None;
    loop {
        let message = match tokio::time::timeout(Duration::from_secs(2), stalled.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(_) => {
                disconnected = true;
                break;
            }
            Err(_) => break,
        };
        let Message::Text(text) = message else {
            disconnected = matches!(message, Message::Close(_));
            if disconnected {
                break;
            } else {
                continue;
            }
        };
        let m: Value = serde_json::from_str(&text).unwrap();
        match m["type"].as_str() {
            Some("snapshot") if m["resync"] == true => {
                saw_resync = true;
                previous = m["seq"].as_u64();
            }
            Some("delta") => {
                let seq = m["seq"].as_u64().unwrap();
                if let Some(p) = previous {
                    assert_eq!(seq, p + 1, "no silent gap");
                }
                previous = Some(seq);
            }
            _ => {}
        }
    }
    assert!(
        saw_resync || disconnected,
        "the stalled client was skipped ahead with a snapshot or dropped"
    );
    eprintln!("published 6,000 deltas in {publishing:?} with a stalled client connected");
}

#[tokio::test]
async fn metrics_expose_the_pipeline_and_checkpoint_counters() {
    let h = harness(&shipped_rules());
    let st = &h.state.stats;
    st.received
        .store(1_000, std::sync::atomic::Ordering::Relaxed);
    st.redelivered
        .store(7, std::sync::atomic::Ordering::Relaxed);
    st.checkpoints
        .store(3, std::sync::atomic::Ordering::Relaxed);
    st.checkpoint_bytes
        .store(123_456, std::sync::atomic::Ordering::Relaxed);
    st.checkpoint_serialize_us
        .store(12_500, std::sync::atomic::Ordering::Relaxed);
    st.checkpoint_write_us
        .store(40_000, std::sync::atomic::Ordering::Relaxed);
    st.wal_durable
        .store(999, std::sync::atomic::Ordering::Relaxed);
    let response = watchfloor_server::router(h.state.clone())
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for line in [
        "watchfloor_received_total 1000",
        "watchfloor_redelivered_total 7",
        "watchfloor_checkpoints_total 3",
        "watchfloor_checkpoint_bytes 123456",
        "watchfloor_checkpoint_serialize_seconds 0.012500",
        "watchfloor_checkpoint_write_seconds 0.040000",
        "watchfloor_wal_durable_sequence 999",
        "# TYPE watchfloor_checkpoint_bytes gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "`{line}` in /metrics:\n{text}"
        );
    }
}

#[tokio::test]
async fn alert_list_filters_order_and_the_reference_endpoints() {
    let h = harness(&shipped_rules());
    // Three detections in order: a fire (major) and a wrong-way driver (minor) in Long Hòa,
    // road flooding (major) in Tân An.
    h.feed(vec![
        camera("CT-CAM-01", T0 + 1_000, "fire_smoke", 0.95, "A"),
        camera("CT-CAM-02", T0 + 2_000, "wrong_way", 0.95, "B"),
        camera("CT-CAM-21", T0 + 3_000, "road_flooding", 0.95, "C"),
    ])
    .await;
    let keys = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("a list: {list}"))
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect()
    };
    let get = |path: &'static str| h.call("GET", path, "admin", Value::Null);
    let (status, all) = get("/api/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&all),
        ["CT-CAM-21", "CT-CAM-02", "CT-CAM-01"],
        "newest first"
    );
    for (path, want) in [
        ("/api/alerts?severity=major", vec!["CT-CAM-21", "CT-CAM-01"]),
        (
            "/api/alerts?severity=minor",
            vec!["CT-CAM-21", "CT-CAM-02", "CT-CAM-01"],
        ),
        ("/api/alerts?severity=critical", vec![]),
        ("/api/alerts?rule=camera_wrong_way", vec!["CT-CAM-02"]),
        ("/api/alerts?zone=long_hoa", vec!["CT-CAM-02", "CT-CAM-01"]),
        ("/api/alerts?kind=camera&limit=1", vec!["CT-CAM-21"]),
        ("/api/alerts?state=open&zone=tan_an", vec!["CT-CAM-21"]),
        ("/api/alerts?state=resolved", vec![]),
    ] {
        let (status, list) = h.call("GET", path, "admin", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(keys(&list), want, "{path}");
    }
    for path in ["/api/alerts?severity=bogus", "/api/alerts?kind=lava"] {
        let (status, body) = h.call("GET", path, "admin", Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }

    // Who am I, and no answer without a valid token.
    let (status, me) = h
        .call("GET", "/api/me", "long-hoa-operator", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            me["role"].as_str(),
            me["scope"]["level"].as_str(),
            me["scope"]["id"].clone()
        ),
        (Some("operator"), Some("commune"), json!(["long_hoa"])),
        "{me}"
    );
    for headers in [
        vec![],
        vec![("authorization", "Basic YWRtaW46YWRtaW4=")],
        vec![("authorization", "Bearer not-a-token")],
        vec![("authorization", "Bearer")],
    ] {
        let (status, _) = raw(&h, "/api/alerts", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
    }

    // Reference data: zones, rules, stations in scope.
    let (status, zones) = get("/api/zones").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        zones.to_string().contains("long_hoa") && zones.to_string().contains("tan_an"),
        "{zones}"
    );
    let (status, rules) = get("/api/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert!(rules.to_string().contains("camera_fire_smoke"), "{rules}");
    let (status, stations) = h
        .call("GET", "/api/stations", "long-hoa-operator", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = stations
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["id"]
                .as_str()
                .or(s["source"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        ids.contains(&"CT-CAM-01".to_string()) && !ids.contains(&"CT-CAM-21".to_string()),
        "a ward operator sees the ward's stations only: {ids:?}"
    );
}

#[tokio::test]
async fn kpis_of_a_scripted_ward_have_exact_values() {
    let h = harness(&shipped_rules());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Long Hòa: a fire (one major alert) and two traffic sensors reporting now.
    h.feed(vec![
        camera("CT-CAM-01", now - 1_000, "fire_smoke", 0.95, "A"),
        json!({"source": "CT-TR-01", "kind": "traffic", "ts": now, "values": {"speed": 20.0}})
            .to_string(),
        json!({"source": "CT-TR-02", "kind": "traffic", "ts": now, "values": {"speed": 45.0}})
            .to_string(),
    ])
    .await;
    h.hub.refresh_kpis();
    // The ward's sensors (cameras aside), as the registry places them.
    let (_, stations) = h
        .call("GET", "/api/stations?zone=long_hoa", "admin", Value::Null)
        .await;
    let sensors = stations
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] != "camera")
        .count();
    assert!(sensors >= 2, "{stations}");
    // Free-flow speeds from the registry file itself: CT-TR-01 50 km/h, CT-TR-02 60 km/h.
    let registry = std::fs::read_to_string(shipped_rules().join("city/stations.csv")).unwrap();
    let free = |id: &str| -> f64 {
        registry
            .lines()
            .find(|l| l.starts_with(&format!("{id},")))
            .and_then(|l| l.rsplit(',').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let congestion =
        ((1.0 - 20.0 / free("CT-TR-01")) * 100.0 + (1.0 - 45.0 / free("CT-TR-02")) * 100.0) / 2.0;
    assert!(
        (congestion - 42.5).abs() < 1e-9,
        "worked by hand: (60 + 25) / 2"
    );

    let (status, kpis) = h
        .call("GET", "/api/kpis", "long-hoa-operator", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let zones = kpis.as_array().unwrap();
    assert_eq!(zones.len(), 1, "{kpis}");
    assert_eq!(zones[0]["zone"], "long_hoa");
    assert_eq!(zones[0]["view"], "*", "every sector");
    // The shipped indicator set (indicators/default.yaml), by id.
    let value = |row: &Value, id: &str| -> Value {
        row["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no indicator {id} in {row}"))["value"]
            .clone()
    };
    let row = &zones[0];
    assert_eq!(value(row, "open_alerts"), 1.0, "{row}");
    assert_eq!(value(row, "open_critical_major"), 1.0, "{row}");
    let on_time = value(row, "stations_on_time").as_f64().unwrap();
    assert!(
        (on_time - 200.0 / sensors as f64).abs() < 1e-9,
        "2 of {sensors} on time: {on_time}"
    );
    let index = value(row, "congestion_index").as_f64().unwrap();
    assert!((index - congestion).abs() < 1e-9, "congestion {index}");
    assert_eq!(value(row, "discharge_compliance"), 100.0, "{row}");
    // Each indicator carries its history (one point so far).
    assert_eq!(
        row["history"]["open_alerts"].as_array().unwrap().len(),
        1,
        "{row}"
    );
    // The city counts the same alert.
    let (_, city) = h.call("GET", "/api/kpis", "admin", Value::Null).await;
    let city = city
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone"] == "city")
        .unwrap();
    assert_eq!(value(city, "open_critical_major"), 1.0);
}

#[tokio::test]
async fn a_resume_point_older_than_the_replay_buffer_gets_a_snapshot() {
    let h = harness(&shipped_rules());
    let url = serve(&h).await;
    // 4,200 alert changes: more than the 4,096 deltas the hub keeps for resumes.
    for i in 0..4_200u64 {
        h.hub.on_transitions(&[watchfloor_model::AlertTransition {
            alert_id: format!("churn-{}", i % 50),
            rule: "camera_wrong_way".into(),
            key: "CT-CAM-02".into(),
            state: if i % 2 == 0 {
                watchfloor_model::AlertState::Firing
            } else {
                watchfloor_model::AlertState::Resolved
            },
            severity: watchfloor_model::Severity::Minor,
            at: T0 + i as i64,
            window_start: T0,
            window_end: T0,
            value: 1.0,
            message: "wrong way".into(),
            labels: Default::default(),
        }]);
    }
    let subscribe = |since: u64| {
        Message::Text(json!({"op": "subscribe", "channel": "alerts", "since": since}).to_string())
    };
    // Seq 1 fell out of the buffer: not a partial replay, a fresh snapshot.
    let mut stale = connect(&url, "admin").await;
    stale.send(subscribe(1)).await.unwrap();
    let first = next(&mut stale).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    let current = first["seq"].as_u64().unwrap();
    assert!(current >= 4_200, "{first}");
    assert_eq!(
        first["data"].as_array().unwrap().len(),
        50,
        "every alert, once"
    );
    // A resume point inside the buffer replays exactly what was missed.
    let mut recent = connect(&url, "admin").await;
    recent.send(subscribe(current - 3)).await.unwrap();
    assert_eq!(next(&mut recent).await["type"], "resumed");
    let seqs: Vec<u64> = [
        next(&mut recent).await,
        next(&mut recent).await,
        next(&mut recent).await,
    ]
    .iter()
    .map(|d| d["seq"].as_u64().unwrap())
    .collect();
    assert_eq!(seqs, [current - 2, current - 1, current]);
    // A resume point ahead of the server (it restarted) is a snapshot too, not silence.
    let mut ahead = connect(&url, "admin").await;
    ahead.send(subscribe(current + 1_000)).await.unwrap();
    assert_eq!(next(&mut ahead).await["type"], "snapshot");
}

#[tokio::test]
async fn indicators_reload_refuses_a_broken_set_and_keeps_the_history_of_unchanged_ones() {
    let mut h = harness(&shipped_rules());
    let dir = std::env::temp_dir().join(format!(
        "watchfloor-indicators-reload-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shipped =
        std::fs::read_to_string(shipped_rules().join("../indicators/default.yaml")).unwrap();
    std::fs::write(dir.join("default.yaml"), &shipped).unwrap();
    h.state.indicators_dir = Some(dir.clone());
    let (status, answer) = h
        .call("POST", "/api/indicators/reload", "admin", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["indicators"], 11, "{answer}");
    h.hub.refresh_kpis();
    let history = |rows: &Value, id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["zone"] == "city")
            .unwrap()["history"][id]
            .as_array()
            .unwrap()
            .len()
    };
    let first_ts = |rows: &Value, id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["zone"] == "city")
            .unwrap()["history"][id][0]["ts"]
            .as_i64()
            .unwrap()
    };
    let (_, rows) = h.call("GET", "/api/kpis", "admin", Value::Null).await;
    assert_eq!(history(&rows, "open_alerts"), 1);
    let before = (
        first_ts(&rows, "open_alerts"),
        first_ts(&rows, "stations_on_time"),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Only an admin may reload.
    let (status, _) = h
        .call(
            "POST",
            "/api/indicators/reload",
            "city-operator",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A broken file: 422 with its file:line, the running set unchanged.
    std::fs::write(
        dir.join("default.yaml"),
        shipped.replacen("from: alerts", "from: alarms", 1),
    )
    .unwrap();
    let (status, answer) = h
        .call("POST", "/api/indicators/reload", "admin", Value::Null)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let reason = answer["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("default.yaml:") && reason.contains("unknown source `alarms`"),
        "{reason}"
    );
    // One indicator changed (its target): its history restarts, the others keep theirs.
    let changed = shipped.replacen("    target: 95\n", "    target: 90\n", 1);
    assert_ne!(changed, shipped);
    std::fs::write(dir.join("default.yaml"), changed).unwrap();
    let (status, answer) = h
        .call("POST", "/api/indicators/reload", "admin", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["history_reset"],
        json!(["stations_on_time"]),
        "{answer}"
    );
    let (_, rows) = h.call("GET", "/api/kpis", "admin", Value::Null).await;
    assert_eq!(history(&rows, "open_alerts"), 1);
    assert_eq!(
        first_ts(&rows, "open_alerts"),
        before.0,
        "kept: the point from before the reload"
    );
    assert_eq!(history(&rows, "stations_on_time"), 1);
    assert!(
        first_ts(&rows, "stations_on_time") > before.1,
        "restarted at the reload's refresh"
    );
    let audit = h.hub.audit_text();
    assert!(
        audit.contains("\"target\":\"indicators\"") && audit.contains("reload rejected"),
        "{audit}"
    );
}

#[tokio::test]
async fn the_screen_gets_status_epoch_base_map_assignees_and_drill_downs() {
    let h = harness(&shipped_rules());
    let (id, _) = two_fires(&h).await;
    // The epoch: the same in /api/me and /api/status, another for another hub.
    let (_, me) = h
        .call("GET", "/api/me", "long-hoa-viewer", Value::Null)
        .await;
    let (_, status) = h
        .call("GET", "/api/status", "long-hoa-viewer", Value::Null)
        .await;
    assert_eq!(me["epoch"], status["epoch"], "{status}");
    let other = harness(&shipped_rules());
    let (_, again) = other.call("GET", "/api/status", "admin", Value::Null).await;
    assert_ne!(again["epoch"], status["epoch"], "a restart is a new epoch");
    // Freshness: the cameras reported (event time of the latest fire), nothing else did.
    let fresh = status["freshness"].as_array().unwrap();
    assert_eq!(fresh.len(), 1, "{status}");
    assert_eq!(fresh[0]["kind"], "camera");
    assert_eq!(fresh[0]["last_ts"], T0 + 2_000);
    assert_eq!(status["degraded"], json!([]));
    // The base layer: rivers, roads, landmarks with names in both languages.
    let (status, map) = h
        .call("GET", "/api/basemap", "long-hoa-viewer", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let kinds: BTreeSet<&str> = map["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["landmark", "river", "road"]));
    assert!(map["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["properties"]["name"].is_string() && f["properties"]["name_en"].is_string()));
    // Assignees of Long Hòa's fire: the accounts that see it and may act, not viewers.
    let (status, list) = h
        .call(
            "GET",
            &format!("/api/alerts/{id}/assignees"),
            "long-hoa-operator",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: BTreeSet<&str> = list["assignees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "admin",
            "city-operator",
            "cluster-operator",
            "long-hoa-operator"
        ]),
        "{list}"
    );
    let (status, _) = h
        .call(
            "GET",
            &format!("/api/alerts/{id}/assignees"),
            "tan-an-operator",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "outside the scope");
    // A camera's drill-down: its last detections, plates masked for a viewer.
    let (_, cam) = h
        .call(
            "GET",
            "/api/stations/CT-CAM-01",
            "long-hoa-viewer",
            Value::Null,
        )
        .await;
    let detections = cam["detections"].as_array().unwrap();
    assert_eq!(detections.len(), 1, "{cam}");
    assert_eq!(detections[0]["event"], "fire_smoke");
    assert_eq!(detections[0]["attrs"]["plate"], "***");
    let (_, cam) = h
        .call(
            "GET",
            "/api/stations/CT-CAM-01",
            "long-hoa-operator",
            Value::Null,
        )
        .await;
    assert_eq!(cam["detections"][0]["attrs"]["plate"], "65A-123.45");
    // A discharge station's drill-down carries the units of its metrics.
    let (_, dis) = h
        .call(
            "GET",
            "/api/stations/CT-DIS-09",
            "long-hoa-viewer",
            Value::Null,
        )
        .await;
    assert_eq!(dis["units"]["cod"], "mg/L", "{dis}");
    assert_eq!(dis["units"]["ph"], "pH");
}

/// Every answer carries the security headers; a 401 says which scheme (`WWW-Authenticate`)
/// in a JSON body; the scheme is accepted in any case (RFC 7235).
#[tokio::test]
async fn security_headers_www_authenticate_and_the_scheme_in_any_case() {
    let h = harness(&shipped_rules());
    let send = |auth: Option<&str>, path: &str| {
        let mut request = Request::builder().method("GET").uri(path);
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        watchfloor_server::router(h.state.clone()).oneshot(request.body(Body::empty()).unwrap())
    };
    for (auth, path, status) in [
        (None, "/api/me", StatusCode::UNAUTHORIZED),
        (
            Some("Basic dXNlcjpwdw=="),
            "/api/me",
            StatusCode::UNAUTHORIZED,
        ),
        (Some("bearer token-admin"), "/api/me", StatusCode::OK),
        (Some("BEARER  token-admin "), "/api/me", StatusCode::OK),
        (None, "/", StatusCode::OK),
    ] {
        let response = send(auth, path).await.unwrap();
        assert_eq!(response.status(), status, "{auth:?} {path}");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(headers["www-authenticate"], "Bearer realm=\"watchfloor\"");
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert!(body["error"].is_string(), "{body}");
        }
    }
}
