//! The server's live picture of the city, fed by the pipeline (events, alert transitions)
//! and by operators (acknowledgements, comments, assignments): alert records with their
//! history, each station's latest readings, and the KPIs. Changes go out on three
//! broadcast channels (alerts, KPIs, station readings), each with its own sequence numbers
//! and a bounded replay buffer so a client that reconnects resumes without a gap.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use watchfloor_city::City;
use watchfloor_model::{AlertState, AlertTransition, Event, Kind, Severity};
use watchfloor_pipeline::PipelineObserver;

use crate::kpi::Kpis;

/// Deltas kept per channel for resuming clients.
pub const REPLAY_CAPACITY: usize = 4096;
/// Resolved alerts kept in memory (the oldest are forgotten first).
pub(crate) const RESOLVED_KEPT: usize = 5000;
/// The history line of an alert the restart reconciliation resolved.
pub(crate) const RESOLVED_AT_RESTART: &str = "resolved at restart";
/// The history line of such an alert firing again.
pub(crate) const REOPENED: &str = "reopened";
/// Readings kept per station for drill-down charts.
const RECENT_READINGS: usize = 240;
/// Detections kept per camera for its drill-down.
const RECENT_DETECTIONS: usize = 20;

/// A stream clients subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Alert records as they change.
    Alerts,
    /// KPIs per zone, conflated.
    Kpis,
    /// Station readings.
    Stations,
    /// Playbook runs as they change.
    Runs,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Alerts => 0,
            Channel::Kpis => 1,
            Channel::Stations => 2,
            Channel::Runs => 3,
        }
    }
}

/// What changed and where: a channel's item before it is numbered.
#[derive(Debug, Clone)]
pub struct DeltaItem {
    /// The channel.
    pub channel: Channel,
    /// Where it happened (for scopes and filters).
    pub ward: Option<String>,
    /// The ward's district.
    pub district: Option<String>,
    /// The sectors it belongs to (for scopes).
    pub sectors: Vec<String>,
    /// Severity (alerts).
    pub severity: Option<Severity>,
    /// Rule id (alerts).
    pub rule: Option<String>,
    /// Station kind (alerts about a station, readings).
    pub kind: Option<Kind>,
    /// Station id (readings).
    pub station: Option<String>,
    /// The payload.
    pub data: Value,
    /// Whether the payload carries personal data (masked for roles not entitled to it).
    pub personal: bool,
}

/// One numbered change on a channel. Its message is serialised once, when it is published
/// to listening clients (or later, for a client resuming on a channel nobody listened to),
/// and shared by every client that gets it as is.
#[derive(Debug)]
pub struct Delta {
    /// What changed and where.
    pub item: DeltaItem,
    /// Its sequence number on the channel (1, 2, …).
    pub seq: u64,
    text: OnceLock<String>,
    masked_text: OnceLock<String>,
}

impl Delta {
    /// The whole `delta` message.
    pub fn text(&self) -> &str {
        self.text
            .get_or_init(|| delta_text(self.item.channel, self.seq, &self.item.data))
    }

    /// The message with personal data masked (the same message when it carries none).
    pub fn masked_text(&self) -> &str {
        if !self.item.personal {
            return self.text();
        }
        self.masked_text
            .get_or_init(|| delta_text(self.item.channel, self.seq, &mask(&self.item.data)))
    }
}

/// An alert delta's payload: the record as `GET /api/alerts/{id}` gives it, except that
/// `history` holds only the last `new_lines` lines (what this change added) and
/// `history_from` says where they start in the whole history. A client holding the first
/// `history_from` lines appends them; one holding fewer fetches the record. So a delta
/// carries the change, not an alert's whole past (which every action would otherwise send
/// again to every dashboard in scope).
pub fn alert_change(record: &AlertRecord, new_lines: usize) -> Value {
    let from = record.history.len().saturating_sub(new_lines);
    let mut value = serde_json::to_value(record).expect("records serialise");
    if let Some(history) = value.get_mut("history").and_then(Value::as_array_mut) {
        history.drain(..from);
    }
    value["history_from"] = json!(from);
    value
}

/// A `delta` message of `channel` numbered `seq` carrying `data`.
pub fn delta_text(channel: Channel, seq: u64, data: &impl Serialize) -> String {
    json!({"type": "delta", "channel": channel, "seq": seq, "data": data}).to_string()
}

