//! The REST API: alerts (list, get with history, acknowledge, resolve, comment, assign),
//! stations, KPIs, zones, rules (list, reload), the audit log, `/healthz`, `/metrics` and
//! the OpenAPI document. Every answer is filtered by the caller's scope.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{async_trait, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use watchfloor_engine::Acknowledgement;
use watchfloor_model::{Kind, Severity};
use watchfloor_pipeline::EngineCommand;

use crate::auth::{Account, Accounts};
use crate::extract::{Body, MaybeBody, Q};
use crate::hub::{mask, AckInfo, AlertRecord, HistoryEntry, LATENCY_BUCKETS_MS};
use crate::limits;
use crate::AppState;
use watchfloor_store::{
    Action as StoreAction, AuditRow, Change as StoreChange, Entry as StoreEntry,
};

/// How long a request may wait for the engine's answer before it is 503.
const ENGINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an operator's action may wait for the store before the answer is 503.
const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An API error: a status and a message, as `{"error": "…"}`.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            // RFC 6750: say which scheme, so a client knows to send a bearer token.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"watchfloor\""),
            );
        }
        response
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, as
/// RFC 7235 says).
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

/// The caller, from `Authorization: Bearer <token>`.
pub(crate) struct Authed(pub Arc<Account>);

#[async_trait]
impl<S> FromRequestParts<S> for Authed
where
    Arc<Accounts>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let accounts = Arc::<Accounts>::from_ref(state);
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
        accounts
            .authenticate(token.trim())
            .map(Authed)
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "unknown token"))
    }
}

impl FromRef<AppState> for Arc<Accounts> {
    fn from_ref(state: &AppState) -> Self {
        state.accounts.clone()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(guarded_metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/api/me", get(me))
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/:id", get(get_alert))
        .route("/api/alerts/:id/ack", post(acknowledge))
        .route("/api/alerts/:id/resolve", post(resolve))
        .route("/api/alerts/:id/comment", post(comment))
        .route("/api/alerts/:id/assign", post(assign))
        .route("/api/stations", get(list_stations))
        .route("/api/stations/:id", get(get_station))
        .route("/api/kpis", get(kpis))
        .route("/api/indicators", get(crate::indicators::list))
        .route("/api/indicators/reload", post(crate::indicators::reload))
        .route("/api/quality", get(crate::quality::quality))
        .route("/api/status", get(crate::screen::status))
        .route("/api/basemap", get(crate::screen::basemap))
        .route("/api/alerts/:id/assignees", get(crate::screen::assignees))
        .route("/api/zones", get(zones))
        .route("/api/rules", get(rules))
        .route("/api/rules/reload", post(reload))
        .route("/api/audit", get(audit))
        .route("/api/reports/daily", get(crate::report::daily))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

async fn me(State(s): State<AppState>, Authed(who): Authed) -> Json<Value> {
    // The account's sectors with their names (null: every sector), for the centre's title.
    let sectors = who.sectors.as_ref().map(|ids| {
        let city = s.hub.city();
        ids.iter()
            .map(|id| {
                let sector = city
                    .as_ref()
                    .and_then(|c| c.sectors.all().iter().find(|x| &x.id == id).cloned());
                json!({
                    "id": id,
                    "name_vi": sector.as_ref().map(|x| x.name_vi.clone()),
                    "name_en": sector.as_ref().map(|x| x.name_en.clone()),
                    "unit_vi": sector.as_ref().map(|x| x.unit_vi.clone()),
                    "unit_en": sector.as_ref().map(|x| x.unit_en.clone()),
                })
            })
            .collect::<Vec<_>>()
    });
    Json(json!({
        "name": who.name,
        "role": who.role,
        "scope": who.scope,
        "sectors": sectors,
        "view": who.sector_view(),
        "epoch": s.hub.epoch(),
        "may_act": who.may_act(),
        "may_lead_drills": who.may_lead_drills(),
        "admin": who.is_admin(),
    }))
}

/// Filters of `GET /api/alerts` (an unknown one is a 400).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    /// firing, acknowledged, resolved, or `open` (firing or acknowledged).
    state: Option<String>,
    /// Lowest severity.
    severity: Option<String>,
    /// A ward or district id.
    zone: Option<String>,
    /// Rule id.
    rule: Option<String>,
    /// Station kind.
    kind: Option<String>,
    /// Fired at or after (epoch ms).
    since: Option<i64>,
    /// Fired before (epoch ms).
    until: Option<i64>,
    /// At most this many, newest first (default 500; at most 1000 from the store).
    limit: Option<usize>,
    /// Where the previous page ended (the `next` of its `Link` header; store only).
    cursor: Option<String>,
}

/// A `format` parameter: `json` (the default) or `csv`; anything else is a 400.
pub(crate) fn wants_csv(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("`format` is json or csv, not `{other}`"),
        )),
    }
}

