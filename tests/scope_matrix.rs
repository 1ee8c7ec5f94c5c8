//! The scope matrix of the two-tier government (issue 12): accounts for the city, one
//! commune, two communes (a cluster centre), the environment department, the transport
//! department and a commune operator limited to one sector, against alerts (list, one by
//! one, history from the store), stations, KPIs, daily reports, WebSocket channels and the
//! audit log. Each sees exactly its area × sectors, computed by hand below; everything
//! else is a 404 (or simply absent from a list), as for areas before.

mod server_support;

use std::collections::BTreeSet;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use watchfloor_store::{Store, StoreWriter};

use server_support::*;

fn ph(source: &str, ts: i64, value: f64) -> String {
    json!({"source": source, "kind": "discharge", "ts": ts, "values": {"ph": value}}).to_string()
}

/// Six alerts: (key, commune, sectors as configured in alert-rules/city/sectors.csv).
/// - CT-CAM-01 fire/smoke, Long Hòa: public safety;
/// - CT-CAM-02 wrong way, Long Hòa: transport and public safety;
/// - CT-CAM-21 road flooding, Tân An: water and disaster, public safety;
/// - CT-CAM-13 wrong way, An Bình: transport, public safety;
/// - CT-DIS-09 pH, Long Hòa: environment; CT-DIS-08 pH, An Bình: environment.
async fn six_alerts(h: &Harness) {
    h.feed(vec![
        camera("CT-CAM-01", T0 + 1_000, "fire_smoke", 0.95, "A"),
        camera("CT-CAM-02", T0 + 2_000, "wrong_way", 0.95, "B"),
        camera("CT-CAM-21", T0 + 3_000, "road_flooding", 0.95, "C"),
        camera("CT-CAM-13", T0 + 4_000, "wrong_way", 0.95, "D"),
        ph("CT-DIS-09", T0 + 5_000, 3.0),
        ph("CT-DIS-08", T0 + 6_000, 12.5),
    ])
    .await;
}

/// Who sees which alert keys, and how many stations, by hand.
fn expected() -> Vec<(&'static str, Vec<&'static str>, usize)> {
    // Stations: long_hoa has 10 (1 discharge, 1 air, 4 traffic, 4 cameras); tan_an 11 (the
    // same, and the health department's indicator feed); the city 98: discharge 10, air 10
    // (environment), traffic 36 + cameras 36 (transport), water level 5, the feed.
    vec![
        (
            "admin",
            vec![
                "CT-CAM-01",
                "CT-CAM-02",
                "CT-CAM-21",
                "CT-CAM-13",
                "CT-DIS-09",
                "CT-DIS-08",
            ],
            98,
        ),
        (
            "long-hoa-operator",
            vec!["CT-CAM-01", "CT-CAM-02", "CT-DIS-09"],
            10,
        ),
        (
            "cluster-operator",
            vec!["CT-CAM-01", "CT-CAM-02", "CT-CAM-21", "CT-DIS-09"],
            21,
        ),
        ("environment-department", vec!["CT-DIS-09", "CT-DIS-08"], 20),
        ("transport-department", vec!["CT-CAM-02", "CT-CAM-13"], 72),
        ("long-hoa-environment", vec!["CT-DIS-09"], 2),
    ]
}

