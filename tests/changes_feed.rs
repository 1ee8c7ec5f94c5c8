//! The changes feed catches an integrator up exactly: it reads `/api/changes` to the end,
//! stops; 5,000 alerts fire and operators comment on 100 of them, with a SIGKILL of the
//! centre in the middle (the engine replays its log after the restart, so transitions come
//! again: the store keeps each once); it resumes from its cursor and gets exactly those
//! 5,100 lines, once each, in commit order, each alert's firing before its comment. A bad
//! cursor is a 400 with a JSON error; an operator of one commune reads only its commune.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, now_ms, run_pipeline, scratch, wait_progressing, wait_until};

/// Every reading fires an alert of its own (keyed by its sequence number).
const RULE: &str = r#"
rules:
  - id: seq_seen
    match: { kind: weather, metric: temperature }
    key: attrs.seq
    aggregates: { t: last(temperature) }
    condition: t > -100
    severity: minor
    message: "reading {key}"
"#;

/// Reads the feed from `after` to its end: the lines and the last cursor.
fn read_to_end(http: u16, token: &str, after: &str) -> (Vec<Value>, String) {
    let mut lines = Vec::new();
    let mut cursor = after.to_string();
    loop {
        let page = get(
            http,
            &format!("/api/changes?after={cursor}&limit=1000"),
            token,
        );
        assert_eq!(page.status, 200, "{}", page.body);
        lines.extend(page.body["changes"].as_array().unwrap().iter().cloned());
        let next = page.body["next"].as_str().unwrap().to_string();
        assert!(
            next.parse::<i64>().unwrap() >= cursor.parse::<i64>().unwrap_or(0),
            "the cursor went backwards"
        );
        cursor = next;
        if !page.body["more"].as_bool().unwrap() {
            return (lines, cursor);
        }
    }
}

fn publish(client: &rumqttc::Client, from: u64, to: u64, start: i64) {
    for seq in from..to {
        let payload = json!({
            "source": format!("T{}", seq % 50),
            "kind": "weather",
            "ts": start + seq as i64,
            "values": {"temperature": 30},
            "attrs": {"seq": seq.to_string()},
        });
        client
            .publish(
                format!("ioc/weather/T{}/telemetry", seq % 50),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .unwrap();
    }
}

/// The alert id of the firing for key `seq` (fired at its reading's time `start + seq`),
/// from the operator's view.
fn alert_id(http: u16, seq: u64, start: i64) -> String {
    let mut id = None;
    let at = start + seq as i64;
    let key = seq.to_string();
    let path = format!("/api/alerts?rule=seq_seen&since={at}&until={}", at + 1);
    wait_until(
        &format!("the alert of reading {seq}"),
        Duration::from_secs(60),
        || {
            id = get(http, &path, "token-op").body.as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["key"] == key.as_str())
                    .map(|x| x["alert_id"].as_str().unwrap().to_string())
            });
            id.is_some()
        },
    );
    id.unwrap()
}