/// An operator's acknowledgement.
#[derive(Debug, Clone, Serialize)]
pub struct AckInfo {
    /// Account name.
    pub by: String,
    /// Epoch ms.
    pub at: i64,
    /// Free note.
    pub note: Option<String>,
}

/// One line of an alert's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Epoch ms.
    pub at: i64,
    /// fired, escalated, acknowledged, commented, assigned, resolved.
    pub event: String,
    /// Who (operators' actions).
    pub by: Option<String>,
    /// Details: severity, note, comment, assignee.
    pub detail: String,
}

/// An alert as operators see it: the engine's latest transition plus what people did.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    /// Stable alert id.
    pub alert_id: String,
    /// Rule id.
    pub rule: String,
    /// Key (station or zone).
    pub key: String,
    /// firing, acknowledged or resolved.
    pub state: &'static str,
    /// Current severity.
    pub severity: Severity,
    /// When it fired (event time, epoch ms).
    pub fired_at: i64,
    /// Last change (epoch ms).
    pub updated_at: i64,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// The deciding value.
    pub value: Option<f64>,
    /// The rule's message.
    pub message: String,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
    /// Ward of the key (station's ward, or the ward itself).
    pub ward: Option<String>,
    /// District of the key (legacy data).
    pub district: Option<String>,
    /// The sectors (departments) it belongs to.
    pub sectors: Vec<String>,
    /// Kind of the station the alert is about.
    pub kind: Option<Kind>,
    /// Position of the station the alert is about.
    pub location: Option<[f64; 2]>,
    /// Acknowledgement.
    pub acknowledged: Option<AckInfo>,
    /// Who it is assigned to.
    pub assignee: Option<String>,
    /// What happened to it.
    pub history: Vec<HistoryEntry>,
}

/// A station's latest state.
#[derive(Debug, Clone, Serialize)]
pub struct StationLive {
    /// Last event time.
    pub ts: i64,
    /// Latest value per metric.
    pub values: BTreeMap<String, f64>,
    /// Latest status code.
    pub status: &'static str,
    /// Cameras: latest detection.
    pub event: Option<String>,
    /// Extra attributes of the latest event (personal data masked per role on the way out).
    pub attrs: serde_json::Map<String, Value>,
    /// Recent readings, oldest first: (ts, values).
    #[serde(skip)]
    pub recent: VecDeque<(i64, Vec<(String, f64)>)>,
    /// Cameras: recent detections, oldest first (`ts`, `event`, `confidence`, `attrs`).
    #[serde(skip)]
    pub detections: VecDeque<Value>,
}

