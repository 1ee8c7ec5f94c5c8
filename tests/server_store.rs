//! The command-centre server with its incident store (SQLite, and a private PostgreSQL
//! server that is killed and restarted): an action answered 200 is already committed; the
//! alert list pages through the stored history by scope with a `Link` to the next page;
//! while the store cannot be written, actions answer 503 (and are not applied), `/healthz`
//! says degraded and why, `/metrics` shows it, and the live screen keeps updating; once the
//! database is back everything queued meanwhile is stored.

mod server_support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tower::ServiceExt;
use watchfloor_store::testing::TestPostgres;

use watchfloor_model::Severity;
use watchfloor_store::{Action, AlertRow, Change, Entry, Store, StoreWriter};

use server_support::*;

async fn with_store(url: &str) -> (Harness, Store) {
    let h = harness(&shipped_rules());
    let store = Store::open(url).await.unwrap();
    let (writer, _task) = StoreWriter::start(store.clone());
    h.hub.attach_store(writer);
    (h, store)
}

/// A GET answering the status, the body and the `Link` header.
async fn get_with_link(h: &Harness, path: &str, who: &str) -> (StatusCode, Value, Option<String>) {
    let request = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer token-{who}"))
        .body(Body::empty())
        .unwrap();
    let response = watchfloor_server::router(h.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let link = response
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        link,
    )
}

