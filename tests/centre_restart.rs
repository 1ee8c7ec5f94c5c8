//! The production command centre survives its process: `watchfloor run` with `[server]`
//! and `[store]` (SQLite, and a private PostgreSQL server) next to a real Mosquitto;
//! cameras keep reporting fires while operators acknowledge, assign, comment on and
//! resolve alerts through the API; the process is killed (SIGKILL) or stopped (SIGTERM)
//! in the middle and started again. Afterwards: every action that was answered 200 is in
//! its alert's history (and the acknowledgement and assignee on the alert), the alerts open
//! on the screen are exactly those open in the engine's own output, and every timeline
//! holds each engine transition once.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::http::{call, get};
use support::mosquitto::Mosquitto;
use support::{free_port, run_pipeline, scratch, wait_until, Killed};

const LOG: &str = "watchfloor.log";
const OPERATOR: &str = "token-operator";

fn write_centre(dir: &Path, mqtt: u16, http: u16, store: &str) -> PathBuf {
    support::centre::write_accounts(dir, "duty-operator", OPERATOR);
    // Whom alerts are assigned to: accounts that may act on them (free text is refused).
    let mut accounts = std::fs::read_to_string(dir.join("accounts.toml")).unwrap();
    for team in 0..10 {
        accounts += &format!(
            "[[account]]\nname = \"team-{team}\"\nrole = \"operator\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n",
            watchfloor_server::token_hash_hex(&format!("token-team-{team}"))
        );
    }
    std::fs::write(dir.join("accounts.toml"), accounts).unwrap();
    support::centre::write_pipeline(dir, mqtt, http, store, "")
}

/// Cameras publishing while the test runs: every camera in turn, mostly quiet detections,
/// a confident fire from a new camera every 25 messages; about 200 messages a second.
fn publish_until(
    mqtt: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut options = rumqttc::MqttOptions::new("centre-cameras", "127.0.0.1", mqtt);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        std::thread::spawn(move || for _ in connection.iter() {});
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let camera = format!("CT-CAM-{:02}", i % 36 + 1);
            let confidence = if i.is_multiple_of(25) { 0.95 } else { 0.3 };
            let (topic, payload) = support::centre::camera_detection(&camera, confidence);
            client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = client.disconnect();
    })
}

/// An action the API answered 200 to: alert, history event, detail.
type Done = (String, String, String);

/// An operator working the open alerts until the server stops answering: acknowledge,
/// assign, comment, and now and then resolve by hand. Returns what was answered 200.
fn operate(
    http: u16,
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<Done>>>,
    attempted: Arc<Mutex<Vec<(String, String)>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let Some(list) = call(
                http,
                "GET",
                "/api/alerts?state=open&limit=1000",
                Some(OPERATOR),
                None,
            ) else {
                return;
            };
            let Some(alerts) = list.body.as_array().cloned() else {
                return;
            };
            for a in alerts {
                let id = a["alert_id"].as_str().unwrap().to_string();
                n += 1;
                let (path, body, event, detail) = match n % 7 {
                    0 => (
                        "resolve",
                        json!({"note": format!("cleared {n}")}),
                        "resolved by hand",
                        format!("cleared {n}"),
                    ),
                    1 | 4 if a["acknowledged"].is_null() => (
                        "ack",
                        json!({"note": format!("on it {n}")}),
                        "acknowledged",
                        format!("on it {n}"),
                    ),
                    2 | 5 => (
                        "assign",
                        json!({"to": format!("team-{}", n % 10)}),
                        "assigned",
                        format!("team-{}", n % 10),
                    ),
                    _ => (
                        "comment",
                        json!({"text": format!("note {n}")}),
                        "commented",
                        format!("note {n}"),
                    ),
                };
                if path == "assign" || path == "ack" {
                    attempted.lock().unwrap().push((id.clone(), detail.clone()));
                }
                match call(
                    http,
                    "POST",
                    &format!("/api/alerts/{id}/{path}"),
                    Some(OPERATOR),
                    Some(&body),
                ) {
                    Some(answer) if answer.status == 200 => {
                        done.lock().unwrap().push((id, event.into(), detail))
                    }
                    Some(_) => {} // 409 (resolved meanwhile) or 503: not answered 200
                    None => return,
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        }
    })
}

/// Each alert's distinct transitions: (at, state).
type Transitions = BTreeMap<String, BTreeSet<(i64, String)>>;