fn visible(who: &Account, a: &AlertRecord) -> bool {
    who.sees(a.ward.as_deref(), a.district.as_deref(), &a.sectors)
}

async fn list_alerts(
    State(s): State<AppState>,
    Authed(who): Authed,
    Q(q): Q<AlertQuery>,
) -> Result<Response, ApiError> {
    if let Some(state) = &q.state {
        if !["firing", "acknowledged", "resolved", "open"].contains(&state.as_str()) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("`state` is firing, acknowledged, resolved or open, not `{state}`"),
            ));
        }
    }
    let min_severity = match &q.severity {
        Some(text) => Some(Severity::parse(text).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                format!("unknown severity `{text}`"),
            )
        })?),
        None => None,
    };
    let kind = match &q.kind {
        Some(text) => Some(
            Kind::parse(text)
                .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("unknown kind `{text}`")))?,
        ),
        None => None,
    };
    if let Some(store) = s.hub.store() {
        return stored_alerts(store.store(), &who, &q, min_severity).await;
    }
    let mut alerts: Vec<AlertRecord> = s
        .hub
        .alerts()
        .into_iter()
        .filter(|a| visible(&who, a))
        .filter(|a| match q.state.as_deref() {
            None => true,
            Some("open") => a.state != "resolved",
            Some(state) => a.state == state,
        })
        .filter(|a| min_severity.is_none_or(|m| a.severity >= m))
        .filter(|a| {
            q.zone
                .as_deref()
                .is_none_or(|z| a.ward.as_deref() == Some(z) || a.district.as_deref() == Some(z))
        })
        .filter(|a| q.rule.as_deref().is_none_or(|r| a.rule == r))
        .filter(|a| kind.is_none_or(|k| a.kind == Some(k)))
        .filter(|a| q.since.is_none_or(|t| a.fired_at >= t))
        .filter(|a| q.until.is_none_or(|t| a.fired_at < t))
        .collect();
    alerts.sort_by_key(|a| std::cmp::Reverse(a.updated_at));
    alerts.truncate(q.limit.unwrap_or(500));
    Ok(Json(alerts).into_response())
}

/// `GET /api/alerts` with a store: the stored history, newest fired first, a page at a
/// time (cursor pagination: `Link: <…&cursor=…>; rel="next"` while there is more), scoped
/// to the caller. Records carry no history (`GET /api/alerts/{id}` has it).
async fn stored_alerts(
    store: &watchfloor_store::Store,
    who: &Account,
    q: &AlertQuery,
    min_severity: Option<Severity>,
) -> Result<Response, ApiError> {
    let limit = q
        .limit
        .unwrap_or(500)
        .clamp(1, watchfloor_store::query::MAX_PAGE);
    let mut query = watchfloor_store::AlertQuery {
        from: q.since,
        to: q.until,
        zone: q.zone.clone(),
        rule: q.rule.clone(),
        kind: q.kind.clone(),
        min_severity,
        state: q.state.clone(),
        limit,
        cursor: q.cursor.clone(),
        ..Default::default()
    };
    crate::report::scope_query(&mut query, who);
    let page = store.query(&query).await.map_err(|e| match e {
        watchfloor_store::StoreError::Fatal(m) if m.starts_with("bad cursor") => {
            error(StatusCode::BAD_REQUEST, m)
        }
        e => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })?;
    let records: Vec<AlertRecord> = page
        .alerts
        .into_iter()
        .map(|row| crate::persist::record_of(row, Vec::new()))
        .collect();
    let mut response = Json(records).into_response();
    if let Some(next) = page.next {
        let mut params = vec![
            format!("limit={limit}"),
            format!("cursor={}", urlencode(&next)),
        ];
        let keep = [
            ("state", &q.state),
            ("severity", &q.severity),
            ("zone", &q.zone),
            ("rule", &q.rule),
            ("kind", &q.kind),
        ];
        for (name, value) in keep {
            if let Some(v) = value {
                params.push(format!("{name}={}", urlencode(v)));
            }
        }
        for (name, value) in [("since", q.since), ("until", q.until)] {
            if let Some(v) = value {
                params.push(format!("{name}={v}"));
            }
        }
        let link = format!("</api/alerts?{}>; rel=\"next\"", params.join("&"));
        if let Ok(v) = header::HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(response)
}

/// Percent-encodes a query value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn visible_alert(s: &AppState, who: &Account, id: &str) -> Result<AlertRecord, ApiError> {
    s.hub.alert(id).filter(|a| visible(who, a)).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no alert `{id}` in your scope"),
        )
    })
}

