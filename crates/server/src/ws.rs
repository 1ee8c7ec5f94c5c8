//! `/ws`: authenticate, subscribe to channels with filters, get a snapshot then numbered
//! deltas; resume with the last sequence number seen. Slow clients are resynchronised
//! (their missed deltas replaced by a fresh snapshot) or dropped when their socket stays
//! blocked, never slowing the engine or other clients. Protocol: `docs/api.md`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use watchfloor_model::{Kind, Severity};

use crate::auth::{Account, Scope};
use crate::hub::{delta_text, mask, Channel, Delta, DeltaItem};
use crate::AppState;

/// How long a client may take to authenticate.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may block before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Heartbeat period.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Most alerts in a snapshot (newest first).
const SNAPSHOT_ALERTS: usize = 2000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| client(state, socket))
}

/// A subscription's filter.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Filter {
    /// A ward or district id.
    zone: Option<String>,
    /// Lowest severity (alerts).
    severity: Option<Severity>,
    /// Station kind.
    kind: Option<String>,
    /// Rule id (alerts).
    rule: Option<String>,
    /// Station id (stations).
    station: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum ClientMessage {
    Auth {
        token: String,
    },
    Subscribe {
        channel: Channel,
        #[serde(default)]
        filter: Filter,
        since: Option<u64>,
        /// The epoch `since` was counted in (the `welcome`'s): another one (a restarted
        /// server) gets a fresh snapshot instead of a resume.
        epoch: Option<String>,
    },
    Unsubscribe {
        channel: Channel,
    },
    Ping,
}

struct Subscription {
    filter: Filter,
    kind: Option<Kind>,
    rx: broadcast::Receiver<Arc<Delta>>,
    /// Last sequence number delivered (or covered by the snapshot).
    last: u64,
}

fn passes(who: &Account, sub: &Subscription, d: &DeltaItem) -> bool {
    if !who.sees(d.ward.as_deref(), d.district.as_deref(), &d.sectors) {
        return false;
    }
    let f = &sub.filter;
    f.zone
        .as_deref()
        .is_none_or(|z| d.ward.as_deref() == Some(z) || d.district.as_deref() == Some(z))
        && f.severity
            .is_none_or(|m| d.severity.is_some_and(|s| s >= m))
        && sub.kind.is_none_or(|k| d.kind == Some(k))
        && f.rule
            .as_deref()
            .is_none_or(|r| d.rule.as_deref() == Some(r))
        && f.station
            .as_deref()
            .is_none_or(|s| d.station.as_deref() == Some(s))
}

/// Whether a zone's KPIs (as JSON: `zone`, `ward`, `district`, `view`) are for this
/// client: its area, and its own sector view.
fn kpi_visible(who: &Account, filter: &Filter, z: &Value) -> bool {
    who.sees_area(z["ward"].as_str(), z["district"].as_str())
        && z["view"].as_str() == Some(who.sector_view().as_str())
        && filter
            .zone
            .as_deref()
            .is_none_or(|f| z["zone"] == f || z["ward"] == f || z["district"] == f)
}

/// The text this client gets for a delta, if any: the delta's own serialisation when the
/// client may see all of it (serialised once for every such client), else a filtered or
/// masked one.
fn message_for(who: &Account, sub: &Subscription, d: &Delta) -> Option<String> {
    match d.item.channel {
        Channel::Kpis => {
            if matches!(who.scope, Scope::City)
                && who.sectors.is_none()
                && sub.filter.zone.is_none()
            {
                // Every zone, but only the all-sector view's rows.
                let rows: Vec<&Value> = d
                    .item
                    .data
                    .as_array()?
                    .iter()
                    .filter(|z| z["view"] == "*")
                    .collect();
                return (!rows.is_empty()).then(|| delta_text(d.item.channel, d.seq, &rows));
            }
            let zones: Vec<&Value> = d
                .item
                .data
                .as_array()?
                .iter()
                .filter(|z| kpi_visible(who, &sub.filter, z))
                .collect();
            (!zones.is_empty()).then(|| delta_text(d.item.channel, d.seq, &zones))
        }
        _ if !passes(who, sub, &d.item) => None,
        _ if who.sees_personal_data() => Some(d.text().to_string()),
        _ => Some(d.masked_text().to_string()),
    }
}

/// Counts (and, within the caller's allowance, audits) a subscription refused by the rate
/// limit, as the HTTP guard does a 429.
fn refuse_subscribe(state: &AppState, who: &Account, wait: u64) {
    if state.hub.guard.admit_refusal(&who.name, 429) {
        state.hub.audit(
            &who.name,
            "refused",
            "WS subscribe",
            json!({"status": 429, "why": format!("too many subscriptions; try again in {wait} s")}),
        );
    }
}