fn comment(http: u16, seq: u64, start: i64) {
    let id = alert_id(http, seq, start);
    let answer = call(
        http,
        "POST",
        &format!("/api/alerts/{id}/comment"),
        Some("token-op"),
        Some(&json!({"text": format!("note {seq}")})),
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn an_integrator_catches_up_exactly_after_an_hour_away_and_a_restart() {
    let dir = scratch("changes-feed", "catch-up");
    let broker = Mosquitto::start(&dir);
    let http = free_port();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/seq.yaml"), RULE).unwrap();
    // The shipped rules and city beside it, with 50 weather stations T0…T49 added (no
    // shipped rule watches weather stations).
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "city" {
            std::os::unix::fs::symlink(&path, dir.join("rules").join(path.file_name().unwrap()))
                .unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("rules/city")).unwrap();
    for file in ["zones.geojson", "basemap.geojson", "sectors.csv"] {
        std::os::unix::fs::symlink(
            shipped.join("city").join(file),
            dir.join("rules/city").join(file),
        )
        .unwrap();
    }
    let mut stations = std::fs::read_to_string(shipped.join("city/stations.csv")).unwrap();
    for t in 0..50 {
        stations.push_str(&format!(
            "T{t},Weather {t},weather,10.06791,105.72032,,,,,,,,,60,\n"
        ));
    }
    std::fs::write(dir.join("rules/city/stations.csv"), stations).unwrap();
    std::fs::write(
        dir.join("accounts.toml"),
        format!(
            "[[account]]\nname = \"feed\"\nrole = \"integrator\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n\
             [[account]]\nname = \"op\"\nrole = \"operator\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n\
             [[account]]\nname = \"ward\"\nrole = \"operator\"\nscope = \"commune:long_hoa\"\ntoken_sha256 = \"{}\"\n",
            watchfloor_server::token_hash_hex("token-feed"),
            watchfloor_server::token_hash_hex("token-op"),
            watchfloor_server::token_hash_hex("token-ward"),
        ),
    )
    .unwrap();
    let pipeline =
        support::centre::write_pipeline(&dir, broker.port, http, "sqlite:incidents.db", "");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("rules = ") {
                "rules = \"rules\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&pipeline, text).unwrap();
    let mut centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until("the centre to answer", Duration::from_secs(60), || {
        call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200)
    });
    let mut options = rumqttc::MqttOptions::new("stations", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_inflight(200);
    let (client, mut connection) = rumqttc::Client::new(options, 1000);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    _ => {}
                }
            }
        });
    }
    let start = now_ms();

    // Bad requests.
    let bad = get(http, "/api/changes?after=yesterday", "token-feed");
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"].is_string(), "{}", bad.body);
    assert_eq!(get(http, "/api/changes?limit=0", "token-feed").status, 400);
    assert_eq!(
        get(http, "/api/changes?colour=red", "token-feed").status,
        400
    );

    // The integrator is up to date with the first ten.
    publish(&client, 0, 10, start);
    let mut seen = 0;
    let mut cursor = "0".to_string();
    wait_until("the first ten", Duration::from_secs(30), || {
        let (lines, next) = read_to_end(http, "token-feed", &cursor);
        seen += lines.len();
        cursor = next;
        seen >= 10
    });
    assert_eq!(seen, 10);
    let resume_from = cursor.clone();

    // It stops. 5,000 alerts and 100 comments, a SIGKILL in the middle.
    publish(&client, 10, 2510, start);
    for seq in (10..2510).step_by(50) {
        comment(http, seq, start);
    }
    wait_progressing(
        "the broker to take the first half",
        Duration::from_secs(60),
        || {
            let a = acked.load(std::sync::atomic::Ordering::SeqCst);
            (a, a >= 2510)
        },
    );
    drop(centre); // SIGKILL
    publish(&client, 2510, 5010, start);
    centre = run_pipeline(&pipeline, "watchfloor.log");
    wait_until(
        "the centre to answer again",
        Duration::from_secs(60),
        || call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200),
    );
    for seq in (2510..5010).step_by(50) {
        comment(http, seq, start);
    }

    // It resumes from its cursor.
    let mut lines = Vec::new();
    let mut cursor = resume_from.clone();
    wait_progressing(
        "the feed to hold 5,100 lines",
        Duration::from_secs(60),
        || {
            let (more, next) = read_to_end(http, "token-feed", &cursor);
            lines.extend(more);
            cursor = next;
            (lines.len() as u64, lines.len() >= 5100)
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let (late, _) = read_to_end(http, "token-feed", &cursor);
    assert!(late.is_empty(), "lines after the expected ones: {late:?}");
    assert_eq!(
        lines.len(),
        5100,
        "exactly the 5,000 firings and 100 comments"
    );
    let cursors: Vec<i64> = lines
        .iter()
        .map(|l| l["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "commit order, no repeats"
    );
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    let mut commented: BTreeMap<String, usize> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let key = l["alert"]["key"].as_str().unwrap().to_string();
        match l["event"].as_str().unwrap() {
            "fired" => assert!(fired.insert(key, i).is_none(), "fired twice: {l}"),
            "commented" => {
                assert_eq!(l["by"], "op");
                assert!(commented.insert(key, i).is_none(), "commented twice: {l}");
            }
            other => panic!("unexpected line `{other}`: {l}"),
        }
    }
    let want: BTreeSet<String> = (10..5010).map(|s| s.to_string()).collect();
    assert_eq!(fired.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(commented.len(), 100);
    for (key, at) in &commented {
        assert!(
            fired[key] < *at,
            "reading {key}: its comment before its firing"
        );
    }

    // Scoped: these alerts are in no commune, so a commune's operator reads none of them.
    let (ward_lines, _) = read_to_end(http, "token-ward", "0");
    assert!(
        ward_lines.is_empty(),
        "{} lines outside the commune",
        ward_lines.len()
    );
    drop(centre);
}