struct ChannelState {
    seq: u64,
    buffer: VecDeque<Arc<Delta>>,
    tx: broadcast::Sender<Arc<Delta>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HubCounters {
    /// Events seen.
    pub events: std::sync::atomic::AtomicU64,
    /// Alert transitions seen.
    pub transitions: std::sync::atomic::AtomicU64,
    /// WebSocket clients connected.
    pub ws_clients: std::sync::atomic::AtomicI64,
    /// Deltas dropped for clients that fell behind (they got a snapshot instead).
    pub ws_resyncs: std::sync::atomic::AtomicU64,
    /// Event-to-alert latency of live per-event alerts, ms buckets: ≤1,5,10,50,100,500,1000,+Inf.
    pub alert_latency_buckets: [std::sync::atomic::AtomicU64; 8],
    /// Sum of the latencies, ms.
    pub alert_latency_sum_ms: std::sync::atomic::AtomicU64,
    /// Per station kind (by [`Kind::index`]), the event time of its latest accepted event
    /// (epoch ms; 0: none yet): the screen's data freshness.
    pub last_event_by_kind: [std::sync::atomic::AtomicI64; Kind::ALL.len()],
}

/// Upper bounds of [`HubCounters::alert_latency_buckets`], ms.
pub const LATENCY_BUCKETS_MS: [u64; 7] = [1, 5, 10, 50, 100, 500, 1000];

/// The live picture; see the module docs.
pub struct Hub {
    city: RwLock<Option<Arc<City>>>,
    alerts: Mutex<BTreeMap<String, AlertRecord>>,
    /// How many alerts the hub may hold before it forgets its oldest resolved ones
    /// again: the scan happens once per [`RESOLVED_KEPT`] new alerts, not per transition
    /// (with 600,000 open alerts in a storm, a scan per transition slowed the engine task
    /// to a few hundred transitions a second).
    prune_at: std::sync::atomic::AtomicUsize,
    stations: Mutex<HashMap<String, StationLive>>,
    pub(crate) kpis: Kpis,
    pub(crate) quality: Mutex<watchfloor_quality::Ledger>,
    channels: [Mutex<ChannelState>; 4],
    audit: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
    audit_recent: Mutex<VecDeque<String>>,
    store: OnceLock<watchfloor_store::StoreWriter>,
    /// Counters for `/metrics`.
    pub counters: HubCounters,
    /// The playbook runs' service, when the centre has playbooks.
    pub(crate) playbooks: OnceLock<Arc<crate::playbooks::Link>>,
    /// The drill task, when the centre runs drills.
    pub(crate) drills: OnceLock<Arc<crate::drills::Link>>,
    /// The webhook outbox, when the centre has a store.
    pub(crate) webhooks: OnceLock<Arc<crate::feeds::webhooks::Link>>,
    /// This run's identity: a page that sees another epoch knows the server restarted.
    epoch: String,
    started_at: i64,
    /// Write rate limits and refusal counters.
    pub(crate) guard: crate::limits::Guard,
    /// Who may read `/metrics` on the main listener.
    pub(crate) metrics_access: OnceLock<MetricsAccess>,
}

/// Who may read `/metrics` on the main listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone (the default).
    Open,
    /// Callers with the bearer token whose SHA-256 is this (hex).
    Token(String),
    /// Nobody: it is served on a listener of its own ([`crate::metrics_router`]).
    Elsewhere,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn channel_state() -> Mutex<ChannelState> {
    Mutex::new(ChannelState {
        seq: 0,
        buffer: VecDeque::with_capacity(REPLAY_CAPACITY),
        tx: broadcast::channel(REPLAY_CAPACITY).0,
    })
}

/// At most `max` bytes of `text` (cut at a character boundary, marked with `…`).
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `value` with its personal data masked by the privacy policy (`crate::privacy`).
pub fn mask(value: &Value) -> Value {
    crate::privacy::policy().masked(value)
}

impl Hub {
    /// An empty hub for `city`; `audit` is the audit-log file (NDJSON, appended).
    pub fn new(city: Option<Arc<City>>, audit: Option<std::fs::File>) -> Arc<Hub> {
        Arc::new(Hub {
            kpis: Kpis::new(default_indicators(city.as_deref())),
            quality: Mutex::new(watchfloor_quality::Ledger::default()),
            city: RwLock::new(city),
            alerts: Mutex::new(BTreeMap::new()),
            prune_at: std::sync::atomic::AtomicUsize::new(RESOLVED_KEPT * 2),
            stations: Mutex::new(HashMap::new()),
            channels: [
                channel_state(),
                channel_state(),
                channel_state(),
                channel_state(),
            ],
            audit: Mutex::new(audit.map(std::io::BufWriter::new)),
            audit_recent: Mutex::new(VecDeque::new()),
            store: OnceLock::new(),
            playbooks: OnceLock::new(),
            drills: OnceLock::new(),
            webhooks: OnceLock::new(),
            counters: HubCounters::default(),
            epoch: format!("{:x}-{:x}", now_ms(), std::process::id()),
            started_at: now_ms(),
            guard: crate::limits::Guard::default(),
            metrics_access: OnceLock::new(),
        })
    }

    /// This run's epoch (a new one after every restart).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// When this run started, epoch ms.
    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    /// Keeps every change from now on in `writer`'s store (once, at start).
    pub fn attach_store(&self, writer: watchfloor_store::StoreWriter) {
        let _ = self.store.set(writer);
    }

    /// The store, when one is attached.
    pub fn store(&self) -> Option<&watchfloor_store::StoreWriter> {
        self.store.get()
    }

    /// Adds records (restored from the store) and publishes them.
    pub(crate) fn insert_records(&self, records: impl IntoIterator<Item = AlertRecord>) {
        let records: Vec<AlertRecord> = records
            .into_iter()
            .map(|mut r| {
                r.sectors = self.sectors_of(&r.rule, &r.labels, &r.key);
                r
            })
            .collect();
        for record in records {
            self.alerts
                .lock()
                .expect("alerts lock")
                .insert(record.alert_id.clone(), record.clone());
            self.publish(self.alert_delta(&record, record.history.len()));
        }
    }

