//! `/api/webhooks` (city admins): create a subscription (`POST`, the signing secret shown
//! once), list them, read one with its delivery counts, its deliveries and each delivery's
//! attempts, resend a delivery (same id, same body), send a test event, replace the
//! secrets (a rotation keeps old and new side by side), disable and enable.
//!
//! Invariants: every change and refusal is audited; a URL the address policy refuses is a
//! 400 with why (`https://` is delivered with verified certificates); secrets are never
//! shown again after creation (only how many there are).

use std::io::Read;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use watchfloor_store::SubscriptionRow;

use super::filter::Filter;
use super::policy::parse_url;
use super::Link;
use crate::api::{error, ApiError, Authed};
use crate::auth::Account;
use crate::hub::now_ms;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks", get(list).post(create))
        .route("/api/webhooks/:id", get(one))
        .route("/api/webhooks/:id/deliveries", get(deliveries))
        .route("/api/webhooks/:id/deliveries/:delivery", get(delivery))
        .route(
            "/api/webhooks/:id/deliveries/:delivery/resend",
            post(resend),
        )
        .route("/api/webhooks/:id/test", post(test))
        .route("/api/webhooks/:id/secrets", post(secrets))
        .route("/api/webhooks/:id/:action", post(toggle))
}

fn link(
    s: &AppState,
    who: &Account,
    what: &str,
    target: &str,
) -> Result<std::sync::Arc<Link>, ApiError> {
    if !who.is_city_admin() {
        // Recorded as a refusal by the guard (within the caller's allowance).
        let _ = (s, what, target);
        return Err(error(
            StatusCode::FORBIDDEN,
            "only a city admin manages webhooks",
        ));
    }
    s.hub.webhooks.get().cloned().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "webhooks need the incident store ([store])",
        )
    })
}

fn unavailable(e: watchfloor_store::StoreError) -> ApiError {
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn view(s: &SubscriptionRow) -> Value {
    let secrets: Vec<String> = serde_json::from_str(&s.secrets).unwrap_or_default();
    json!({
        "id": s.id, "url": s.url, "format": s.format, "status": s.status, "reason": s.reason,
        "filter": serde_json::from_str::<Value>(&s.filter).unwrap_or(Value::Null),
        "secrets": secrets.len(), "created_by": s.created_by, "created_at": s.created_at,
    })
}

fn subscription(link: &Link, id: &str) -> Result<SubscriptionRow, ApiError> {
    link.subscriptions
        .lock()
        .expect("subs lock")
        .get(id)
        .cloned()
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no webhook subscription `{id}`"),
            )
        })
}

/// A new `whsec_` secret: 24 bytes from the system's random source.
fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no random source: {e}"),
            )
        })?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn check_secrets(secrets: &[String]) -> Result<(), ApiError> {
    if secrets.is_empty() || secrets.len() > 5 {
        return Err(error(StatusCode::BAD_REQUEST, "from 1 to 5 secrets"));
    }
    for s in secrets {
        let decoded = s
            .strip_prefix("whsec_")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        if !decoded.is_some_and(|d| (24..=64).contains(&d.len())) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "a secret is `whsec_` and the base64 of 24 to 64 bytes",
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default)]
    secrets: Option<Vec<String>>,
    #[serde(default)]
    filter: Filter,
    #[serde(default)]
    format: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    Authed(who): Authed,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "create", "webhooks")?;
    let Json(body) = body.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let refuse = |why: String| {
        s.hub.audit(
            &who.name,
            "webhook refused",
            &body.url,
            json!({"status": 400, "why": why}),
        );
        error(StatusCode::BAD_REQUEST, why)
    };
    let target = parse_url(&body.url).map_err(refuse)?;
    link.config.policy.resolve(&target).await.map_err(refuse)?;
    let format = body.format.clone().unwrap_or_else(|| "standard".into());
    if !["standard", "alertmanager"].contains(&format.as_str()) {
        return Err(refuse(format!(
            "format `{format}`: `standard` or `alertmanager`"
        )));
    }
    let secrets = match body.secrets {
        Some(list) => {
            check_secrets(&list)?;
            list
        }
        None => vec![new_secret()?],
    };
    let store = &link.config.store;
    let now = now_ms();
    let row = SubscriptionRow {
        id: format!("wh{now:x}"),
        url: body.url.clone(),
        secrets: serde_json::to_string(&secrets).expect("strings serialise"),
        filter: serde_json::to_string(&body.filter).expect("filter serialises"),
        format,
        status: "active".into(),
        reason: None,
        created_by: who.name.clone(),
        created_at: now,
        start_seq: store.last_change().await.map_err(unavailable)?,
    };
    store.create_subscription(&row).await.map_err(unavailable)?;
    link.subscriptions
        .lock()
        .expect("subs lock")
        .insert(row.id.clone(), row.clone());
    link.start_worker(&row.id);
    s.hub.audit(
        &who.name,
        "webhook created",
        &row.id,
        json!({"url": row.url, "filter": body.filter}),
    );
    let mut answer = view(&row);
    answer["secrets"] = json!(secrets);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn list(State(s): State<AppState>, Authed(who): Authed) -> Result<Response, ApiError> {
    let link = link(&s, &who, "list", "webhooks")?;
    let subs: Vec<Value> = link
        .subscriptions
        .lock()
        .expect("subs lock")
        .values()
        .map(view)
        .collect();
    Ok(Json(json!({ "webhooks": subs })).into_response())
}

