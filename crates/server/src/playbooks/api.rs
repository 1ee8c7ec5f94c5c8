//! `/api/playbooks` (what can run), `/api/runs` (runs in the caller's scope, by alert or
//! state), `/api/runs/{id}` (a run with its stored timeline), `POST
//! /api/runs/{id}/steps/{step}` (complete, choose, approve, reject, reassign, comment) and
//! `POST /api/runs` (a playbook started by hand on an alert or a reported incident).
//!
//! Invariants: a run outside the caller's area and sectors is 404, as alerts are; every
//! action and refusal is audited; a reassignment names an account that may act on the
//! run's commune and sectors; an answer 200/201 means the change is stored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use watchfloor_model::{AlertState, Severity};
use watchfloor_playbooks::{Action, Actor, Subject};

use super::service::Request;
use super::Link;
use crate::api::{error, ApiError, Authed};
use crate::auth::{Account, Role, Scope};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/playbooks", get(playbooks))
        .route("/api/runs", get(list).post(start))
        .route("/api/runs/:id", get(one))
        .route("/api/runs/:id/steps/:step", post(act))
}

fn link(s: &AppState) -> Result<&std::sync::Arc<Link>, ApiError> {
    s.hub.playbooks.get().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "this centre has no playbooks ([server] playbooks)",
        )
    })
}

fn actor(who: &Account) -> Actor {
    let role = match who.role {
        Role::Admin => "admin",
        Role::Operator => "operator",
        Role::Viewer => "viewer",
        Role::Integrator => "integrator",
        Role::DrillLeader => "drill_leader",
    };
    let communes = match &who.scope {
        Scope::City => None,
        Scope::Communes(ids) => Some(ids.clone()),
        Scope::District(_) => Some(Vec::new()),
    };
    Actor {
        name: who.name.clone(),
        role: role.into(),
        communes,
    }
}

fn refusal((status, message): (u16, String)) -> ApiError {
    error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        message,
    )
}

async fn playbooks(
    State(s): State<AppState>,
    Authed(_who): Authed,
) -> Result<Json<Value>, ApiError> {
    let link = link(&s)?;
    Ok(Json(
        json!({"playbooks": link.playbooks.lock().expect("playbooks lock").clone()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    alert: Option<String>,
    state: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Authed(who): Authed,
    crate::extract::Q(q): crate::extract::Q<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    link(&s)?;
    let state = q.state.as_deref().unwrap_or("all");
    if !matches!(state, "open" | "finished" | "all") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("state `{state}`: open, finished or all"),
        ));
    }
    let runs: Vec<Value> = s
        .hub
        .run_views()
        .into_iter()
        .filter(|v| who.sees(v.ward.as_deref(), None, &v.sectors))
        .filter(|v| q.alert.is_none() || v.alert_id == q.alert)
        .filter(|v| state == "all" || (state == "finished") == v.finished)
        .map(|v| v.data)
        .collect();
    Ok(Json(json!({"runs": runs})))
}

fn visible(s: &AppState, who: &Account, id: &str) -> Result<Value, ApiError> {
    let link = link(s)?;
    let views = link.views.lock().expect("views lock");
    views
        .get(id)
        .filter(|v| who.sees(v.ward.as_deref(), None, &v.sectors))
        .map(|v| v.data.clone())
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no run `{id}` in your scope"),
            )
        })
}

async fn one(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut run = visible(&s, &who, &id)?;
    let store = s
        .hub
        .store()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "no incident store"))?
        .store()
        .clone();
    let timeline = store
        .run_events(&id)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    run["timeline"] = serde_json::to_value(
        timeline
            .into_iter()
            .map(|e| json!({"seq": e.seq, "at": e.at, "step": e.step, "event": e.event, "by": e.actor,
                "value": e.value.and_then(|v| serde_json::from_str::<Value>(&v).ok()), "note": e.note}))
            .collect::<Vec<_>>(),
    )
    .expect("json");
    Ok(Json(run))
}

