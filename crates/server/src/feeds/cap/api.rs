//! `GET /cap/alerts/{identifier}.xml` (one message, `application/cap+xml`) and
//! `GET /cap/feed.atom?zone=<commune>&limit=` (the newest messages as Atom 1.0 entries,
//! each linking its message).
//!
//! Invariants: without `[server.cap] public` a token is needed and the caller's scope
//! applies (404 outside it, as for alerts); public or not, a drill's messages are never in
//! the feed and a drill's message is served only to an authenticated caller who sees it.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use watchfloor_store::AlertQuery;

use super::{message, CapConfig, Sender, CONFIG};
use crate::api::{error, ApiError};
use crate::auth::Account;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/cap/alerts/:file", get(one))
        .route("/cap/feed.atom", get(feed))
}

fn config() -> CapConfig {
    CONFIG.get().cloned().unwrap_or_else(|| CapConfig {
        sender: Sender {
            sender: "watchfloor@ioc.local".into(),
            sender_name: "Watchfloor".into(),
        },
        public: false,
    })
}

/// The caller, when the request carries a valid token; `None` for an anonymous reader of a
/// public feed; 401 when a token is needed.
fn caller(s: &AppState, headers: &HeaderMap, public: bool) -> Result<Option<Account>, ApiError> {
    let token = crate::api::bearer_token(headers);
    match token.and_then(|t| s.accounts.authenticate(t)) {
        Some(account) => Ok(Some((*account).clone())),
        None if public => Ok(None),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "a bearer token is needed (the CAP feed is not public)",
        )),
    }
}

fn store(s: &AppState) -> Result<&watchfloor_store::Store, ApiError> {
    s.hub.store().map(|w| w.store()).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "CAP messages need the incident store ([store])",
        )
    })
}

fn unavailable(e: watchfloor_store::StoreError) -> ApiError {
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn one(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let cfg = config();
    let who = caller(&s, &headers, cfg.public)?;
    let missing = || error(StatusCode::NOT_FOUND, format!("no CAP message `{file}`"));
    // wf-<alert id>-<line>.xml
    let (alert_id, seq) = file
        .strip_suffix(".xml")
        .and_then(|f| f.strip_prefix("wf-"))
        .and_then(|f| f.rsplit_once('-'))
        .and_then(|(a, n)| Some((a.to_string(), n.parse::<i64>().ok()?)))
        .ok_or_else(missing)?;
    let store = store(&s)?;
    let lines = store
        .alert_transitions(&alert_id)
        .await
        .map_err(unavailable)?;
    let at = lines
        .iter()
        .position(|l| l.seq == seq)
        .ok_or_else(missing)?;
    let line = &lines[at];
    let exercise = line
        .alert
        .labels
        .contains_key(watchfloor_model::EXERCISE_LABEL);
    let visible = match &who {
        Some(account) => account.sees(
            line.alert.ward.as_deref(),
            line.alert.district.as_deref(),
            &line.alert.sectors,
        ),
        None => !exercise,
    };
    if !visible {
        return Err(missing());
    }
    let city = s.hub.city();
    let xml = super::to_xml(
        message(&cfg.sender, city.as_deref(), line, &lines[..at])
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?,
    );
    Ok((
        [(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    zone: Option<String>,
    limit: Option<usize>,
}

async fn feed(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let cfg = config();
    let who = caller(&s, &headers, cfg.public)?;
    let Query(q) = q.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("limit {limit}: from 1 to 500"),
        ));
    }
    let mut scope = AlertQuery::default();
    if let Some(account) = &who {
        crate::report::scope_query(&mut scope, account);
    }
    if let Some(zone) = &q.zone {
        if !scope.wards.is_empty() && !scope.wards.contains(zone) {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("commune `{zone}` is outside your scope"),
            ));
        }
        scope.wards = vec![zone.clone()];
    }
    let lines = store(&s)?
        .recent_transitions(limit, &scope, false)
        .await
        .map_err(unavailable)?;
    // Links relative to the feed (never built from the request's Host header).
    let atom = super::atom(&cfg.sender, "", &lines);
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        atom,
    )
        .into_response())
}