async fn get_alert(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Json<AlertRecord>, ApiError> {
    if s.hub.alert(&id).is_some() {
        return visible_alert(&s, &who, &id).map(Json);
    }
    // Not on the screen any more (resolved long ago, or before a restart): the store's.
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no alert `{id}` in your scope"),
        )
    };
    let store = s.hub.store().ok_or_else(not_found)?;
    let stored = crate::persist::stored_record(store.store(), &id)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    stored
        .filter(|a| visible(&who, a))
        .map(Json)
        .ok_or_else(not_found)
}

/// Body of acknowledge, resolve, comment and assign (an unknown field is a 400).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionBody {
    note: Option<String>,
    text: Option<String>,
    to: Option<String>,
}

/// The note of an acknowledgement or resolution, within its limit.
fn note_of(body: Option<ActionBody>) -> Result<Option<String>, ApiError> {
    let note = body.and_then(|b| b.note).filter(|n| !n.trim().is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > limits::MAX_NOTE_CHARS)
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("a note has at most {} characters", limits::MAX_NOTE_CHARS),
        ));
    }
    Ok(note)
}

fn may_act(s: &AppState, who: &Account, id: &str) -> Result<AlertRecord, ApiError> {
    let record = visible_alert(s, who, id)?;
    if !who.may_act() {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("role {:?} may not change alerts", who.role),
        ));
    }
    Ok(record)
}

/// [`may_act`] on an alert that is still open (409 once it is resolved).
fn may_act_on_open(s: &AppState, who: &Account, id: &str) -> Result<(), ApiError> {
    if may_act(s, who, id)?.state == "resolved" {
        return Err(error(StatusCode::CONFLICT, "the alert is already resolved"));
    }
    Ok(())
}

/// Records an operator's action on an alert: the audit line (`action`), the change, a
/// history entry (`event`, `detail`) with who and when (`at`); the updated record goes out
/// as a delta.
async fn record_action(
    s: &AppState,
    who: &Account,
    id: &str,
    (action, event): (&str, &str),
    (at, detail): (i64, String),
    stored: StoreAction,
    change: impl FnOnce(&mut AlertRecord),
) -> Result<Json<AlertRecord>, ApiError> {
    let audit = json!({"detail": detail});
    match s.hub.store() {
        // Committed before anything answers 200 (or shows it on a screen).
        Some(store) => {
            let change = StoreChange::Action {
                alert_id: id.into(),
                row: s
                    .hub
                    .alert(id)
                    .map(|a| Box::new(crate::persist::row_of(&a))),
                action: stored,
                entry: StoreEntry {
                    at,
                    event: event.into(),
                    by: Some(who.name.clone()),
                    detail: detail.clone(),
                },
            };
            let line = AuditRow {
                at,
                by: who.name.clone(),
                action: action.into(),
                target: id.into(),
                detail: audit.clone(),
            };
            store
                .commit(vec![change], vec![line], STORE_TIMEOUT)
                .await
                .map_err(|e| {
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not stored, try again: {e}"),
                    )
                })?;
            s.hub.audit_local(at, &who.name, action, id, audit);
        }
        None => s.hub.audit(&who.name, action, id, audit),
    }
    s.hub
        .update_alert(id, |a| {
            change(a);
            HistoryEntry {
                at,
                event: event.into(),
                by: Some(who.name.clone()),
                detail,
            }
        })
        .map(Json)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "the alert is gone"))
}