    /// The city (after a reload, the reloaded one).
    pub fn city(&self) -> Option<Arc<City>> {
        self.city.read().expect("city lock").clone()
    }

    /// Swaps the city after a rule reload; open alerts take the sectors the new city gives
    /// them (the store hears of it at their next transition).
    pub fn set_city(&self, city: Option<Arc<City>>) {
        *self.city.write().expect("city lock") = city;
        let mut alerts = self.alerts.lock().expect("alerts lock");
        for a in alerts.values_mut().filter(|a| a.state != "resolved") {
            a.sectors = self.sectors_of(&a.rule, &a.labels, &a.key);
        }
    }

    /// The sectors of an alert of `rule` with `labels` about `key` (see
    /// [`City::alert_sectors`]).
    pub fn sectors_of(
        &self,
        rule: &str,
        labels: &BTreeMap<String, String>,
        key: &str,
    ) -> Vec<String> {
        self.city()
            .map(|c| c.alert_sectors(rule, labels, key))
            .unwrap_or_default()
    }

    /// The sectors of station `id`.
    pub fn station_sectors(&self, id: &str) -> Vec<String> {
        self.city()
            .and_then(|c| c.station(id).map(|s| s.sectors.clone()))
            .unwrap_or_default()
    }

    /// Where a key is: a station's ward and district, or a ward's or district's own.
    pub fn place_of(
        &self,
        key: &str,
    ) -> (
        Option<String>,
        Option<String>,
        Option<Kind>,
        Option<[f64; 2]>,
    ) {
        let Some(city) = self.city() else {
            return (None, None, None, None);
        };
        if let Some(s) = city.station(key) {
            return (
                s.ward.clone(),
                s.district.clone(),
                Some(s.kind),
                Some([s.lat, s.lon]),
            );
        }
        match city.zones.get(key) {
            Some(z) if z.level == watchfloor_city::ZoneLevel::Ward => {
                (Some(z.id.clone()), z.district.clone(), None, None)
            }
            Some(z) => (None, Some(z.id.clone()), None, None),
            None => (None, None, None, None),
        }
    }

    /// Publishes a delta on its channel: numbered, buffered, broadcast.
    pub fn publish(&self, new: DeltaItem) -> Arc<Delta> {
        let mut ch = self.channels[new.channel.index()]
            .lock()
            .expect("channel lock");
        ch.seq += 1;
        let seq = ch.seq;
        let delta = Arc::new(Delta {
            seq,
            item: new,
            text: OnceLock::new(),
            masked_text: OnceLock::new(),
        });
        // Serialised here, once, while someone listens; a channel nobody subscribes to
        // (station readings, usually) costs no serialisation until a resuming client asks.
        if ch.tx.receiver_count() > 0 {
            delta.text();
            delta.masked_text();
        }
        if ch.buffer.len() == REPLAY_CAPACITY {
            ch.buffer.pop_front();
        }
        ch.buffer.push_back(delta.clone());
        // No receivers is fine: nobody is listening right now.
        let _ = ch.tx.send(delta.clone());
        delta
    }

    /// A receiver for live deltas, plus the buffered deltas after `since` (or `None` when
    /// `since` is older than the buffer: the client needs a snapshot), and the channel's
    /// current sequence number.
    #[allow(clippy::type_complexity)]
    pub fn subscribe(
        &self,
        channel: Channel,
        since: Option<u64>,
    ) -> (
        broadcast::Receiver<Arc<Delta>>,
        Option<Vec<Arc<Delta>>>,
        u64,
    ) {
        let ch = self.channels[channel.index()].lock().expect("channel lock");
        let rx = ch.tx.subscribe();
        let replay = since.and_then(|since| {
            let oldest = ch.buffer.front().map_or(ch.seq + 1, |d| d.seq);
            (since + 1 >= oldest && since <= ch.seq).then(|| {
                ch.buffer
                    .iter()
                    .filter(|d| d.seq > since)
                    .cloned()
                    .collect()
            })
        });
        (rx, replay, ch.seq)
    }