/// The engine's own view from its output: each alert's distinct transitions, and the open
/// ones (last transition not `resolved`).
fn engine_output(dir: &Path) -> (Transitions, BTreeSet<String>) {
    let text = std::fs::read_to_string(dir.join("alerts.ndjson")).unwrap_or_default();
    let mut transitions = Transitions::new();
    let mut last: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for line in text.lines() {
        let Ok(t) = serde_json::from_str::<Value>(line) else {
            continue;
        }; // a torn last line
        let id = t["alert_id"].as_str().unwrap().to_string();
        let at = chrono::DateTime::parse_from_rfc3339(t["at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let state = t["state"].as_str().unwrap().to_string();
        transitions
            .entry(id.clone())
            .or_default()
            .insert((at, state.clone()));
        let l = last.entry(id).or_insert((at, state.clone()));
        if at >= l.0 {
            *l = (at, state);
        }
    }
    let open = last
        .into_iter()
        .filter(|(_, (_, s))| s != "resolved")
        .map(|(id, _)| id)
        .collect();
    (transitions, open)
}

fn open_on_screen(http: u16) -> BTreeSet<String> {
    get(http, "/api/alerts?state=open&limit=1000", OPERATOR)
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect()
}

fn start(pipeline: &Path, http: u16) -> Killed {
    let process = run_pipeline(pipeline, LOG);
    wait_until(
        "the command centre to answer /healthz",
        Duration::from_secs(30),
        || call(http, "GET", "/healthz", None, None).is_some_and(|a| a.status == 200),
    );
    process
}

fn restart_keeps_operator_work(name: &str, store: impl FnOnce(&Path) -> String, kill: bool) {
    let dir = scratch("centre", name);
    let mut broker = Mosquitto::start(&dir);
    let http = free_port();
    let pipeline = write_centre(&dir, broker.port, http, &store(&dir));
    let log = || support::log_of(&pipeline, LOG);
    let mut process = start(&pipeline, http);

    let stop_publishing = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = publish_until(broker.port, stop_publishing.clone(), sent.clone());
    wait_until("five open alerts", Duration::from_secs(30), || {
        open_on_screen(http).len() >= 5
    });
    let done = Arc::new(Mutex::new(Vec::new()));
    let stop_operating = Arc::new(AtomicBool::new(false));
    // Assignments sent, answered or not (one may be committed as the process dies, its
    // answer never sent).
    let attempted = Arc::new(Mutex::new(Vec::new()));
    let operator = operate(
        http,
        stop_operating.clone(),
        done.clone(),
        attempted.clone(),
    );
    wait_until(
        "40 operator actions answered 200",
        Duration::from_secs(60),
        || done.lock().unwrap().len() >= 40,
    );

    // Stopped while the operator is mid-work and the cameras keep publishing.
    if kill {
        process.0.kill().unwrap();
    } else {
        let pid = process.0.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
    }
    process.0.wait().unwrap();
    stop_operating.store(true, Ordering::Relaxed);
    operator.join().unwrap();
    let answered = done.lock().unwrap().clone();
    let process = start(&pipeline, http);
    stop_publishing.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let log_text = log();
    assert!(
        log_text.contains("alerts restored from the store"),
        "{log_text}"
    );

    // The broker redelivers what the stopped process had not acknowledged: wait until the
    // engine's output has been quiet for two seconds (the backlog is drained), then until
    // the screen shows the same open alerts (the store writer is a few milliseconds behind).
    let output_len = || std::fs::metadata(dir.join("alerts.ndjson")).map_or(0, |m| m.len());
    let mut last = (output_len(), std::time::Instant::now());
    wait_until(
        "the engine's output to settle",
        Duration::from_secs(30),
        || {
            let len = output_len();
            if len != last.0 {
                last = (len, std::time::Instant::now());
            }
            last.1.elapsed() >= Duration::from_secs(2)
        },
    );
    let (transitions, open) = engine_output(&dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut screen = open_on_screen(http);
    while screen != open && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        screen = open_on_screen(http);
    }
    assert_eq!(
        screen,
        open,
        "{name}: open on the screen = open in the engine (screen only: {:?}; engine only: {:?})",
        screen.difference(&open).collect::<Vec<_>>(),
        open.difference(&screen).collect::<Vec<_>>()
    );

    let attempted = attempted.lock().unwrap().clone();
    // Every action answered 200 is in its alert's history; acknowledgements and the latest
    // assignment are on the alert.
    let mut checked = BTreeSet::new();
    for (id, event, detail) in &answered {
        let alert = get(http, &format!("/api/alerts/{id}"), OPERATOR);
        assert_eq!(
            alert.status, 200,
            "{name}: alert {id} after the restart: {:?}",
            alert.body
        );
        let history = alert.body["history"].as_array().unwrap();
        assert!(
            history.iter().any(|h| h["event"] == event.as_str() && h["detail"] == detail.as_str() && h["by"] == "duty-operator"),
            "{name}: `{event} {detail}` on {id}, answered 200 before the stop, is in its history: {history:#?}"
        );
        if event == "acknowledged" {
            // This acknowledgement's note, or a later one's (sent, maybe cut off unanswered).
            let notes: Vec<&str> = attempted
                .iter()
                .filter(|(a, d)| a == id && d.starts_with("on it "))
                .map(|(_, d)| d.as_str())
                .collect();
            let from = notes
                .iter()
                .position(|d| *d == detail)
                .expect("answered, so sent");
            let note = alert.body["acknowledged"]["note"]
                .as_str()
                .unwrap_or_default();
            assert!(
                notes[from..].contains(&note),
                "{name}: {id}: note `{note}`, sent {notes:?}"
            );
        }
        if checked.insert(id.clone()) {
            // Each engine transition once, the same as the engine's output.
            // (The reconciliation's own lines — resolved at restart, reopened — are not the
            // engine's.)
            let engine_line = |h: &&Value| {
                h["by"].is_null()
                    && ["fired", "escalated", "resolved"].contains(&h["event"].as_str().unwrap())
            };
            let engine: BTreeSet<(i64, String)> = history
                .iter()
                .filter(engine_line)
                .map(|h| {
                    let state = if h["event"] == "resolved" {
                        "resolved"
                    } else {
                        "firing"
                    };
                    (h["at"].as_i64().unwrap(), state.to_string())
                })
                .collect();
            let lines = history.iter().filter(engine_line).count();
            assert_eq!(
                lines,
                engine.len(),
                "{name}: {id}: an engine transition twice in {history:#?}"
            );
            assert_eq!(
                &engine, &transitions[id],
                "{name}: {id}: the timeline holds the engine's transitions"
            );
            assert_eq!(history[0]["event"], "fired", "{name}: {id}");
        }
    }
    // The assignee is the last assignment answered 200, or one sent after it whose answer the
    // stop cut off (committed, not answered): never an older one.
    let last_assigned: BTreeMap<&str, &str> = answered
        .iter()
        .filter(|(_, e, _)| e == "assigned")
        .map(|(id, _, d)| (id.as_str(), d.as_str()))
        .collect();
    for (id, to) in last_assigned {
        let alert = get(http, &format!("/api/alerts/{id}"), OPERATOR);
        let sent: Vec<&str> = attempted
            .iter()
            .filter(|(a, d)| a == id && d.starts_with("team-"))
            .map(|(_, d)| d.as_str())
            .collect();
        let from = sent
            .iter()
            .rposition(|d| *d == to)
            .expect("answered, so sent");
        let assignee = alert.body["assignee"].as_str().unwrap_or_default();
        assert!(
            sent[from..].contains(&assignee),
            "{name}: {id} is assigned to `{assignee}`, not `{to}` (the last answered) nor one sent after it: {sent:?}"
        );
    }
    println!(
        "{name}: {} messages published, {} actions answered 200 before the {}, {} alerts open after, all kept",
        sent.load(Ordering::Relaxed),
        answered.len(),
        if kill { "SIGKILL" } else { "SIGTERM" },
        open.len()
    );
    drop(process);
    broker.stop();
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("state/incidents.db").display())
}

fn postgres() -> &'static watchfloor_store::testing::TestPostgres {
    static PG: std::sync::OnceLock<watchfloor_store::testing::TestPostgres> =
        std::sync::OnceLock::new();
    PG.get_or_init(watchfloor_store::testing::TestPostgres::start)
}

#[test]
fn sqlite_keeps_operator_work_across_sigkill() {
    restart_keeps_operator_work("sqlite-kill", sqlite, true);
}

#[test]
fn sqlite_keeps_operator_work_across_sigterm() {
    restart_keeps_operator_work("sqlite-term", sqlite, false);
}

#[test]
fn postgres_keeps_operator_work_across_sigkill() {
    restart_keeps_operator_work(
        "postgres-kill",
        |_| postgres().database("centre_kill"),
        true,
    );
}

#[test]
fn postgres_keeps_operator_work_across_sigterm() {
    restart_keeps_operator_work(
        "postgres-term",
        |_| postgres().database("centre_term"),
        false,
    );
}