async fn ask_engine<T>(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<T>) -> EngineCommand,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    s.commands
        .send(make(reply))
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the engine is not running"))?;
    match tokio::time::timeout(ENGINE_TIMEOUT, answer).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not answer",
        )),
        // The engine is held up (an output it waits for is stuck): say so, do not hang.
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the engine did not answer within {} s{}; try again",
                ENGINE_TIMEOUT.as_secs(),
                s.stats
                    .output_stuck()
                    .map(|why| format!(" (output stuck: {why})"))
                    .unwrap_or_default()
            ),
        )),
    }
}

/// An engine refusal as an API error: an unknown alert conflicts with the caller's view;
/// an action that could not be made durable is worth retrying.
pub(crate) fn engine_error(e: watchfloor_engine::EngineError) -> ApiError {
    match e {
        watchfloor_engine::EngineError::UnknownAlert(_)
        | watchfloor_engine::EngineError::Exercise(_) => error(StatusCode::CONFLICT, e.to_string()),
        watchfloor_engine::EngineError::Unavailable(_) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

async fn acknowledge(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<ActionBody>,
) -> Result<Json<AlertRecord>, ApiError> {
    // One acknowledgement at a time: the check below and the write after it are one step,
    // so of two at once the second sees the first (409), never overwrites it.
    static ACKNOWLEDGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = ACKNOWLEDGING.lock().await;
    may_act_on_open(&s, &who, &id)?;
    if let Some(earlier) = s.hub.alert(&id).and_then(|a| a.acknowledged) {
        // The first acknowledgement stands: who took it, and when.
        return Err(error(
            StatusCode::CONFLICT,
            format!(
                "already acknowledged by {} at {}",
                earlier.by,
                watchfloor_model::format_rfc3339(earlier.at)
            ),
        ));
    }
    let note = note_of(body)?;
    let at = now_ms();
    let ack = Acknowledgement {
        by: who.name.clone(),
        at,
        note: note.clone(),
    };
    ask_engine(&s, |reply| EngineCommand::Acknowledge {
        id: id.clone(),
        ack,
        reply,
    })
    .await?
    .map_err(engine_error)?;
    let by = who.name.clone();
    record_action(
        &s,
        &who,
        &id,
        ("acknowledge", "acknowledged"),
        (at, note.clone().unwrap_or_default()),
        StoreAction::Acknowledge {
            by: who.name.clone(),
            at,
            note: note.clone(),
        },
        |a| {
            if a.state != "resolved" {
                a.state = "acknowledged";
            }
            a.acknowledged = Some(AckInfo { by, at, note });
        },
    )
    .await
}

async fn resolve(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<ActionBody>,
) -> Result<Json<AlertRecord>, ApiError> {
    may_act_on_open(&s, &who, &id)?;
    let note = note_of(body)?;
    let at = now_ms();
    ask_engine(&s, |reply| EngineCommand::Resolve {
        id: id.clone(),
        at,
        reply,
    })
    .await?
    .map_err(engine_error)?;
    // The engine's resolved transition updates the record; this adds who did it.
    record_action(
        &s,
        &who,
        &id,
        ("resolve", "resolved by hand"),
        (at, note.unwrap_or_default()),
        StoreAction::Resolve { at },
        |a| {
            a.state = "resolved";
            a.resolved_at.get_or_insert(at);
        },
    )
    .await
}

async fn comment(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
    Body(body): Body<ActionBody>,
) -> Result<Json<AlertRecord>, ApiError> {
    let record = may_act(&s, &who, &id)?;
    let text = body
        .text
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "a comment needs `text`"))?;
    // Characters as typed, and bytes as served (a control character is six in JSON).
    if text.chars().count() > limits::MAX_COMMENT_CHARS
        || serde_json::to_string(&text).map_or(0, |j| j.len()) > 4 * limits::MAX_COMMENT_CHARS
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "a comment has at most {} characters",
                limits::MAX_COMMENT_CHARS
            ),
        ));
    }
    let comments = record
        .history
        .iter()
        .filter(|h| h.event == "commented")
        .count();
    if comments >= limits::MAX_COMMENTS_PER_ALERT {
        return Err(error(
            StatusCode::CONFLICT,
            format!("this alert has {comments} comments, the most one alert takes"),
        ));
    }
    record_action(
        &s,
        &who,
        &id,
        ("comment", "commented"),
        (now_ms(), text),
        StoreAction::Comment,
        |_| {},
    )
    .await
}