async fn one(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "read", &id)?;
    Ok(Json(view(&subscription(&link, &id)?)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<usize>,
}

async fn deliveries(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
    q: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "read", &id)?;
    subscription(&link, &id)?;
    let Query(q) = q.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let rows = link
        .config
        .store
        .deliveries(&id, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(unavailable)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d).expect("row serialises");
            v["payload"] = super::payload::parsed(&d.payload);
            v
        })
        .collect();
    Ok(Json(json!({ "deliveries": list })).into_response())
}

async fn delivery(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "read", &id)?;
    let store = &link.config.store;
    let d = store
        .delivery(&delivery)
        .await
        .map_err(unavailable)?
        .filter(|d| d.subscription == id)
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no delivery `{delivery}` of `{id}`"),
            )
        })?;
    let attempts = store.attempts(&delivery).await.map_err(unavailable)?;
    let mut v = serde_json::to_value(&d).expect("row serialises");
    v["payload"] = super::payload::parsed(&d.payload);
    v["attempts_log"] = serde_json::to_value(attempts).expect("rows serialise");
    Ok(Json(v).into_response())
}

async fn resend(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "resend", &delivery)?;
    let store = &link.config.store;
    let found = store
        .delivery(&delivery)
        .await
        .map_err(unavailable)?
        .filter(|d| d.subscription == id);
    if found.is_none() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no delivery `{delivery}` of `{id}`"),
        ));
    }
    store
        .resend_delivery(&delivery, now_ms())
        .await
        .map_err(unavailable)?;
    link.wake.notify_waiters();
    s.hub
        .audit(&who.name, "webhook resend", &delivery, json!({}));
    Ok(Json(json!({"resent": delivery})).into_response())
}

async fn test(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "test", &id)?;
    let sub = subscription(&link, &id)?;
    let now = now_ms();
    let body = super::payload::test_body(&sub.format, &sub.id, now);
    let secrets: Vec<String> = serde_json::from_str(&sub.secrets).unwrap_or_default();
    let test_id = format!("msg_{}_test_{now}", sub.id);
    let result = async {
        let target = parse_url(&sub.url)?;
        let address = link.config.policy.resolve(&target).await?;
        super::http::Client::new(link.config.tls.clone())
            .post(
                &target,
                address,
                &test_id,
                &secrets,
                &body,
                link.config.timeout,
            )
            .await
    }
    .await;
    let latency_ms = now_ms() - now;
    s.hub.audit(&who.name, "webhook test", &id, json!({}));
    Ok(Json(match result {
        Ok(a) => json!({"id": test_id, "status": a.status, "delivered": (200..300).contains(&a.status), "latency_ms": latency_ms}),
        Err(e) => json!({"id": test_id, "status": null, "delivered": false, "error": e, "latency_ms": latency_ms}),
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsBody {
    secrets: Vec<String>,
}

async fn secrets(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path(id): Path<String>,
    body: Result<Json<SecretsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let link = link(&s, &who, "secrets", &id)?;
    subscription(&link, &id)?;
    let Json(body) = body.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    check_secrets(&body.secrets)?;
    let text = serde_json::to_string(&body.secrets).expect("strings serialise");
    link.config
        .store
        .set_subscription_secrets(&id, &text)
        .await
        .map_err(unavailable)?;
    if let Some(sub) = link.subscriptions.lock().expect("subs lock").get_mut(&id) {
        sub.secrets = text;
    }
    s.hub.audit(
        &who.name,
        "webhook secrets",
        &id,
        json!({"secrets": body.secrets.len()}),
    );
    Ok(Json(json!({"id": id, "secrets": body.secrets.len()})).into_response())
}

async fn toggle(
    State(s): State<AppState>,
    Authed(who): Authed,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let status = match action.as_str() {
        "enable" => "active",
        "disable" => "disabled",
        other => {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no webhook action `{other}` (enable, disable)"),
            ))
        }
    };
    let link = link(&s, &who, &action, &id)?;
    subscription(&link, &id)?;
    let reason = (status == "disabled").then(|| format!("disabled by {}", who.name));
    link.set_status(&id, status, reason.as_deref())
        .await
        .map_err(unavailable)?;
    s.hub
        .audit(&who.name, &format!("webhook {action}"), &id, json!({}));
    Ok(Json(view(&subscription(&link, &id)?)).into_response())
}