fn keys(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[tokio::test]
async fn each_account_sees_exactly_its_area_times_its_sectors() {
    let h = harness(&shipped_rules());
    six_alerts(&h).await;
    h.hub.refresh_kpis();
    let all = h.hub.alerts();
    assert_eq!(
        all.len(),
        6,
        "{:?}",
        all.iter().map(|a| (&a.key, &a.sectors)).collect::<Vec<_>>()
    );
    for (who, seen, stations) in expected() {
        // Alerts: the list, and each alert by id (404 outside the scope).
        let (status, list) = h.call("GET", "/api/alerts", who, Value::Null).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(keys(&list), set(&seen), "{who}: alerts");
        for a in &all {
            let (status, _) = h
                .call(
                    "GET",
                    &format!("/api/alerts/{}", a.alert_id),
                    who,
                    Value::Null,
                )
                .await;
            assert_eq!(
                status == 200,
                seen.contains(&a.key.as_str()),
                "{who}: alert {} → {status}",
                a.key
            );
        }
        // Stations: the list, and one outside the scope by id.
        let (_, list) = h.call("GET", "/api/stations", who, Value::Null).await;
        assert_eq!(list.as_array().unwrap().len(), stations, "{who}: stations");
        let (status, _) = h
            .call("GET", "/api/stations/CT-TR-21", who, Value::Null)
            .await;
        let sees_tan_an_traffic =
            ["admin", "cluster-operator", "transport-department"].contains(&who);
        assert_eq!(
            status == 200,
            sees_tan_an_traffic,
            "{who}: CT-TR-21 → {status}"
        );
        // KPIs: only its own sector view's rows, only its area's zones; open alerts counted
        // within its sectors.
        let (_, rows) = h.call("GET", "/api/kpis", who, Value::Null).await;
        let rows = rows.as_array().unwrap();
        assert!(!rows.is_empty(), "{who}: no KPI rows");
        let view = match who {
            "environment-department" | "long-hoa-environment" => "environment",
            "transport-department" => "transport",
            _ => "*",
        };
        assert!(
            rows.iter().all(|r| r["view"] == view),
            "{who}: a row of another view"
        );
        let open: f64 = rows
            .iter()
            .filter(|r| {
                r["level"]
                    == if who == "admin" || who.ends_with("department") {
                        "city"
                    } else {
                        "commune"
                    }
            })
            .flat_map(|r| r["indicators"].as_array().unwrap().iter())
            .filter(|i| i["id"] == "open_alerts")
            .map(|i| i["value"].as_f64().unwrap_or(0.0))
            .sum();
        assert_eq!(
            open as usize,
            seen.len(),
            "{who}: open alerts over its zones"
        );
        let ids: BTreeSet<&str> = rows[0]["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.contains("discharge_compliance"),
            view != "transport",
            "{who}: {ids:?}"
        );
        assert_eq!(
            ids.contains("congestion_index"),
            view != "environment",
            "{who}: {ids:?}"
        );
        let zones: BTreeSet<&str> = rows.iter().map(|r| r["zone"].as_str().unwrap()).collect();
        match who {
            "long-hoa-operator" | "long-hoa-environment" => {
                assert_eq!(zones, BTreeSet::from(["long_hoa"]), "{who}")
            }
            "cluster-operator" => {
                assert_eq!(zones, BTreeSet::from(["long_hoa", "tan_an"]), "{who}")
            }
            _ => assert_eq!(
                zones.len(),
                17,
                "{who}: the city, its 12 communes, 4 legacy districts"
            ),
        }
    }
    // The audit log: a city admin reads every line; a department's admin the lines about
    // its sector's alerts; nobody else any.
    let env_alert = all
        .iter()
        .find(|a| a.key == "CT-DIS-09")
        .unwrap()
        .alert_id
        .clone();
    let cam_alert = all
        .iter()
        .find(|a| a.key == "CT-CAM-01")
        .unwrap()
        .alert_id
        .clone();
    for id in [&env_alert, &cam_alert] {
        let (status, _) = h
            .call(
                "POST",
                &format!("/api/alerts/{id}/comment"),
                "admin",
                json!({"text": "checked"}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let audit = |who: &'static str| h.get_text("/api/audit", who);
    let (_, text) = audit("admin").await;
    assert!(
        text.contains(&env_alert) && text.contains(&cam_alert),
        "{text}"
    );
    let (status, text) = audit("environment-admin").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(&env_alert) && !text.contains(&cam_alert),
        "{text}"
    );
    for who in [
        "environment-department",
        "transport-department",
        "long-hoa-environment",
    ] {
        assert_eq!(audit(who).await.0, 403, "{who}");
    }
    // What the whole centre runs is the city admins': a department's admin may not reload.
    for path in ["/api/rules/reload", "/api/indicators/reload"] {
        let (status, _) = h.call("POST", path, "environment-admin", Value::Null).await;
        assert_eq!(status, 403, "{path}");
    }
}

#[tokio::test]
async fn websocket_channels_and_stored_reports_follow_area_and_sectors() {
    let dir = std::env::temp_dir().join(format!("watchfloor-scope-matrix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let h = harness(&shipped_rules());
    let store = Store::open(&format!("sqlite:{}", dir.join("incidents.db").display()))
        .await
        .unwrap();
    let (writer, _task) = StoreWriter::start(store.clone());
    h.hub.attach_store(writer);
    six_alerts(&h).await;
    h.hub.refresh_kpis();
    // Everything stored before the history and reports are read.
    for _ in 0..100 {
        let (_, list) = h.call("GET", "/api/alerts", "admin", Value::Null).await;
        if list.as_array().map_or(0, Vec::len) == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The day's indicator values and quality counts go to the store (once a minute in a
    // running centre): today's report carries each account's own view of them.
    h.hub.store_days().await;
    let today = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        watchfloor_model::day_text(watchfloor_model::local_day(now))
    };
    let stored = store
        .quality_days("2026-11-27", "2026-11-27")
        .await
        .unwrap();
    assert_eq!(stored.len(), 6, "the six stations that spoke: {stored:?}");
    assert!(
        stored.iter().all(|r| r.messages == 1 && r.accepted == 1),
        "{stored:?}"
    );
    for (who, open) in [
        ("admin", 6.0),
        ("environment-department", 2.0),
        ("transport-department", 2.0),
    ] {
        let (status, report) = h
            .call(
                "GET",
                &format!("/api/reports/daily?date={today}"),
                who,
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report["indicators"]["city"]["open_alerts"]["value"], open,
            "{who}: {}",
            report["indicators"]
        );
        let has = |id: &str| report["indicators"]["city"].get(id).is_some();
        assert_eq!(
            has("discharge_compliance"),
            who != "transport-department",
            "{who}"
        );
        assert_eq!(
            has("congestion_index"),
            who != "environment-department",
            "{who}"
        );
    }
    let (_, report) = h
        .call(
            "GET",
            &format!("/api/reports/daily?date={today}"),
            "long-hoa-environment",
            Value::Null,
        )
        .await;
    let zones: Vec<&String> = report["indicators"].as_object().unwrap().keys().collect();
    assert_eq!(zones, ["long_hoa"], "a commune's report: its own zone only");
    assert_eq!(
        report["indicators"]["long_hoa"]["open_alerts"]["value"],
        1.0
    );
    let url = serve(&h).await;
    for (who, seen, stations) in expected() {
        // The stored history (the store's sector column) and the daily report.
        let (_, list) = h.call("GET", "/api/alerts", who, Value::Null).await;
        assert_eq!(keys(&list), set(&seen), "{who}: stored alerts");
        let (status, report) = h
            .call(
                "GET",
                "/api/reports/daily?date=2026-11-27",
                who,
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{who}: {report}");
        let total = report["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone"] == "total")
            .unwrap()
            .clone();
        assert_eq!(total["alerts"], seen.len(), "{who}: report {total}");
        assert_eq!(
            total["stations"], stations,
            "{who}: report stations {total}"
        );
        // WebSocket: the alerts, stations and KPI snapshots.
        let mut ws = connect(&url, who).await;
        for channel in ["alerts", "stations", "kpis"] {
            ws.send(Message::Text(
                json!({"op": "subscribe", "channel": channel}).to_string(),
            ))
            .await
            .unwrap();
            let snapshot = next(&mut ws).await;
            assert_eq!(snapshot["type"], "snapshot", "{who} {channel}: {snapshot}");
            let data = &snapshot["data"];
            match channel {
                "alerts" => assert_eq!(keys(data), set(&seen), "{who}: ws alerts"),
                "stations" => {
                    // Readings only exist for the stations that sent one (the six above); a
                    // camera serves transport too, so the transport department sees all four.
                    let got: BTreeSet<String> = data
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["station"].as_str().unwrap().to_string())
                        .collect();
                    let expected = if who == "transport-department" {
                        set(&["CT-CAM-01", "CT-CAM-02", "CT-CAM-13", "CT-CAM-21"])
                    } else {
                        set(&seen)
                    };
                    assert_eq!(got, expected, "{who}: ws stations");
                }
                _ => {
                    let view = data[0]["view"].as_str().unwrap().to_string();
                    assert!(
                        data.as_array()
                            .unwrap()
                            .iter()
                            .all(|r| r["view"] == view.as_str()),
                        "{who}"
                    );
                    assert_eq!(
                        view == "*",
                        !who.contains("department") && !who.contains("environment"),
                        "{who}: view {view}"
                    );
                }
            }
        }
    }
}