/// The snapshot of a channel for this account and filter.
fn snapshot(state: &AppState, who: &Account, channel: Channel, sub: &Subscription) -> Vec<Value> {
    let hub = &state.hub;
    let probe = |ward: Option<String>,
                 district: Option<String>,
                 sectors: Vec<String>,
                 severity,
                 rule,
                 kind,
                 station,
                 data| {
        DeltaItem {
            channel,
            ward,
            district,
            sectors,
            severity,
            rule,
            kind,
            station,
            data,
            personal: false,
        }
    };
    match channel {
        Channel::Alerts => {
            let mut alerts = hub.alerts();
            alerts.sort_by_key(|a| std::cmp::Reverse(a.updated_at));
            alerts
                .into_iter()
                .filter(|a| {
                    passes(
                        who,
                        sub,
                        &probe(
                            a.ward.clone(),
                            a.district.clone(),
                            a.sectors.clone(),
                            Some(a.severity),
                            Some(a.rule.clone()),
                            a.kind,
                            None,
                            Value::Null,
                        ),
                    )
                })
                .take(SNAPSHOT_ALERTS)
                .map(|a| serde_json::to_value(a).expect("records serialise"))
                .collect()
        }
        Channel::Kpis => hub
            .kpis()
            .iter()
            .filter(|z| {
                kpi_visible(who, &sub.filter, &json!({"zone": z.zone, "ward": z.ward, "district": z.district, "view": z.view}))
            })
            .map(|z| hub.kpi_json(z))
            .collect(),
        Channel::Runs => hub
            .run_views()
            .into_iter()
            .filter(|v| {
                passes(
                    who,
                    sub,
                    &probe(v.ward.clone(), None, v.sectors.clone(), None, None, None, None, Value::Null),
                )
            })
            .take(SNAPSHOT_ALERTS)
            .map(|v| v.data)
            .collect(),
        Channel::Stations => {
            let Some(city) = hub.city() else {
                return Vec::new();
            };
            city.stations
                .iter()
                .filter(|s| {
                    passes(
                        who,
                        sub,
                        &probe(
                            s.ward.clone(),
                            s.district.clone(),
                            s.sectors.clone(),
                            None,
                            None,
                            Some(s.kind),
                            Some(s.id.clone()),
                            Value::Null,
                        ),
                    )
                })
                .filter_map(|s| {
                    let mut v = hub.latest(&s.id)?;
                    v["station"] = json!(s.id);
                    v["kind"] = json!(s.kind.as_str());
                    v["ward"] = json!(s.ward);
                    Some(if who.sees_personal_data() {
                        v
                    } else {
                        mask(&v)
                    })
                })
                .collect()
        }
    }
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    send_text(socket, value.to_string()).await
}

/// Sends one text frame; `false` when the client is gone or blocked for `WRITE_TIMEOUT`.
async fn send_text(socket: &mut WebSocket, text: String) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(text))).await,
        Ok(Ok(()))
    )
}

async fn next_delta(
    subs: &mut [Option<Subscription>; 4],
) -> (usize, Result<Arc<Delta>, RecvError>) {
    let [a, k, s, r] = subs;
    async fn one(sub: &mut Option<Subscription>) -> Result<Arc<Delta>, RecvError> {
        match sub {
            Some(sub) => sub.rx.recv().await,
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        r = one(a) => (0, r),
        r = one(k) => (1, r),
        r = one(s) => (2, r),
        x = one(r) => (3, x),
    }
}

const CHANNELS: [Channel; 4] = [
    Channel::Alerts,
    Channel::Kpis,
    Channel::Stations,
    Channel::Runs,
];

/// Close codes of a refused WebSocket (4000–4999: the application's own; the reason is
/// in the close frame and in an `error` message before it).
pub(crate) mod close {
    /// The first message was not `{"op":"auth","token":…}`.
    pub const AUTH_FIRST: u16 = 4400;
    /// The token is unknown.
    pub const UNKNOWN_TOKEN: u16 = 4401;
    /// No authentication within the time allowed.
    pub const AUTH_TIMEOUT: u16 = 4408;
}

/// Says why, closes with `code`, and records the refusal.
async fn refuse(state: &AppState, socket: &mut WebSocket, code: u16, why: &str) {
    let _ = send(
        socket,
        json!({"type": "error", "code": code, "message": why}),
    )
    .await;
    let frame = axum::extract::ws::CloseFrame {
        code,
        reason: why.to_string().into(),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
    state.hub.audit_refusal("anonymous", "WS /ws", code, why);
}

async fn client(state: AppState, mut socket: WebSocket) {
    // Authenticate first: {"op":"auth","token":"…"}.
    let who = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Auth { token }) => state
                .accounts
                .authenticate(token.trim())
                .ok_or((close::UNKNOWN_TOKEN, "unknown token")),
            _ => Err((
                close::AUTH_FIRST,
                "authenticate first: {\"op\":\"auth\",\"token\":\"…\"}",
            )),
        },
        Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return,
        Ok(Some(Ok(_))) => Err((
            close::AUTH_FIRST,
            "authenticate first: {\"op\":\"auth\",\"token\":\"…\"}",
        )),
        Err(_) => Err((close::AUTH_TIMEOUT, "no authentication within 10 s")),
    };
    let who = match who {
        Ok(who) => who,
        Err((code, why)) => {
            refuse(&state, &mut socket, code, why).await;
            return;
        }
    };
    let counters = &state.hub.counters;
    counters.ws_clients.fetch_add(1, Ordering::Relaxed);
    if send(
        &mut socket,
        json!({"type": "welcome", "account": *who, "epoch": state.hub.epoch()}),
    )
    .await
    {
        run(&state, &who, &mut socket).await;
    }
    counters.ws_clients.fetch_sub(1, Ordering::Relaxed);
}