    /// The delta of a change to `record` that added its last `new_lines` history lines.
    fn alert_delta(&self, record: &AlertRecord, new_lines: usize) -> DeltaItem {
        DeltaItem {
            channel: Channel::Alerts,
            ward: record.ward.clone(),
            district: record.district.clone(),
            sectors: record.sectors.clone(),
            severity: Some(record.severity),
            rule: Some(record.rule.clone()),
            kind: record.kind,
            station: None,
            data: alert_change(record, new_lines),
            personal: false,
        }
    }

    /// Every alert record (callers filter by scope).
    pub fn alerts(&self) -> Vec<AlertRecord> {
        self.alerts
            .lock()
            .expect("alerts lock")
            .values()
            .cloned()
            .collect()
    }

    /// How many alerts of the drill `exercise` are open here.
    pub fn open_exercise_alerts(&self, exercise: &str) -> usize {
        self.alerts
            .lock()
            .expect("alerts lock")
            .values()
            .filter(|a| {
                a.state != "resolved"
                    && a.labels.get("exercise").map(String::as_str) == Some(exercise)
            })
            .count()
    }

    /// One alert record.
    pub fn alert(&self, id: &str) -> Option<AlertRecord> {
        self.alerts.lock().expect("alerts lock").get(id).cloned()
    }

    /// Applies an operator's action to an alert record and publishes it. `update` returns
    /// the history line to add.
    pub fn update_alert(
        &self,
        id: &str,
        update: impl FnOnce(&mut AlertRecord) -> HistoryEntry,
    ) -> Option<AlertRecord> {
        let mut alerts = self.alerts.lock().expect("alerts lock");
        let record = alerts.get_mut(id)?;
        let entry = update(record);
        record.updated_at = entry.at;
        record.history.push(entry);
        let record = record.clone();
        // Published under the lock: deltas of one alert go out in the order of its
        // history, so a client appending their lines never skips one.
        self.publish(self.alert_delta(&record, 1));
        drop(alerts);
        Some(record)
    }

    /// Appends one line to the audit log (and queues it for the store).
    pub fn audit(&self, who: &str, action: &str, target: &str, detail: Value) {
        // A target comes from a request's path: at most 256 bytes of it are kept.
        let target = clip(target, 256);
        let target = target.as_str();
        let at = now_ms();
        if let Some(store) = self.store() {
            store.enqueue(
                Vec::new(),
                vec![watchfloor_store::AuditRow {
                    at,
                    by: who.into(),
                    action: action.into(),
                    target: target.into(),
                    detail: detail.clone(),
                }],
            );
        }
        self.audit_local(at, who, action, target, detail);
    }

    /// Sets who may read `/metrics` on the main listener (once, at start).
    pub fn set_metrics_access(&self, access: MetricsAccess) {
        let _ = self.metrics_access.set(access);
    }

    /// Records a refused request (flat: who, what, status, why), within the caller's
    /// per-minute allowance (`limits`); always counted.
    pub(crate) fn audit_refusal(&self, who: &str, what: &str, status: u16, why: &str) {
        if self.guard.admit_refusal(who, status) {
            self.audit(who, "refused", what, json!({"status": status, "why": why}));
        }
    }