#[tokio::test]
async fn actions_are_committed_and_the_history_pages_by_scope() {
    let dir = std::env::temp_dir().join(format!("watchfloor-server-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (h, store) = with_store(&format!("sqlite:{}", dir.join("incidents.db").display())).await;
    // Twelve fires: cameras 1–6 are in Long Hòa's district (Bình Thủy), 21–26 in Ninh Kiều.
    for (i, cam) in (1..=6).chain(21..=26).enumerate() {
        h.feed(vec![camera(
            &format!("CT-CAM-{cam:02}"),
            T0 + i as i64 * 1000,
            "fire_smoke",
            0.95,
            "x",
        )])
        .await;
    }
    let long_hoa = h
        .hub
        .alerts()
        .into_iter()
        .find(|a| a.key == "CT-CAM-01")
        .unwrap()
        .alert_id;
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{long_hoa}/ack"),
            "long-hoa-operator",
            json!({"note": "crew sent"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Answered 200: already in the database, with its audit line.
    let stored = store.alert(&long_hoa).await.unwrap().expect("stored");
    assert_eq!(
        stored.ack.as_ref().map(|a| a.2.clone()),
        Some(Some("crew sent".to_string()))
    );
    assert!(store
        .audit(0, 100)
        .await
        .unwrap()
        .iter()
        .any(|a| a.action == "acknowledge" && a.target == long_hoa));

    // The city operator pages through all twelve, five at a time, newest first.
    tokio::time::timeout(Duration::from_secs(10), async {
        while store
            .query(&watchfloor_store::AlertQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .alerts
            .len()
            < 12
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the writer stores the twelve fires");
    let mut path = "/api/alerts?limit=5&state=open".to_string();
    let mut keys = Vec::new();
    loop {
        let (status, page, link) = get_with_link(&h, &path, "city-operator").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        keys.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|a| a["key"].as_str().unwrap().to_string()),
        );
        match link {
            Some(link) => {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                assert!(
                    link.contains("state=open"),
                    "the filters carry over: {link}"
                );
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string();
            }
            None => break,
        }
    }
    let expected: Vec<String> = (1..=6)
        .chain(21..=26)
        .rev()
        .map(|c| format!("CT-CAM-{c:02}"))
        .collect();
    assert_eq!(keys, expected);
    // A ward operator's history holds the ward's alerts only; a district viewer's its district's.
    let (_, ward, link) = get_with_link(&h, "/api/alerts?limit=100", "long-hoa-operator").await;
    let wards: Vec<&str> = ward
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ward"].as_str().unwrap())
        .collect();
    assert!(
        !wards.is_empty() && wards.iter().all(|w| *w == "long_hoa"),
        "{wards:?}"
    );
    assert!(link.is_none());
    let (_, district, _) = get_with_link(&h, "/api/alerts?limit=100", "binh-thuy-viewer").await;
    assert_eq!(district.as_array().unwrap().len(), 6, "{district}");
    let (status, body, _) = get_with_link(&h, "/api/alerts?cursor=garbage", "admin").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_degrades_the_centre_without_losing_what_was_answered() {
    let mut pg = TestPostgres::start();
    let (h, store) = with_store(&pg.database("degraded")).await;
    h.feed(vec![camera("CT-CAM-01", T0, "fire_smoke", 0.95, "x")])
        .await;
    let id = h.hub.alerts()[0].alert_id.clone();
    let (status, _) = h
        .call(
            "POST",
            &format!("/api/alerts/{id}/comment"),
            "admin",
            json!({"text": "before"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    tokio::task::block_in_place(|| pg.kill());
    // The screen keeps updating: a new fire is on it at once.
    h.feed(vec![camera(
        "CT-CAM-21",
        T0 + 1000,
        "fire_smoke",
        0.95,
        "y",
    )])
    .await;
    assert_eq!(h.hub.alerts().len(), 2);
    // An action cannot be stored: 503 with the reason, and not applied.
    let (status, body) = h
        .call(
            "POST",
            &format!("/api/alerts/{id}/comment"),
            "admin",
            json!({"text": "during"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not stored, try again"),
        "{body}"
    );
    assert!(!h
        .hub
        .alert(&id)
        .unwrap()
        .history
        .iter()
        .any(|e| e.detail == "during"));
    let (status, health) = h.call("GET", "/healthz", "admin", Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "degraded");
    assert!(
        health["reasons"][0]
            .as_str()
            .unwrap()
            .contains("incident store (postgres)"),
        "{health}"
    );
    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let response = watchfloor_server::router(h.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let metrics = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        metrics.lines().any(|l| l == "watchfloor_store_degraded 1"),
        "{metrics}"
    );

    tokio::task::block_in_place(|| pg.restart());
    // Back: the action goes through and what was queued meanwhile is stored.
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let answer = h
                .call(
                    "POST",
                    &format!("/api/alerts/{id}/comment"),
                    "admin",
                    json!({"text": "after"}),
                )
                .await;
            if answer.0 == StatusCode::OK {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the store is back within 30 s");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = h.call("GET", "/healthz", "admin", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let open = store.open_alerts().await.unwrap();
    assert_eq!(
        open.len(),
        2,
        "the fire seen while the database was down is stored"
    );
    let details: Vec<String> = store
        .timeline(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert!(
        details.contains(&"before".to_string()) && details.contains(&"after".to_string()),
        "{details:?}"
    );
    assert!(
        !details.contains(&"during".to_string()),
        "the action answered 503 was not stored later: {details:?}"
    );
}

fn stored_alert(
    id: &str,
    key: &str,
    ward: &str,
    district: &str,
    pack: &str,
    severity: Severity,
    fired_at: i64,
) -> AlertRow {
    AlertRow {
        alert_id: id.into(),
        rule: format!("{pack}_rule"),
        key: key.into(),
        state: "firing".into(),
        severity,
        fired_at,
        updated_at: fired_at,
        resolved_at: None,
        value: None,
        message: "m".into(),
        labels: BTreeMap::from([("pack".to_string(), pack.to_string())]),
        ward: Some(ward.into()),
        district: Some(district.into()),
        sectors: vec!["public_safety".into()],
        kind: Some("camera".into()),
        location: None,
        ack: None,
        assignee: None,
    }
}

#[tokio::test]
async fn the_daily_report_counts_a_day_by_zone_as_json_and_csv() {
    let dir = std::env::temp_dir().join(format!("watchfloor-server-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (h, store) = with_store(&format!("sqlite:{}", dir.join("incidents.db").display())).await;
    const H: i64 = 3_600_000;
    const M: i64 = 60_000;
    let fire = |r: &AlertRow| Change::Transition {
        row: Box::new(r.clone()),
        entry: Entry {
            at: r.fired_at,
            event: "fired".into(),
            by: None,
            detail: String::new(),
        },
        dedup: format!("{}|fired", r.alert_id),
        reopen: false,
    };
    let ack = |id: &str, at: i64| Change::Action {
        row: None,
        alert_id: id.into(),
        action: Action::Acknowledge {
            by: "op".into(),
            at,
            note: None,
        },
        entry: Entry {
            at,
            event: "acknowledged".into(),
            by: Some("op".into()),
            detail: String::new(),
        },
    };
    let resolve = |id: &str, at: i64| Change::Action {
        row: None,
        alert_id: id.into(),
        action: Action::Resolve { at },
        entry: Entry {
            at,
            event: "resolved by hand".into(),
            by: Some("op".into()),
            detail: String::new(),
        },
    };
    // 2026-11-27 (UTC+7): two in Long Hòa (Bình Thủy), one in Tân An (Ninh Kiều); one the day before.
    let a1 = stored_alert(
        "a1",
        "CT-CAM-01",
        "long_hoa",
        "binh_thuy",
        "camera",
        Severity::Major,
        T0 + H,
    );
    let a2 = stored_alert(
        "a2",
        "CT-CAM-02",
        "long_hoa",
        "binh_thuy",
        "camera",
        Severity::Critical,
        T0 + 2 * H,
    );
    let a3 = stored_alert(
        "a3",
        "CT-CAM-21",
        "tan_an",
        "ninh_kieu",
        "traffic",
        Severity::Minor,
        T0 + 3 * H,
    );
    let a0 = stored_alert(
        "a0",
        "CT-CAM-03",
        "long_hoa",
        "binh_thuy",
        "camera",
        Severity::Major,
        T0 - H,
    );
    // Silence (rules with `absence`) in Long Hòa: one open since the evening before, one
    // open since ten days before (beyond the look-back: seen as still open), one over
    // before the day began (not counted), and the same station twice (counted once).
    let city = h.hub.city().unwrap();
    let long_hoa_stations: Vec<String> = city
        .stations
        .iter()
        .filter(|st| st.ward.as_deref() == Some("long_hoa"))
        .map(|st| st.id.to_string())
        .collect();
    assert!(long_hoa_stations.len() >= 3, "{long_hoa_stations:?}");
    let silence = |id: &str, station: &str, fired_at: i64| {
        let mut r = stored_alert(
            id,
            station,
            "long_hoa",
            "binh_thuy",
            "station_health",
            Severity::Minor,
            fired_at,
        );
        r.rule = "station_offline_traffic".into();
        r
    };
    let s1 = silence("s1", &long_hoa_stations[0], T0 - 2 * H);
    let s2 = silence("s2", &long_hoa_stations[1], T0 - 240 * H);
    let s3 = silence("s3", &long_hoa_stations[2], T0 - 3 * H);
    let s4 = silence("s4", &long_hoa_stations[0], T0 - 240 * H);
    store
        .write(
            &[
                fire(&a0),
                fire(&a1),
                fire(&a2),
                fire(&a3),
                ack("a1", T0 + H + 10 * M),
                resolve("a1", T0 + H + 30 * M),
                ack("a2", T0 + 2 * H + 20 * M),
                fire(&s1),
                fire(&s2),
                fire(&s3),
                resolve("s3", T0 - H),
                fire(&s4),
            ],
            &[],
        )
        .await
        .unwrap();

    let (status, report) = h
        .call(
            "GET",
            "/api/reports/daily?date=2026-11-27",
            "city-operator",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let zone = |name: &str| {
        report["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
            .clone()
    };
    let long_hoa = zone("long_hoa");
    assert_eq!(long_hoa["alerts"], 2, "{long_hoa}");
    assert_eq!(long_hoa["by_pack"], json!({"camera": 2}));
    assert_eq!(long_hoa["by_severity"], json!({"critical": 1, "major": 1}));
    assert_eq!(
        (
            long_hoa["acknowledged"].clone(),
            long_hoa["resolved"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(
        (
            long_hoa["ack_minutes_median"].as_f64(),
            long_hoa["ack_minutes_p90"].as_f64()
        ),
        (Some(10.0), Some(20.0))
    );
    assert_eq!(
        (
            long_hoa["resolve_minutes_median"].as_f64(),
            long_hoa["resolve_minutes_p90"].as_f64()
        ),
        (Some(30.0), Some(30.0))
    );
    assert_eq!(zone("binh_thuy")["alerts"], 2);
    assert_eq!(zone("tan_an")["by_pack"], json!({"traffic": 1}));
    assert!(zone("tan_an")["ack_minutes_median"].is_null());
    let total = zone("total");
    assert_eq!(total["alerts"], 3, "the day before is not counted: {total}");
    // Discharge stations counted from the registry; no discharge alert: all compliant.
    let in_city = city
        .stations
        .iter()
        .filter(|s| s.kind == watchfloor_model::Kind::Discharge)
        .count();
    assert_eq!(total["discharge_stations"], in_city);
    assert_eq!(total["discharge_compliant_pct"].as_f64(), Some(100.0));
    // Stations on time: two of Long Hòa's stations were silent during the day.
    let n = long_hoa_stations.len();
    assert_eq!(long_hoa["stations"], n);
    let expected = (1000.0 * (n - 2) as f64 / n as f64).round() / 10.0;
    assert_eq!(
        long_hoa["stations_on_time_pct"].as_f64(),
        Some(expected),
        "{long_hoa}"
    );
    assert_eq!(total["stations"], city.stations.len());
    let total_expected =
        (1000.0 * (city.stations.len() - 2) as f64 / city.stations.len() as f64).round() / 10.0;
    assert_eq!(total["stations_on_time_pct"].as_f64(), Some(total_expected));
    assert_eq!(zone("tan_an")["stations_on_time_pct"].as_f64(), Some(100.0));

    // A ward operator's report: the ward and the total of what they may see.
    let (_, mine) = h
        .call(
            "GET",
            "/api/reports/daily?date=2026-11-27",
            "long-hoa-operator",
            Value::Null,
        )
        .await;
    let zones: Vec<&str> = mine["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones, ["long_hoa", "total"]);
    assert_eq!(mine["zones"][1]["alerts"], 2);

    // CSV: a header and one line per zone, the same figures.
    let request = Request::builder()
        .uri("/api/reports/daily?date=2026-11-27&format=csv&zone=long_hoa")
        .header("authorization", "Bearer token-admin")
        .body(Body::empty())
        .unwrap();
    let response = watchfloor_server::router(h.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("date,zone,level,alerts,pack_camera,severity_info,severity_minor,severity_major,severity_critical,acknowledged,resolved"), "{text}");
    assert!(
        lines[1].starts_with("2026-11-27,long_hoa,ward,2,2,0,0,1,1,2,1,10,20,30,30,"),
        "{text}"
    );

    for bad in [
        "/api/reports/daily?date=27-11-2026",
        "/api/reports/daily?date=2026-11-27&format=pdf",
    ] {
        let (status, body) = h.call("GET", bad, "admin", Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
