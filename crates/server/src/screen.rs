//! What the wall screen needs beyond alerts and KPIs, to be trusted at 3 a.m.:
//! `GET /api/status` (the server's epoch — a new one after every restart, so an open page
//! knows its state was reset —, how long since the last message of each station kind,
//! and why the centre is degraded), `GET /api/basemap` (rivers, main roads and landmarks
//! of the city, GeoJSON shipped beside the zones, drawn without tiles), and
//! `GET /api/alerts/{id}/assignees` (who an alert may be assigned to: the accounts that see
//! it and may act on it, to choose from a list).

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use watchfloor_model::Kind;

use crate::api::{error, ApiError, Authed};
use crate::AppState;

/// `GET /api/status`.
pub(crate) async fn status(State(s): State<AppState>, Authed(who): Authed) -> Json<Value> {
    let hub = &s.hub;
    let now = crate::hub::now_ms();
    let freshness: Vec<Value> = Kind::ALL
        .iter()
        .filter_map(|k| {
            let last = hub.counters.last_event_by_kind[k.index()].load(Ordering::Relaxed);
            (last > 0).then(|| json!({"kind": k.as_str(), "last_ts": last, "age_s": (now - last).max(0) / 1000}))
        })
        .collect();
    let mut degraded = Vec::new();
    if let Some(stuck) = s.stats.output_stuck() {
        degraded.push(format!("output stuck: {stuck}"));
    }
    if let Some(store) = hub.store() {
        if store.health().degraded.load(Ordering::Relaxed) {
            degraded.push(format!(
                "incident store ({}) not writable",
                store.store().backend()
            ));
        }
    }
    Json(json!({
        "epoch": hub.epoch(),
        "started_at": hub.started_at(),
        "now": now,
        "freshness": freshness,
        "degraded": degraded,
        "account": who.name,
    }))
}

/// `GET /api/basemap`: `city/basemap.geojson` beside the rules (404 when the city has none).
pub(crate) async fn basemap(
    State(s): State<AppState>,
    Authed(_): Authed,
) -> Result<Json<Value>, ApiError> {
    let file = s.rules_dir.join("city/basemap.geojson");
    let text = std::fs::read_to_string(&file).map_err(|_| {
        error(
            StatusCode::NOT_FOUND,
            "this city has no base map (city/basemap.geojson)",
        )
    })?;
    let geo: Value = serde_json::from_str(&text).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("city/basemap.geojson: {e}"),
        )
    })?;
    Ok(Json(geo))
}

/// The accounts that see `alert` and may act on it: whom it may be assigned to.
pub(crate) fn assignable(
    s: &AppState,
    alert: &crate::hub::AlertRecord,
) -> Vec<std::sync::Arc<crate::auth::Account>> {
    s.accounts
        .all()
        .into_iter()
        .filter(|a| {
            a.may_act()
                && a.sees(
                    alert.ward.as_deref(),
                    alert.district.as_deref(),
                    &alert.sectors,
                )
        })
        .collect()
}

/// `GET /api/alerts/{id}/assignees`: the accounts that see the alert and may act on it.
pub(crate) async fn assignees(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let alert = s
        .hub
        .alert(&id)
        .filter(|a| who.sees(a.ward.as_deref(), a.district.as_deref(), &a.sectors))
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no alert `{id}` in your scope"),
            )
        })?;
    let mut people: Vec<Value> = assignable(&s, &alert)
        .into_iter()
        .map(|a| json!({"name": a.name, "role": a.role, "scope": a.scope, "sectors": a.sectors}))
        .collect();
    people.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(json!({"alert_id": id, "assignees": people})))
}