    /// Appends one line to the audit file and the recent lines only (the store already has
    /// it: committed with the action it records).
    pub(crate) fn audit_local(
        &self,
        at: i64,
        who: &str,
        action: &str,
        target: &str,
        detail: Value,
    ) {
        let line =
            json!({"at": at, "by": who, "action": action, "target": target, "detail": detail});
        tracing::info!(by = who, action, target, "audit");
        if let Some(w) = self.audit.lock().expect("audit lock").as_mut() {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
        let mut recent = self.audit_recent.lock().expect("audit lock");
        if recent.len() == 10_000 {
            recent.pop_front();
        }
        recent.push_back(line.to_string());
    }

    /// The most recent audit lines (up to 10,000), NDJSON.
    pub fn audit_text(&self) -> String {
        let recent = self.audit_recent.lock().expect("audit lock");
        let mut out = String::new();
        for line in recent.iter() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// A station's latest reading (`ts`, `values`, `status`, `event`, `attrs`), built under
    /// the lock without copying its history.
    pub fn latest(&self, id: &str) -> Option<Value> {
        let stations = self.stations.lock().expect("stations lock");
        let l = stations.get(id)?;
        Some(
            json!({"ts": l.ts, "values": l.values, "status": l.status, "event": l.event, "attrs": l.attrs}),
        )
    }

    /// A camera's recent detections, oldest first (personal data not yet masked).
    pub fn detections(&self, id: &str) -> Vec<Value> {
        let stations = self.stations.lock().expect("stations lock");
        stations
            .get(id)
            .map(|l| l.detections.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A station's recent readings, oldest first (`ts`, `values`).
    pub fn recent(&self, id: &str) -> Vec<Value> {
        let stations = self.stations.lock().expect("stations lock");
        stations.get(id).map_or_else(Vec::new, |l| {
            l.recent
                .iter()
                .map(|(ts, values)| json!({"ts": ts, "values": values.iter().cloned().collect::<BTreeMap<_, _>>()}))
                .collect()
        })
    }
}

impl PipelineObserver for Hub {
    fn on_event(&self, event: &Event) {
        self.counters
            .events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.observe_kpis(event);
        self.counters.last_event_by_kind[event.kind.index()]
            .fetch_max(event.ts, std::sync::atomic::Ordering::Relaxed);
        // Personal data can only be in the attributes (the privacy policy says which).
        let personal = !event.attrs.is_empty() || event.camera_event.is_some();
        {
            let mut stations = self.stations.lock().expect("stations lock");
            let live = stations
                .entry(event.source.clone())
                .or_insert_with(|| StationLive {
                    ts: event.ts,
                    values: BTreeMap::new(),
                    status: "00",
                    event: None,
                    attrs: Default::default(),
                    recent: VecDeque::new(),
                    detections: VecDeque::new(),
                });
            live.ts = live.ts.max(event.ts);
            for (k, v) in &event.values {
                live.values.insert(k.clone(), *v);
            }
            live.status = event.status.code();
            live.event = event.camera_event.clone();
            live.attrs = event.attrs.clone();
            if live.recent.len() == RECENT_READINGS {
                live.recent.pop_front();
            }
            live.recent.push_back((event.ts, event.values.clone()));
            if let Some(detected) = &event.camera_event {
                if live.detections.len() == RECENT_DETECTIONS {
                    live.detections.pop_front();
                }
                live.detections.push_back(json!({
                    "ts": event.ts,
                    "event": detected,
                    "confidence": event.value("confidence"),
                    "attrs": event.attrs,
                }));
            }
        }
        let data = json!({
            "station": event.source,
            "kind": event.kind.as_str(),
            "ts": event.ts,
            "values": event.values.iter().cloned().collect::<BTreeMap<_, _>>(),
            "status": event.status.code(),
            "event": event.camera_event,
            "attrs": event.attrs,
            "ward": event.zone,
        });

        self.publish(DeltaItem {
            channel: Channel::Stations,
            ward: event.zone.clone(),
            district: event.attr_text("district"),
            sectors: self.station_sectors(&event.source),
            severity: None,
            rule: None,
            kind: Some(event.kind),
            station: Some(event.source.clone()),
            data,
            personal,
        });
    }

    fn on_transitions(&self, transitions: &[AlertTransition]) {
        let now = now_ms();
        for t in transitions {
            self.counters
                .transitions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if t.state == AlertState::Firing && t.window_start == t.window_end {
                // A per-event alert: event time to now is the pipeline's latency.
                let ms = (now - t.at).max(0) as u64;
                let bucket = LATENCY_BUCKETS_MS
                    .iter()
                    .position(|b| ms <= *b)
                    .unwrap_or(7);
                self.counters.alert_latency_buckets[bucket]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.counters
                    .alert_latency_sum_ms
                    .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
            }
            self.apply_transition(t);
        }
    }

    fn durability(&self) -> (u64, u64) {
        self.store_durability()
    }

    fn on_outcome(&self, outcome: &watchfloor_pipeline::Outcome<'_>) {
        self.observe_quality(outcome);
    }
}

/// The shipped indicator set for `city`'s sectors (or, for a city without them, against
/// the sectors the set itself names, which then match nothing of the city's).
pub(crate) fn default_indicators(city: Option<&City>) -> watchfloor_indicators::IndicatorSet {
    let sectors: Vec<String> = city
        .map(|c| c.sectors.all().iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    watchfloor_indicators::default_set(&sectors).unwrap_or_else(|_| {
        let own = [
            "environment",
            "transport",
            "water_disaster",
            "health",
            "public_safety",
        ]
        .map(String::from);
        watchfloor_indicators::default_set(&own).expect("the shipped indicator set compiles")
    })
}

impl Hub {
    /// Applies an engine transition to its record (created when new), queues it for the
    /// store and publishes it. A transition the record already has (replayed from the
    /// write-ahead log after a restart) adds no second history line.
    pub(crate) fn apply_transition(&self, t: &AlertTransition) {
        self.apply_transition_as(t, None);
    }

    /// [`Hub::apply_transition`], its history line named `event` instead of the
    /// transition's own (`resolved at restart` for the reconciliation). A firing for an
    /// alert resolved at restart reopens it: its input came back from the broker after the
    /// engine's restore (it had been processed, but not logged durably, before a crash).
    pub(crate) fn apply_transition_as(&self, t: &AlertTransition, event: Option<&str>) {
        let (ward, district, kind, location) = self.place_of(&t.key);
        let sectors = self.sectors_of(&t.rule, &t.labels, &t.key);
        let value = t.value.is_finite().then_some(t.value);
        let mut alerts = self.alerts.lock().expect("alerts lock");
        let record = alerts
            .entry(t.alert_id.clone())
            .or_insert_with(|| AlertRecord {
                alert_id: t.alert_id.clone(),
                rule: t.rule.clone(),
                key: t.key.clone(),
                state: "firing",
                severity: t.severity,
                fired_at: t.at,
                updated_at: t.at,
                resolved_at: None,
                value,
                message: t.message.clone(),
                labels: t.labels.clone(),
                ward,
                district,
                sectors: Vec::new(),
                kind,
                location,
                acknowledged: None,
                assignee: None,
                history: Vec::new(),
            });
        let reopen = t.state != AlertState::Resolved
            && record.state == "resolved"
            && record
                .history
                .iter()
                .rev()
                .find(|h| h.by.is_none())
                .is_some_and(|h| h.event == RESOLVED_AT_RESTART);
        let event = match (event, t.state) {
            (Some(event), _) => event,
            _ if reopen => REOPENED,
            (None, AlertState::Resolved) => "resolved",
            _ if record.history.is_empty() => "fired",
            _ => "escalated",
        };
        let entry = HistoryEntry {
            at: t.at,
            event: event.into(),
            by: None,
            detail: format!("{}: {}", t.severity.as_str(), t.message),
        };
        let replayed = record.history.iter().any(|h| {
            h.by.is_none()
                && h.at == entry.at
                && h.detail == entry.detail
                && (h.event == "resolved") == (event == "resolved")
        });
        if !replayed {
            record.history.push(entry.clone());
        }
        record.severity = t.severity;
        record.updated_at = record.updated_at.max(t.at);
        record.value = value.or(record.value);
        record.message = t.message.clone();
        for (k, v) in &t.labels {
            record.labels.insert(k.clone(), v.clone());
        }
        // Recomputed at every transition: a reload may have moved the rule to other sectors.
        record.sectors = sectors;
        if t.state == AlertState::Resolved {
            record.state = "resolved";
            record.resolved_at.get_or_insert(t.at);
        } else if reopen {
            record.state = if record.acknowledged.is_some() {
                "acknowledged"
            } else {
                "firing"
            };
            record.resolved_at = None;
        }
        let record = record.clone();
        // Queued under the lock: the store sees changes in the hub's order.
        if let Some(store) = self.store() {
            store.enqueue(
                vec![crate::persist::transition_change(
                    &record, t, &entry, reopen,
                )],
                Vec::new(),
            );
        }
        // Forget the oldest resolved alerts beyond the retention (the store keeps them).
        let prune_at = self.prune_at.load(std::sync::atomic::Ordering::Relaxed);
        if alerts.len() > prune_at {
            let mut resolved: Vec<(i64, String)> = alerts
                .values()
                .filter(|a| a.state == "resolved")
                .map(|a| (a.updated_at, a.alert_id.clone()))
                .collect();
            resolved.sort();
            let excess = resolved.len().saturating_sub(RESOLVED_KEPT);
            for (_, id) in resolved.into_iter().take(excess) {
                alerts.remove(&id);
            }
            self.prune_at.store(
                (alerts.len() + RESOLVED_KEPT).max(RESOLVED_KEPT * 2),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        self.publish(self.alert_delta(&record, usize::from(!replayed)));
        drop(alerts);
        if !replayed {
            self.offer_to_playbooks(&record, t);
        }
    }
}