async fn run(state: &AppState, who: &Account, socket: &mut WebSocket) {
    let mut subs: [Option<Subscription>; 4] = [None, None, None, None];
    let mut subscribes = crate::limits::Bucket::new(
        crate::limits::SUBSCRIBE_BURST,
        crate::limits::SUBSCRIBE_PER_SECOND,
    );
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let message = match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        if !send(socket, json!({"type": "error", "message": format!("bad message: {e}")})).await { return; }
                        continue;
                    }
                };
                match message {
                    ClientMessage::Auth { .. } => {}
                    ClientMessage::Ping => {
                        if !send(socket, json!({"type": "pong"})).await { return; }
                    }
                    ClientMessage::Unsubscribe { channel } => subs[channel_index(channel)] = None,
                    ClientMessage::Subscribe { channel, filter, since, epoch } => {
                        if let Err(wait) = subscribes.take() {
                            refuse_subscribe(state, who, wait);
                            let message = format!("too many subscriptions: at most {} a second; try again in {wait} s", crate::limits::SUBSCRIBE_PER_SECOND);
                            if !send(socket, json!({"type": "error", "message": message, "channel": channel, "retry_after": wait})).await { return; }
                            continue;
                        }
                        // A position counted by another run of the server means nothing here.
                        let since = since.filter(|_| epoch.as_deref().is_none_or(|e| e == state.hub.epoch()));
                        let kind = match filter.kind.as_deref().map(|k| Kind::parse(k).ok_or(k)) {
                            Some(Err(k)) => {
                                if !send(socket, json!({"type": "error", "message": format!("unknown kind `{k}`")})).await { return; }
                                continue;
                            }
                            Some(Ok(k)) => Some(k),
                            None => None,
                        };
                        let (rx, replay, current) = state.hub.subscribe(channel, since);
                        let mut sub = Subscription { filter, kind, rx, last: current };
                        let ok = match replay {
                            // Resume: the deltas missed since `since`, then live.
                            Some(missed) => {
                                let mut ok = send(socket, json!({"type": "resumed", "channel": channel, "since": since, "seq": current})).await;
                                for d in &missed {
                                    if let Some(text) = message_for(who, &sub, d) {
                                        ok = ok && send_text(socket, text).await;
                                    }
                                }
                                ok
                            }
                            None => {
                                let data = snapshot(state, who, channel, &sub);
                                send(socket, json!({"type": "snapshot", "channel": channel, "seq": current, "data": data})).await
                            }
                        };
                        sub.last = current;
                        subs[channel_index(channel)] = Some(sub);
                        if !ok { return; }
                    }
                }
            }
            (i, received) = next_delta(&mut subs) => {
                let channel = CHANNELS[i];
                match received {
                    Ok(d) => {
                        let sub = subs[i].as_mut().expect("a delta comes from a subscription");
                        if d.seq <= sub.last {
                            continue;
                        }
                        sub.last = d.seq;
                        if let Some(text) = message_for(who, sub, &d) {
                            if !send_text(socket, text).await {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Too slow for the stream: skip ahead with a fresh snapshot.
                        state.hub.counters.ws_resyncs.fetch_add(1, Ordering::Relaxed);
                        let sub = subs[i].take().expect("lagging subscription");
                        let (rx, _, current) = state.hub.subscribe(channel, None);
                        let sub = Subscription { rx, last: current, ..sub };
                        let data = snapshot(state, who, channel, &sub);
                        subs[i] = Some(sub);
                        if !send(socket, json!({"type": "snapshot", "channel": channel, "seq": current, "data": data, "resync": true})).await {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
            _ = heartbeat.tick() => {
                let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                if !send(socket, json!({"type": "heartbeat", "ts": ts})).await { return; }
            }
        }
    }
}

fn channel_index(channel: Channel) -> usize {
    CHANNELS
        .iter()
        .position(|c| *c == channel)
        .expect("known channel")
}
