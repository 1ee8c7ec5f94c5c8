//! `/api/drills`: the drill scripts that can be started, the drills (in progress, and those
//! stored), starting one (`POST /api/drills` with a script id, or a script's text as
//! `watchfloor drill start` sends it), steering it (`POST /api/drills/{id}/pause`,
//! `resume`, `end`, `abort`) and its after-action report (`GET /api/drills/{id}/report`:
//! live while it runs, the stored one once it ended).
//!
//! Invariants: only admins and drill leaders start or steer drills (others: 403, audited);
//! integrators see nothing of drills (403); every start, change and refusal is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::service::{Control, Request};
use super::Link;
use crate::api::{error, ApiError, Authed};
use crate::auth::{Account, Role};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/drills", get(list).post(start))
        .route("/api/drills/scripts", get(scripts))
        .route("/api/drills/:id", get(one))
        .route("/api/drills/:id/report", get(report))
        .route("/api/drills/:id/:control", post(control))
}

fn link(s: &AppState) -> Result<&std::sync::Arc<Link>, ApiError> {
    s.hub
        .drills
        .get()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "this centre runs no drills"))
}

fn refusal((status, message): (u16, String)) -> ApiError {
    error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        message,
    )
}

/// Who may read drills: every account but integrators (drills never reach their feeds).
fn may_read(s: &AppState, who: &Account) -> Result<(), ApiError> {
    if who.role == Role::Integrator {
        // Recorded as a refusal by the guard (within the caller's allowance).
        let _ = s;
        return Err(error(StatusCode::FORBIDDEN, "integrators see no drills"));
    }
    Ok(())
}

fn may_lead(s: &AppState, who: &Account, what: &str, target: &str) -> Result<(), ApiError> {
    if !who.may_lead_drills() {
        s.hub.audit(
            &who.name,
            "drill refused",
            target,
            json!({"status": 403, "action": what}),
        );
        return Err(error(
            StatusCode::FORBIDDEN,
            "only admins and drill leaders start or steer drills",
        ));
    }
    Ok(())
}

async fn scripts(State(s): State<AppState>, Authed(who): Authed) -> Result<Response, ApiError> {
    may_read(&s, &who)?;
    let link = link(&s)?;
    let list: Vec<&Value> = link.scripts.iter().map(|x| &x.summary).collect();
    Ok(Json(json!({ "scripts": list })).into_response())
}

async fn list(State(s): State<AppState>, Authed(who): Authed) -> Result<Response, ApiError> {
    may_read(&s, &who)?;
    let link = link(&s)?;
    let mut drills: std::collections::BTreeMap<String, Value> = Default::default();
    if let Some(store) = &link.store {
        let rows = store
            .drills()
            .await
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        for row in rows {
            drills.insert(
                row.id.clone(),
                json!({
                    "id": row.id, "drill": row.drill, "file": row.file, "status": row.status,
                    "started_by": row.started_by, "started_at": row.started_at,
                    "ended_at": row.ended_at, "report": row.report.is_some(),
                }),
            );
        }
    }
    for (id, view) in link.views.lock().expect("views lock").iter() {
        drills.insert(id.clone(), view.clone());
    }
    let mut all: Vec<Value> = drills.into_values().collect();
    all.sort_by_key(|d| std::cmp::Reverse(d["started_at"].as_i64().unwrap_or(0)));
    Ok(Json(json!({ "drills": all })).into_response())
}

async fn one(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    may_read(&s, &who)?;
    let link = link(&s)?;
    if let Some(view) = link.views.lock().expect("views lock").get(&id) {
        return Ok(Json(view.clone()).into_response());
    }
    let row = stored(link, &id).await?;
    Ok(Json(json!({
        "id": row.id, "drill": row.drill, "file": row.file, "status": row.status,
        "started_by": row.started_by, "started_at": row.started_at, "ended_at": row.ended_at,
        "progress": serde_json::from_str::<Value>(&row.progress).unwrap_or(Value::Null),
        "report": row.report.is_some(),
    }))
    .into_response())
}

async fn stored(link: &Link, id: &str) -> Result<watchfloor_store::DrillRow, ApiError> {
    let none = || error(StatusCode::NOT_FOUND, format!("no drill `{id}`"));
    let Some(store) = &link.store else {
        return Err(none());
    };
    store
        .drill(id)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .ok_or_else(none)
}

async fn report(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    may_read(&s, &who)?;
    let link = link(&s)?;
    let live = link.views.lock().expect("views lock").contains_key(&id);
    if live {
        let ex = link
            .snapshot(&id)
            .await
            .map_err(refusal)?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no drill `{id}`")))?;
        // Computed here, off the drill task (it reads the store).
        let report = match ex.report.clone() {
            Some(report) => report,
            None => super::observe::report(&s.hub, &ex, crate::hub::now_ms()).await,
        };
        return Ok(Json(report).into_response());
    }
    let row = stored(link, &id).await?;
    match row.report {
        Some(report) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            report,
        )
            .into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("drill `{id}` has no report yet"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// A script of the centre's drill folder, by drill id.
    drill: Option<String>,
    /// Or a script's text (with the file name it came from).
    text: Option<String>,
    file: Option<String>,
    /// Drill ms per wall ms (default 1).
    speed: Option<f64>,
}

async fn start(
    State(s): State<AppState>,
    Authed(who): Authed,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    may_lead(&s, &who, "start", "drills")?;
    let link = link(&s)?;
    let Json(body) = body.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (file, text) = match (&body.drill, &body.text) {
        (Some(id), None) => {
            let script =
                link.scripts.iter().find(|x| &x.id == id).ok_or_else(|| {
                    error(StatusCode::NOT_FOUND, format!("no drill script `{id}`"))
                })?;
            (script.file.clone(), script.text.clone())
        }
        (None, Some(text)) => (
            body.file.clone().unwrap_or_else(|| "drill.yaml".into()),
            text.clone(),
        ),
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "give `drill` (a script id) or `text` (a script), not both",
            ))
        }
    };
    let speed = body.speed.unwrap_or(1.0);
    let answer = link
        .ask(|reply| Request::Start {
            file: file.clone(),
            text,
            speed,
            by: who.name.clone(),
            reply,
        })
        .await;
    match &answer {
        Ok(view) => s.hub.audit(
            &who.name,
            "drill started",
            view["id"].as_str().unwrap_or("?"),
            json!({"file": file, "speed": speed}),
        ),
        Err((status, why)) => s.hub.audit(
            &who.name,
            "drill start refused",
            &file,
            json!({"status": status, "why": why}),
        ),
    }
    let view = answer.map_err(refusal)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn control(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path((id, control)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let what = match control.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "end" => Control::End,
        "abort" => Control::Abort,
        other => {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no drill action `{other}` (pause, resume, end, abort)"),
            ))
        }
    };
    may_lead(&s, &who, &control, &id)?;
    let link = link(&s)?;
    let answer = link
        .ask(|reply| Request::Control {
            id: id.clone(),
            control: what,
            by: who.name.clone(),
            reply,
        })
        .await;
    match &answer {
        Ok(_) => s
            .hub
            .audit(&who.name, &format!("drill {control}"), &id, json!({})),
        Err((status, why)) => s.hub.audit(
            &who.name,
            &format!("drill {control} refused"),
            &id,
            json!({"status": status, "why": why}),
        ),
    }
    answer.map(|v| Json(v).into_response()).map_err(refusal)
}
