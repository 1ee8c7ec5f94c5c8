//! What a drill caused, gathered for its after-action report: the exercise's alerts (from
//! the incident store when there is one, else the hub), their acknowledgements, and the
//! steps of the playbook runs they started; all put on the drill's own clock and scored.
//!
//! Invariants: every time in the report is drill time (ms from the start, pauses not
//! counted), so an alert fired by an injected reading is timed by event times exactly;
//! the report names the exercise and its status, and lists its timeline in time order.

use serde_json::{json, Value};

use watchfloor_drills::{score, Observed, SeenAlert, SeenStep};
use watchfloor_model::EXERCISE_LABEL;
use watchfloor_store::AlertQuery;

use super::progress::Exercise;
use crate::hub::Hub;

/// An alert of the exercise as seen: id, rule, key, fired (wall), acknowledged (wall).
struct Fired {
    alert_id: String,
    rule: String,
    key: String,
    fired_at: i64,
    acked_at: Option<i64>,
    acked_by: Option<String>,
}

/// The exercise's alerts: the store's (when there is one), with the hub's newer view of
/// those it holds (the store writer may be a moment behind).
async fn alerts_of(hub: &Hub, ex: &Exercise) -> Vec<Fired> {
    let mine = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(EXERCISE_LABEL) == Some(&ex.id)
    };
    let mut found: std::collections::BTreeMap<String, Fired> = Default::default();
    if let Some(store) = hub.store() {
        let mut query = AlertQuery {
            from: Some(ex.started_at - 60_000),
            limit: 1000,
            ..AlertQuery::default()
        };
        loop {
            match store.store().query(&query).await {
                Ok(page) => {
                    for a in page.alerts.into_iter().filter(|a| mine(&a.labels)) {
                        let fired = Fired {
                            alert_id: a.alert_id.clone(),
                            rule: a.rule,
                            key: a.key,
                            fired_at: a.fired_at,
                            acked_at: a.ack.as_ref().map(|k| k.1),
                            acked_by: a.ack.map(|k| k.0),
                        };
                        found.insert(a.alert_id, fired);
                    }
                    match page.next {
                        Some(next) => query.cursor = Some(next),
                        None => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "drill report: the store's alerts unreadable; the hub's used");
                    break;
                }
            }
        }
    }
    for a in hub.alerts().into_iter().filter(|a| mine(&a.labels)) {
        let fired = Fired {
            alert_id: a.alert_id.clone(),
            rule: a.rule,
            key: a.key,
            fired_at: a.fired_at,
            acked_at: a.acknowledged.as_ref().map(|k| k.at),
            acked_by: a.acknowledged.map(|k| k.by),
        };
        found.insert(a.alert_id, fired);
    }
    let mut all: Vec<Fired> = found.into_values().collect();
    all.sort_by(|a, b| (a.fired_at, &a.alert_id).cmp(&(b.fired_at, &b.alert_id)));
    all
}

/// The steps of the exercise's playbook runs (wall times), with their run.
fn steps_of(hub: &Hub, ex: &Exercise) -> Vec<(String, String, Value)> {
    let Some(link) = hub.playbooks.get() else {
        return Vec::new();
    };
    let views = link.views.lock().expect("views lock");
    let mut steps = Vec::new();
    for view in views.values() {
        let data = &view.data;
        if data["subject"]["exercise"].as_str() != Some(ex.id.as_str()) {
            continue;
        }
        let (Some(alert), Some(playbook)) = (data["alert_id"].as_str(), data["playbook"].as_str())
        else {
            continue;
        };
        for step in data["steps"].as_array().into_iter().flatten() {
            steps.push((alert.to_string(), playbook.to_string(), step.clone()));
        }
    }
    steps
}

/// The after-action report of `ex` as things stand at `now`.
pub(crate) async fn report(hub: &Hub, ex: &Exercise, now: i64) -> Value {
    let at = |wall: i64| ex.drill_ms_at(wall);
    let fired = alerts_of(hub, ex).await;
    let mut timeline: Vec<Value> = Vec::new();
    for (inject, at_ms) in &ex.progress.injected {
        timeline.push(json!({"at_ms": at_ms, "kind": "inject", "what": inject}));
    }
    for m in &ex.progress.messages {
        timeline.push(json!({"at_ms": m.at_ms, "kind": "message", "what": m.text}));
    }
    let alerts: Vec<SeenAlert> = fired
        .iter()
        .map(|f| {
            timeline.push(json!({"at_ms": at(f.fired_at), "kind": "alert", "what": format!("{} {}", f.rule, f.key), "alert_id": f.alert_id}));
            if let Some(acked) = f.acked_at {
                timeline.push(json!({"at_ms": at(acked), "kind": "ack", "what": format!("{} {}", f.rule, f.key), "by": f.acked_by, "alert_id": f.alert_id}));
            }
            SeenAlert {
                alert_id: f.alert_id.clone(),
                rule: f.rule.clone(),
                key: f.key.clone(),
                fired_at: at(f.fired_at),
                acked_at: f.acked_at.map(at),
            }
        })
        .collect();
    let mut steps: Vec<SeenStep> = Vec::new();
    for (alert, playbook, step) in steps_of(hub, ex) {
        let (Some(id), Some(started)) = (step["id"].as_str(), step["started_at"].as_i64()) else {
            continue;
        };
        let done = step["status"].as_str() == Some("done");
        let completed = step["finished_at"].as_i64().filter(|_| done);
        let breached = step["breached_at"].as_i64();
        timeline.push(json!({"at_ms": at(started), "kind": "step_started", "what": format!("{playbook}/{id}"), "alert_id": alert}));
        if let Some(c) = completed {
            timeline.push(json!({"at_ms": at(c), "kind": "step_done", "what": format!("{playbook}/{id}"), "by": step["by"], "alert_id": alert}));
        }
        if let Some(b) = breached {
            timeline.push(json!({"at_ms": at(b), "kind": "step_breached", "what": format!("{playbook}/{id}"), "alert_id": alert}));
        }
        steps.push(SeenStep {
            alert_id: alert,
            playbook,
            step: id.to_string(),
            started_at: at(started),
            completed_at: completed.map(at),
            breached_at: breached.map(at),
        });
    }
    timeline.sort_by_key(|e| e["at_ms"].as_i64().unwrap_or(0));
    let observed = Observed {
        injects: ex.progress.injected.clone(),
        alerts,
        steps,
    };
    let findings = score(&ex.drill, &observed);
    json!({
        "exercise": ex.id,
        "drill": ex.drill.id,
        "name": ex.drill.name,
        "file": ex.file,
        "status": ex.status.as_str(),
        "started_by": ex.started_by,
        "started_at": ex.started_at,
        "ended_at": ex.ended_at,
        "reported_at": now,
        "speed": ex.progress.clock.speed,
        "pauses": ex.progress.pauses,
        "drill_time_ms": at(ex.ended_at.unwrap_or(now)),
        "objectives": ex.drill.objectives,
        "expected": ex.drill.outcomes,
        "findings": findings,
        "observed": observed,
        "refused_injects": ex.progress.refused,
        "timeline": timeline,
    })
}