async fn assign(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
    Body(body): Body<ActionBody>,
) -> Result<Json<AlertRecord>, ApiError> {
    let record = may_act(&s, &who, &id)?;
    let to = body
        .to
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "an assignment needs `to`"))?;
    let assignments = record
        .history
        .iter()
        .filter(|h| h.event == "assigned")
        .count();
    if assignments >= limits::MAX_COMMENTS_PER_ALERT {
        return Err(error(
            StatusCode::CONFLICT,
            format!("this alert was assigned {assignments} times, the most one alert takes"),
        ));
    }
    // Only someone (or a role of someone) who sees the alert and may act on it.
    let people = crate::screen::assignable(&s, &record);
    if !people.iter().any(|a| a.name == to || a.role.as_str() == to) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{to}` is not an account or role that may act on this alert (GET /api/alerts/{id}/assignees)"),
        ));
    }
    record_action(
        &s,
        &who,
        &id,
        ("assign", "assigned"),
        (now_ms(), to.clone()),
        StoreAction::Assign { to: to.clone() },
        |a| a.assignee = Some(to),
    )
    .await
}

/// Filters of `GET /api/stations`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct StationQuery {
    zone: Option<String>,
    kind: Option<String>,
}

fn station_json(s: &AppState, who: &Account, id: &str, with_recent: bool) -> Option<Value> {
    let city = s.hub.city()?;
    let station = city.station(id)?;
    if !who.sees(
        station.ward.as_deref(),
        station.district.as_deref(),
        &station.sectors,
    ) {
        return None;
    }
    let mut v = json!({
        "id": station.id,
        "name": station.name,
        "kind": station.kind.as_str(),
        "lat": station.lat,
        "lon": station.lon,
        "ward": station.ward,
        "district": station.district,
        "sectors": station.sectors,
        "cadence_s": station.cadence_s,
        "limits": station.limits.iter().map(|(k, l)| (k.clone(), json!({"min": l.min, "max": l.max}))).collect::<BTreeMap<_, _>>(),
        "alarm_levels": station.alarm_levels,
        "free_flow_kmh": station.free_flow_kmh,
        "latest": s.hub.latest(id),
    });
    if with_recent {
        v["recent"] = json!(s.hub.recent(id));
        if station.kind == watchfloor_model::Kind::Camera {
            v["detections"] = json!(s.hub.detections(id));
        }
    }
    // Units of the metrics it reports or is limited on (canonical units).
    let mut metrics: Vec<String> = station.limits.keys().cloned().collect();
    if let Some(values) = v["latest"]["values"].as_object() {
        metrics.extend(values.keys().cloned());
    }
    v["units"] = metrics
        .into_iter()
        .filter_map(|m| watchfloor_model::canonical_unit(&m).map(|u| (m, json!(u))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    if !who.sees_personal_data() {
        if let Some(latest) = v.get_mut("latest").filter(|l| !l.is_null()) {
            *latest = mask(latest);
        }
        if let Some(Value::Array(detections)) = v.get_mut("detections") {
            for d in detections.iter_mut() {
                *d = mask(d);
            }
        }
    }
    Some(v)
}

async fn list_stations(
    State(s): State<AppState>,
    Authed(who): Authed,
    Q(q): Q<StationQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    if let Some(k) = &q.kind {
        Kind::parse(k)
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("unknown kind `{k}`")))?;
    }
    let city = s
        .hub
        .city()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no city registry loaded"))?;
    Ok(Json(
        city.stations
            .iter()
            .filter(|st| q.kind.as_deref().is_none_or(|k| st.kind.as_str() == k))
            .filter(|st| {
                q.zone.as_deref().is_none_or(|z| {
                    st.ward.as_deref() == Some(z) || st.district.as_deref() == Some(z)
                })
            })
            .filter_map(|st| station_json(&s, &who, &st.id, false))
            .collect(),
    ))
}

async fn get_station(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    station_json(&s, &who, &id, true).map(Json).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no station `{id}` in your scope"),
        )
    })
}

/// Filter of `GET /api/kpis`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct KpiQuery {
    zone: Option<String>,
}

async fn kpis(
    State(s): State<AppState>,
    Authed(who): Authed,
    Q(q): Q<KpiQuery>,
) -> Json<Vec<Value>> {
    let view = who.sector_view();
    Json(
        s.hub
            .kpis()
            .iter()
            .filter(|z| z.view == view && who.sees_area(z.ward.as_deref(), z.district.as_deref()))
            .filter(|z| q.zone.as_deref().is_none_or(|id| z.zone == id))
            .map(|z| s.hub.kpi_json(z))
            .collect(),
    )
}

async fn zones(State(s): State<AppState>, Authed(_): Authed) -> Result<Json<Value>, ApiError> {
    let city = s
        .hub
        .city()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no city registry loaded"))?;
    let text = std::fs::read_to_string(s.rules_dir.join("city/zones.geojson"))
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut geo: Value = serde_json::from_str(&text)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    geo["station_count"] = json!(city.stations.len());
    Ok(Json(geo))
}

async fn rules(State(s): State<AppState>, Authed(_): Authed) -> Result<Json<Value>, ApiError> {
    let (set, _) = watchfloor_city::load_rules(&s.rules_dir)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!(set
        .rules
        .iter()
        .map(|r| json!({"id": r.id, "description": r.description, "kind": r.kind.as_str(), "severity": r.severity.as_str(), "origin": r.origin, "labels": r.labels}))
        .collect::<Vec<_>>())))
}

async fn reload(State(s): State<AppState>, Authed(who): Authed) -> Result<Response, ApiError> {
    if !who.is_city_admin() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "only an admin of the whole city may reload rules",
        ));
    }
    // Validate first: a broken set never reaches the engine, whose rules and state stay.
    let (rules, city) = match watchfloor_city::load_rules(&s.rules_dir) {
        Ok(loaded) => loaded,
        Err(errors) => {
            let reasons: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            s.hub.audit(
                &who.name,
                "reload rejected",
                "rules",
                json!({"reasons": reasons}),
            );
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"applied": false, "reasons": reasons})),
            )
                .into_response());
        }
    };
    let count = rules.rules.len();
    let summary = ask_engine(&s, |reply| EngineCommand::Reload {
        rules,
        city: city.clone(),
        reply,
    })
    .await?;
    s.hub.set_city(city);
    s.hub.audit(
        &who.name,
        "reload",
        "rules",
        json!({"rules": count, "summary": summary}),
    );
    Ok(Json(json!({"applied": true, "rules": count, "summary": summary})).into_response())
}

async fn audit(State(s): State<AppState>, Authed(who): Authed) -> Result<Response, ApiError> {
    if !who.is_admin() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "only an admin may read the audit log",
        ));
    }
    let mut text = s.hub.audit_text();
    if !matches!(who.scope, crate::auth::Scope::City) || who.sectors.is_some() {
        // An admin of part of the city (an area, some sectors) reads the lines about the
        // alerts it sees; lines about the whole centre (reloads) are the city admins'.
        text = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v["target"].as_str().and_then(|t| s.hub.alert(t)))
                    .is_some_and(|a| visible(&who, &a))
            })
            .map(|l| format!("{l}\n"))
            .collect();
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
}

/// `/metrics` on the main listener: open, behind a token, or not here (a listener of its
/// own), as configured.
async fn guarded_metrics(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    match s.hub.metrics_access.get() {
        None | Some(crate::hub::MetricsAccess::Open) => {}
        Some(crate::hub::MetricsAccess::Elsewhere) => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "/metrics is served on its own address here",
            ))
        }
        Some(crate::hub::MetricsAccess::Token(hash)) => {
            let given = bearer_token(&headers).map(crate::auth::token_hash_hex);
            if given.as_deref() != Some(hash.as_str()) {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "/metrics needs its bearer token",
                ));
            }
        }
    }
    Ok(metrics(State(s)).await.into_response())
}

pub(crate) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let st = &s.stats;
    let c = &s.hub.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    };
    metric(
        "watchfloor_received_total",
        "counter",
        "Messages received from sources.",
        vec![format!(
            "watchfloor_received_total {}",
            st.received.load(Ordering::Relaxed)
        )],
    );
    metric(
        "watchfloor_ingested_total",
        "counter",
        "Events accepted by the engine.",
        vec![format!(
            "watchfloor_ingested_total {}",
            st.accepted.load(Ordering::Relaxed)
        )],
    );
    let rejected = st.rejected.lock().map(|m| m.clone()).unwrap_or_default();
    let mut lines: Vec<String> = watchfloor_model::Rejection::ALL_CODES
        .iter()
        .map(|code| {
            format!(
                "watchfloor_rejected_total{{reason=\"{code}\"}} {}",
                rejected.get(code).copied().unwrap_or(0)
            )
        })
        .collect();
    lines.sort();
    metric(
        "watchfloor_rejected_total",
        "counter",
        "Messages refused, by reason (late events: reason=\"late\").",
        lines,
    );
    metric(
        "watchfloor_late_events_total",
        "counter",
        "Events refused as late.",
        vec![format!(
            "watchfloor_late_events_total {}",
            rejected.get("late").copied().unwrap_or(0)
        )],
    );
    metric(
        "watchfloor_alert_transitions_total",
        "counter",
        "Alert transitions emitted.",
        vec![format!(
            "watchfloor_alert_transitions_total {}",
            c.transitions.load(Ordering::Relaxed)
        )],
    );
    metric(
        "watchfloor_queue_depth",
        "gauge",
        "Messages waiting for the engine.",
        vec![format!(
            "watchfloor_queue_depth {}",
            st.queue_depth.load(Ordering::Relaxed)
        )],
    );
    for (name, kind, help, value) in [
        (
            "watchfloor_redelivered_total",
            "counter",
            "Messages a broker sent again that were already in the write-ahead log (acknowledged, not processed twice).",
            st.redelivered.load(Ordering::Relaxed),
        ),
        (
            "watchfloor_wal_durable_sequence",
            "gauge",
            "Write-ahead log: last record sequence known durable (fsynced).",
            st.wal_durable.load(Ordering::Relaxed),
        ),
        (
            "watchfloor_checkpoints_total",
            "counter",
            "Engine checkpoints written.",
            st.checkpoints.load(Ordering::Relaxed),
        ),
        (
            "watchfloor_checkpoint_bytes",
            "gauge",
            "Size of the last engine checkpoint.",
            st.checkpoint_bytes.load(Ordering::Relaxed),
        ),
    ] {
        metric(name, kind, help, vec![format!("{name} {value}")]);
    }
    for (name, help, micros) in [
        (
            "watchfloor_checkpoint_serialize_seconds",
            "Time the engine paused to serialise the last checkpoint.",
            st.checkpoint_serialize_us.load(Ordering::Relaxed),
        ),
        (
            "watchfloor_checkpoint_write_seconds",
            "Time the last checkpoint took to reach the disk (write, fsync, rename), in the background.",
            st.checkpoint_write_us.load(Ordering::Relaxed),
        ),
    ] {
        metric(
            name,
            "gauge",
            help,
            vec![format!("{name} {:.6}", micros as f64 / 1e6)],
        );
    }
    metric(
        "watchfloor_ws_clients",
        "gauge",
        "WebSocket clients connected.",
        vec![format!(
            "watchfloor_ws_clients {}",
            c.ws_clients.load(Ordering::Relaxed)
        )],
    );
    metric(
        "watchfloor_ws_resyncs_total",
        "counter",
        "Times a slow client was skipped ahead with a fresh snapshot.",
        vec![format!(
            "watchfloor_ws_resyncs_total {}",
            c.ws_resyncs.load(Ordering::Relaxed)
        )],
    );
    let mut cumulative = 0;
    let mut lines = Vec::new();
    for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
        cumulative += c.alert_latency_buckets[i].load(Ordering::Relaxed);
        lines.push(format!(
            "watchfloor_publish_to_alert_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1000.0
        ));
    }
    cumulative += c.alert_latency_buckets[7].load(Ordering::Relaxed);
    lines.push(format!(
        "watchfloor_publish_to_alert_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    ));
    lines.push(format!(
        "watchfloor_publish_to_alert_seconds_sum {}",
        c.alert_latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
    ));
    lines.push(format!(
        "watchfloor_publish_to_alert_seconds_count {cumulative}"
    ));
    metric(
        "watchfloor_publish_to_alert_seconds",
        "histogram",
        "Event time to alert of per-event alerts (live).",
        lines,
    );
    metric(
        "watchfloor_output_stuck",
        "gauge",
        "Outputs that keep failing or gave up (alerts wait, or go to an undelivered file).",
        vec![format!(
            "watchfloor_output_stuck {}",
            st.output_stuck.lock().map_or(0, |m| m.len())
        )],
    );
    metric(
        "watchfloor_output_undelivered_total",
        "counter",
        "Records outputs that gave up wrote to their undelivered files instead.",
        vec![format!(
            "watchfloor_output_undelivered_total {}",
            st.undelivered.load(Ordering::Relaxed)
        )],
    );
    if let Some(store) = s.hub.store() {
        let h = store.health();
        let gauges = [
            (
                "watchfloor_store_backlog",
                "gauge",
                "Changes queued for the incident store, not yet committed.",
                h.backlog.load(Ordering::Relaxed),
            ),
            (
                "watchfloor_store_written_total",
                "counter",
                "Changes committed to the incident store.",
                h.written.load(Ordering::Relaxed),
            ),
            (
                "watchfloor_store_batches_total",
                "counter",
                "Transactions committed to the incident store.",
                h.batches.load(Ordering::Relaxed),
            ),
            (
                "watchfloor_store_failures_total",
                "counter",
                "Failed store writes (retried, or skipped when refused for good).",
                h.failures.load(Ordering::Relaxed),
            ),
            (
                "watchfloor_store_refused_total",
                "counter",
                "Changes the store refused for good (logged, not stored).",
                h.refused.load(Ordering::Relaxed),
            ),
            (
                "watchfloor_store_degraded",
                "gauge",
                "1 while the incident store cannot be written.",
                u64::from(h.degraded.load(Ordering::Relaxed)),
            ),
            (
                "watchfloor_store_shed_total",
                "counter",
                "Alert changes not queued for the store while its backlog was full (a restart replays them from the write-ahead log).",
                h.shed.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, v) in gauges {
            metric(name, kind, help, vec![format!("{name} {v}")]);
        }
    }
    s.hub.playbook_metrics(&mut out);
    crate::feeds::cap::metrics(&mut out);
    s.hub.guard.metrics(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// `GET /healthz`: `ok`, or 503 with the reasons while a part is degraded (an output keeps
/// failing, the incident store cannot be written).
async fn healthz(State(s): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if let Some(stuck) = s.stats.output_stuck() {
        reasons.push(format!("output stuck: {stuck}"));
    }
    if let Some(store) = s.hub.store() {
        let h = store.health();
        if h.degraded.load(Ordering::Relaxed) {
            let why = h
                .last_error
                .lock()
                .expect("health lock")
                .clone()
                .unwrap_or_default();
            reasons.push(format!(
                "incident store ({}): {why}; {} changes waiting",
                store.store().backend(),
                h.backlog.load(Ordering::Relaxed)
            ));
        }
        let shed = h.shed.load(Ordering::Relaxed);
        if shed > 0 {
            reasons.push(format!(
                "incident store: {shed} alert changes were not queued while it was too far behind; restart Watchfloor once the database is back and the write-ahead log replays them into it (without an [engine] checkpoint they are only in the outputs)"
            ));
        }
    }
    if reasons.is_empty() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "degraded", "reasons": reasons})),
        )
            .into_response()
    }
}