async fn act(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path((id, step)): Path<(String, String)>,
    body: Result<Json<Action>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let run = visible(&s, &who, &id)?;
    let Json(action) =
        body.map_err(|e| error(StatusCode::BAD_REQUEST, format!("the action: {e}")))?;
    if let Action::Reassign { to, .. } = &action {
        let ward = run["subject"]["zone"].as_str();
        let sectors: Vec<String> =
            serde_json::from_value(run["subject"]["sectors"].clone()).unwrap_or_default();
        let ok = s
            .accounts
            .all()
            .iter()
            .any(|a| &a.name == to && a.may_act() && a.sees(ward, None, &sectors));
        if !ok {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{to}` is not an account that may act on this run"),
            ));
        }
    }
    let detail = serde_json::to_value(&action).unwrap_or(Value::Null);
    let answer = link(&s)?
        .ask(|reply| Request::Act {
            run: id.clone(),
            step: step.clone(),
            action,
            actor: actor(&who),
            reply,
        })
        .await;
    let target = format!("{id}/{step}");
    match &answer {
        Ok(_) => s.hub.audit(&who.name, "playbook step", &target, detail),
        Err((status, why)) => s.hub.audit(
            &who.name,
            "playbook step refused",
            &target,
            json!({"status": status, "why": why, "action": detail}),
        ),
    }
    answer.map(Json).map_err(refusal)
}

#[derive(Deserialize)]
struct Incident {
    title: String,
    zone: Option<String>,
    severity: Option<String>,
}

#[derive(Deserialize)]
struct StartBody {
    playbook: String,
    alert_id: Option<String>,
    incident: Option<Incident>,
}

async fn start(
    State(s): State<AppState>,
    Authed(who): Authed,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let link = link(&s)?.clone();
    let Json(body) =
        body.map_err(|e| error(StatusCode::BAD_REQUEST, format!("the request: {e}")))?;
    let (subject, incident) = match (&body.alert_id, &body.incident) {
        (Some(id), None) => {
            let a = s
                .hub
                .alert(id)
                .filter(|a| who.sees(a.ward.as_deref(), a.district.as_deref(), &a.sectors))
                .ok_or_else(|| {
                    error(
                        StatusCode::NOT_FOUND,
                        format!("no alert `{id}` in your scope"),
                    )
                })?;
            let subject = Subject {
                alert_id: Some(a.alert_id.clone()),
                rule: a.rule.clone(),
                key: a.key.clone(),
                zone: a.ward.clone(),
                zone_name: a.ward.as_ref().and_then(|w| {
                    s.hub
                        .city()
                        .and_then(|c| c.zones.get(w).map(|z| z.name.clone()))
                }),
                sectors: a.sectors.clone(),
                severity: a.severity,
                fired_severity: a.severity,
                state: if a.state == "resolved" {
                    AlertState::Resolved
                } else {
                    AlertState::Firing
                },
                value: a.value,
                message: a.message.clone(),
                labels: a.labels.clone(),
                exercise: a.labels.get("exercise").cloned(),
            };
            (subject, None)
        }
        (None, Some(inc)) => {
            let title = inc.title.trim();
            if title.is_empty() || title.chars().count() > 200 {
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "an incident needs a title of 1 to 200 characters",
                ));
            }
            let severity = match inc.severity.as_deref() {
                None => Severity::Major,
                Some(t) => Severity::parse(t)
                    .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("severity `{t}`")))?,
            };
            let city = s.hub.city();
            if let Some(z) = &inc.zone {
                if city.as_ref().is_some_and(|c| c.zones.get(z).is_none()) {
                    return Err(error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("no commune `{z}`"),
                    ));
                }
            }
            let playbook_sector = link
                .playbooks
                .lock()
                .expect("playbooks lock")
                .iter()
                .find(|p| p["id"] == body.playbook.as_str())
                .and_then(|p| p["sector"].as_str().map(str::to_string));
            let id = format!("inc-{}", crate::hub::now_ms());
            let subject = Subject {
                alert_id: None,
                rule: "incident".into(),
                key: title.to_string(),
                zone: inc.zone.clone(),
                zone_name: inc.zone.as_ref().and_then(|w| {
                    city.as_ref()
                        .and_then(|c| c.zones.get(w).map(|z| z.name.clone()))
                }),
                sectors: playbook_sector.into_iter().collect(),
                severity,
                fired_severity: severity,
                state: AlertState::Firing,
                value: None,
                message: title.to_string(),
                labels: Default::default(),
                exercise: None,
            };
            (subject, Some(id))
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "give either `alert_id` or `incident` {title, zone}",
            ))
        }
    };
    if !who.sees(subject.zone.as_deref(), None, &subject.sectors) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "that commune or sector is not yours",
        ));
    }
    let playbook = body.playbook.clone();
    let answer = link
        .ask(|reply| Request::Start {
            playbook: playbook.clone(),
            subject,
            incident,
            actor: actor(&who),
            reply,
        })
        .await;
    match &answer {
        Ok(run) => s.hub.audit(
            &who.name,
            "playbook started",
            run["id"].as_str().unwrap_or(&playbook),
            json!({"playbook": playbook}),
        ),
        Err((status, why)) => s.hub.audit(
            &who.name,
            "playbook start refused",
            &playbook,
            json!({"status": status, "why": why}),
        ),
    }
    answer
        .map(|run| (StatusCode::CREATED, Json(run)))
        .map_err(refusal)
}
