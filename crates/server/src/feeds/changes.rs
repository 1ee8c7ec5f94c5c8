//! `GET /api/changes?after=<cursor>&limit=<n>&exercises=include`: the changes feed. `after`
//! is the `next` of the previous page (absent or `0`: from the oldest line kept; `latest`:
//! only what comes after now); `limit` at most 1,000 (default 500). The answer is
//! `{"changes": [{cursor, at, event, by, detail, alert}], "next": "<cursor>", "more": bool}`:
//! read again with `after = next` until `more` is false, then poll.
//!
//! Invariants: `next` never goes backwards; a page holds only lines of alerts the caller
//! sees (area × sectors); a bad cursor or limit is a 400 with a JSON error.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use watchfloor_store::AlertQuery;

use crate::api::{error, ApiError, Authed};
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangesQuery {
    after: Option<String>,
    limit: Option<usize>,
    exercises: Option<String>,
}

pub(crate) async fn changes(
    State(s): State<AppState>,
    Authed(who): Authed,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let store = s.hub.store().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "the changes feed needs the incident store ([store])",
        )
    })?;
    let store = store.store();
    let unavailable =
        |e: watchfloor_store::StoreError| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let after: i64 = match q.after.as_deref() {
        None | Some("") => 0,
        Some("latest") => store.last_change().await.map_err(unavailable)?,
        Some(text) => text.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                format!("cursor `{text}`: the `next` of an earlier page, `0` or `latest`"),
            )
        })?,
    };
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > watchfloor_store::MAX_CHANGES {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("limit {limit}: from 1 to {}", watchfloor_store::MAX_CHANGES),
        ));
    }
    let exercises = match q.exercises.as_deref() {
        None | Some("exclude") => false,
        Some("include") => true,
        Some(other) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("exercises `{other}`: `include` or `exclude`"),
            ))
        }
    };
    let mut scope = AlertQuery::default();
    crate::report::scope_query(&mut scope, &who);
    let rows = store
        .changes(after, limit, &scope, exercises)
        .await
        .map_err(unavailable)?;
    let next = rows.last().map_or(after, |r| r.seq);
    let more = rows.len() == limit;
    let changes: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "cursor": r.seq.to_string(), "at": r.at, "event": r.event, "by": r.by,
                "detail": r.detail, "alert": r.alert,
            })
        })
        .collect();
    Ok(Json(json!({ "changes": changes, "next": next.to_string(), "more": more })).into_response())
}
