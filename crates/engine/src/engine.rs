//! The engine: routes events to rules, keeps per-(rule, key) window and alert state,
//! tracks watermarks, fires timers, and emits alert transitions.
//!
//! Time has two axes. *Event time* (`ts` in the envelope) assigns events to windows; the
//! *watermark* says how far event time is complete and closes windows. The *clock* is
//! processing time: in [`TimeMode::Processing`] the caller sets it with [`Engine::tick`]
//! (wall clock, live), in [`TimeMode::Event`] it follows the largest event time seen
//! (replay, fully deterministic). Absence timers run on the clock, so "no data for 15
//! minutes" fires on time even when every source is silent. The watermark never lags the
//! freshest event time seen by more than `max_out_of_orderness + idle_timeout`, so an idle
//! or lagging source cannot hold back the windows of the others, and a backlog worked off
//! after a restart is not refused as late; once nothing has arrived for `idle_timeout`, the
//! clock takes the freshest event time's place, so windows close in a silent stream too.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
use thiserror::Error;
use watchfloor_model::{AlertState, AlertTransition, Event, Kind, Location, Rejection, Severity};

use crate::aggregate::{Accumulator, AggFn};
use crate::alert_id::alert_id;
use crate::expr::Scope;
use crate::lookup::LookupTables;
use crate::rule::{KeyBy, Rule, RuleSet, WindowKind};
use crate::template::TemplateVars;
use crate::two_stacks::PaneQueue;
use crate::watermark::Channels;
use crate::window_store::{OpenPanes, PaneAccs, Session, Sliding, WindowState, WindowStore};

/// Which clock drives processing-time timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMode {
    /// The clock follows the largest event time seen: replay, tests, deterministic.
    Event,
    /// The clock is set by [`Engine::tick`]: live pipelines.
    Processing,
}

/// Event-time settings of an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// How far out of order a source's events may arrive before windows close without them.
    pub max_out_of_orderness_ms: i64,
    /// How long after the watermark passes a window's end the window still accepts events.
    pub allowed_lateness_ms: i64,
    /// A source that has not advanced for this long stops holding the watermark back.
    pub idle_timeout_ms: i64,
    /// How often (in clock time) the watermark is recomputed across sources.
    pub watermark_interval_ms: i64,
    /// Which clock drives timers.
    pub time_mode: TimeMode,
    /// Also emit every closed window's aggregates, and per-event rules' single-event
    /// aggregates (start = end = event time), for tests, debugging and KPIs.
    pub emit_window_results: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_out_of_orderness_ms: 10_000,
            allowed_lateness_ms: 30_000,
            idle_timeout_ms: 120_000,
            watermark_interval_ms: 1_000,
            time_mode: TimeMode::Event,
            emit_window_results: false,
        }
    }
}

/// A closed window's aggregates (emitted when [`EngineConfig::emit_window_results`] is set).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult {
    /// Rule id.
    pub rule: String,
    /// Grouping key.
    pub key: String,
    /// Window start (inclusive), epoch ms.
    pub start: i64,
    /// Window end (exclusive), epoch ms.
    pub end: i64,
    /// Aggregate values by slot, in the rule's aggregate order.
    pub values: Vec<f64>,
}

/// What one call into the engine produced.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Alert transitions, in the order they happened.
    pub transitions: Vec<AlertTransition>,
    /// Closed windows, when enabled.
    pub windows: Vec<WindowResult>,
}

/// Counters the engine keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Events accepted.
    pub events: u64,
    /// Events refused as later than the allowed lateness.
    pub late: u64,
    /// Events refused as duplicates.
    pub duplicates: u64,
    /// Condition evaluations that failed (a missing lookup, a division by zero).
    pub eval_errors: u64,
    /// Alert transitions emitted.
    pub transitions: u64,
    /// Windows closed.
    pub windows_closed: u64,
}

/// Who acknowledged an alert, when, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Acknowledgement {
    /// Operator id.
    pub by: String,
    /// When, epoch ms.
    pub at: i64,
    /// Free note.
    pub note: Option<String>,
}

/// A firing alert, as the server shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlertView {
    /// Alert id.
    pub alert_id: String,
    /// Rule id.
    pub rule: String,
    /// Grouping key.
    pub key: String,
    /// Current severity.
    pub severity: Severity,
    /// When it fired.
    pub since: i64,
    /// Acknowledgement, if any.
    pub acknowledged: Option<Acknowledgement>,
}

/// Errors of engine operations other than event processing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// No firing alert has this id.
    #[error("no firing alert with id `{0}`")]
    UnknownAlert(String),
    /// The action could not be made durable, so it was not applied (retry).
    #[error("the action could not be recorded durably, try again: {0}")]
    Unavailable(String),
    /// An exercise command that cannot apply (a bad id, an exercise not running).
    #[error("{0}")]
    Exercise(String),
}

const NONE: i64 = i64::MIN;

/// What a condition is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evaluation {
    /// One event (rules without a window).
    Event,
    /// A closed window; an empty sliding window may resolve an alert but never fires one.
    Window { held_data: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    WindowClose = 0,
    ForDuration = 1,
    Escalate = 2,
    ResolveAfter = 3,
    Absence = 4,
}

/// A pending timer, packed into 16 bytes (one exists per open window per key).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Timer {
    /// Rule index << 3 | timer kind.
    rule_and_kind: u32,
    key: u32,
    /// What the timer was set for (a streak or alert start), to recognise stale timers.
    tag: i64,
}

impl Timer {
    fn new(rule: u32, key: u32, kind: TimerKind, tag: i64) -> Self {
        debug_assert!(rule < 1 << 29);
        Timer {
            rule_and_kind: rule << 3 | kind as u32,
            key,
            tag,
        }
    }

    fn rule(self) -> u32 {
        self.rule_and_kind >> 3
    }

    fn kind(self) -> TimerKind {
        match self.rule_and_kind & 7 {
            0 => TimerKind::WindowClose,
            1 => TimerKind::ForDuration,
            2 => TimerKind::Escalate,
            3 => TimerKind::ResolveAfter,
            _ => TimerKind::Absence,
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ActiveAlert {
    id: String,
    since: i64,
    severity: Severity,
    next_escalation: usize,
    ack: Option<Acknowledgement>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AlertTrack {
    streak: u32,
    streak_start: i64,
    last_true: i64,
    last_values: Box<[f64]>,
    last_window: (i64, i64),
    active: Option<ActiveAlert>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AbsenceTrack {
    last_seen: i64,
    last_ts: i64,
    scheduled: i64,
}

struct RuleRuntime {
    rule: Arc<Rule>,
    /// Engine-wide metric ids of `rule.metrics`, and of `match.metric`.
    metric_ids: Vec<u16>,
    filter_metric: Option<u16>,
    /// Accumulators per pane: one per metric, plus one event counter if `count()` is used.
    acc_template: Box<[Accumulator]>,
    event_counter: Option<usize>,
    alerts: FxHashMap<u32, AlertTrack>,
    absence: FxHashMap<u32, AbsenceTrack>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SourceState {
    max_ts: i64,
    recent: [u64; 4],
    next_slot: u8,
    /// The input channel its last event came on (see [`crate::watermark`]).
    channel: u32,
}

#[derive(Default)]
struct KeyInterner {
    ids: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl KeyInterner {
    #[inline]
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }
}

/// The rule engine. Single-threaded and deterministic: scale out by partitioning keys
/// across engines (one per Kafka partition set), not by sharing one.
pub struct Engine {
    config: EngineConfig,
    rules: Vec<RuleRuntime>,
    by_kind: Vec<Vec<u32>>,
    lookups: Arc<LookupTables>,
    keys: KeyInterner,
    sources: Vec<Option<SourceState>>,
    windows: WindowStore,
    /// Reused buffers, so closing a window allocates nothing in the common case.
    values_scratch: Vec<f64>,
    closed_scratch: Vec<(i64, i64, PaneAccs, bool)>,
    /// Every metric a rule reads, numbered; `event_values[id]` holds the current event's
    /// value (NaN when absent), so rules never compare metric names per event.
    metric_ids: FxHashMap<Box<str>, u16>,
    event_values: Vec<f64>,
    clock: i64,
    /// Input channels (Kafka partitions, MQTT sources) and when each last delivered: the
    /// watermark is the minimum over the active ones.
    channels: Channels,
    watermark: i64,
    next_recompute: i64,
    flushing: bool,
    wm_timers: BTreeMap<i64, Vec<Timer>>,
    clock_timers: BTreeMap<i64, Vec<Timer>>,
    active_index: FxHashMap<String, (u32, u32)>,
    /// Per rule: the corroboration rules listening to its firings, and on which side.
    listeners: Vec<Vec<(u32, Side)>>,
    /// Per corroboration rule: recent firings of its two rules.
    sightings: FxHashMap<u32, Vec<Sighting>>,
    /// Where `station.lat` and `station.lon` are, when there is a city.
    position_columns: Option<((usize, usize), (usize, usize))>,
    stats: EngineStats,
}

/// Version of the checkpoint format; a checkpoint of another version is not read.
const CHECKPOINT_VERSION: u32 = 2;

/// What [`Engine::restore`] brought back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// The source positions the checkpoint covers (as given to [`Engine::checkpoint`]).
    pub positions: BTreeMap<String, String>,
    /// Rules whose state came back.
    pub kept: Vec<String>,
    /// Rules in the checkpoint that no longer exist or changed: their state was dropped.
    pub dropped: Vec<String>,
}

/// Why a checkpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    /// The bytes are not a checkpoint (truncated, corrupt).
    #[error("the checkpoint is unreadable: {0}")]
    Corrupt(String),
    /// Written by another version of the format.
    #[error(
        "the checkpoint has format version {0}, this engine reads version {CHECKPOINT_VERSION}"
    )]
    Version(u32),
}

#[derive(serde::Serialize)]
struct RuleStateOut<'a> {
    id: &'a str,
    definition: String,
    alerts: Vec<(&'a u32, &'a AlertTrack)>,
    absence: Vec<(&'a u32, &'a AbsenceTrack)>,
}

#[derive(serde::Deserialize)]
struct RuleStateIn {
    id: String,
    definition: String,
    alerts: Vec<(u32, AlertTrack)>,
    absence: Vec<(u32, AbsenceTrack)>,
}

/// The serialised form of an engine (field order is the format: keep it in step with
/// [`SnapshotIn`]).
#[derive(serde::Serialize)]
struct SnapshotOut<'a> {
    version: u32,
    rules: Vec<RuleStateOut<'a>>,
    keys: &'a [Arc<str>],
    sources: &'a [Option<SourceState>],
    channels: &'a Channels,
    windows: &'a WindowStore,
    clock: i64,
    watermark: i64,
    next_recompute: i64,
    wm_timers: &'a BTreeMap<i64, Vec<Timer>>,
    clock_timers: &'a BTreeMap<i64, Vec<Timer>>,
    active_index: Vec<(&'a String, &'a (u32, u32))>,
    sightings: Vec<(&'a u32, &'a Vec<Sighting>)>,
    stats: &'a EngineStats,
    positions: &'a BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct SnapshotIn {
    version: u32,
    rules: Vec<RuleStateIn>,
    keys: Vec<Arc<str>>,
    sources: Vec<Option<SourceState>>,
    channels: Channels,
    windows: WindowStore,
    clock: i64,
    watermark: i64,
    next_recompute: i64,
    wm_timers: BTreeMap<i64, Vec<Timer>>,
    clock_timers: BTreeMap<i64, Vec<Timer>>,
    active_index: Vec<(String, (u32, u32))>,
    sightings: Vec<(u32, Vec<Sighting>)>,
    stats: EngineStats,
    positions: BTreeMap<String, String>,
}

/// What a [`Engine::reload`] did, by rule id.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadSummary {
    /// Unchanged rules: their state carried over.
    pub kept: Vec<String>,
    /// Rules whose definition changed: they start empty.
    pub changed: Vec<String>,
    /// New rules.
    pub added: Vec<String>,
    /// Rules no longer in the set: their alerts were resolved and their state dropped.
    pub removed: Vec<String>,
}

/// The metric under which refused duplicates are shown to rules that watch for them.
pub const DUPLICATE_METRIC: &str = "duplicate_timestamps";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Side {
    First,
    Then,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Sighting {
    side: Side,
    key: u32,
    at: i64,
    place: Location,
}

impl Engine {
    /// An engine running `rules` with `config`.
    pub fn new(rules: RuleSet, config: EngineConfig) -> Self {
        let mut metric_ids: FxHashMap<Box<str>, u16> = FxHashMap::default();
        let runtimes: Vec<RuleRuntime> = rules
            .rules
            .iter()
            .map(|rule| build_runtime(rule, &mut metric_ids))
            .collect();
        let (by_kind, listeners) = wire(&rules.rules);
        let position_columns = rules
            .lookups
            .position("station", "lat")
            .zip(rules.lookups.position("station", "lon"));
        Engine {
            listeners,
            sightings: FxHashMap::default(),
            position_columns,
            config,
            rules: runtimes,
            by_kind,
            lookups: rules.lookups.clone(),
            keys: KeyInterner::default(),
            sources: Vec::new(),
            windows: WindowStore::default(),
            values_scratch: Vec::new(),
            closed_scratch: Vec::new(),
            event_values: vec![f64::NAN; metric_ids.len()],
            metric_ids,
            clock: NONE,
            channels: Channels::default(),
            watermark: NONE,
            next_recompute: NONE,
            flushing: false,
            wm_timers: BTreeMap::new(),
            clock_timers: BTreeMap::new(),
            active_index: FxHashMap::default(),
            stats: EngineStats::default(),
        }
    }

    /// Replaces the rule set without a restart. A rule whose definition is unchanged
    /// (same id, same compiled definition) keeps its windows, alerts, timers and absence
    /// tracking; a changed or new rule starts empty; a removed rule's state is dropped
    /// (its open alerts are resolved, so no alert is left firing without a rule).
    pub fn reload(&mut self, rules: RuleSet, out: &mut Emitted) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let mut old: Vec<Option<RuleRuntime>> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(Some)
            .collect();
        // Resolve the alerts of rules that go away or change, while they still exist.
        let keep: Vec<Option<usize>> = old
            .iter()
            .map(|rt| {
                let rt = rt.as_ref().expect("present");
                rules
                    .rules
                    .iter()
                    .position(|r| r.id == rt.rule.id && r.definition() == rt.rule.definition())
            })
            .collect();
        self.rules = old
            .iter_mut()
            .map(|rt| rt.take().expect("present"))
            .collect();
        for (r, kept) in keep.iter().enumerate() {
            if kept.is_none() {
                let firing: Vec<u32> = self.rules[r]
                    .alerts
                    .iter()
                    .filter(|(_, t)| t.active.is_some())
                    .map(|(k, _)| *k)
                    .collect();
                for key in firing {
                    let at = self.clock.max(self.watermark);
                    self.resolve(r as u32, key, at, None, out);
                }
            }
        }
        let mut old: Vec<Option<RuleRuntime>> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(Some)
            .collect();
        let mut new_index = vec![None; old.len()];
        let mut runtimes = Vec::with_capacity(rules.rules.len());
        for (n, rule) in rules.rules.iter().enumerate() {
            let previous = keep.iter().position(|k| *k == Some(n));
            match previous.and_then(|o| old[o].take().map(|rt| (o, rt))) {
                Some((o, mut rt)) => {
                    // Same definition, compiled against the new lookup tables.
                    rt.rule = rule.clone();
                    new_index[o] = Some(n as u32);
                    runtimes.push(rt);
                    summary.kept.push(rule.id.clone());
                }
                None => {
                    runtimes.push(build_runtime(rule, &mut self.metric_ids));
                    if old.iter().flatten().any(|rt| rt.rule.id == rule.id) {
                        summary.changed.push(rule.id.clone());
                    } else {
                        summary.added.push(rule.id.clone());
                    }
                }
            }
        }
        summary.removed = old
            .iter()
            .flatten()
            .map(|rt| rt.rule.id.clone())
            .filter(|id| !summary.changed.contains(id))
            .collect();
        self.rules = runtimes;
        self.event_values.resize(self.metric_ids.len(), f64::NAN);
        let (by_kind, listeners) = wire(&rules.rules);
        self.by_kind = by_kind;
        self.listeners = listeners;
        self.lookups = rules.lookups.clone();
        self.position_columns = rules
            .lookups
            .position("station", "lat")
            .zip(rules.lookups.position("station", "lon"));
        self.remap_rules(&|r: u32| new_index.get(r as usize).copied().flatten());
        summary
    }

    /// Renumbers every piece of per-rule state after the rule list changed: `map` gives a
    /// rule's new index, or `None` to drop its state.
    fn remap_rules(&mut self, map: &dyn Fn(u32) -> Option<u32>) {
        self.windows.remap(map);
        for timers in [&mut self.wm_timers, &mut self.clock_timers] {
            for list in timers.values_mut() {
                list.retain_mut(|t| match map(t.rule()) {
                    Some(n) => {
                        *t = Timer::new(n, t.key, t.kind(), t.tag);
                        true
                    }
                    None => false,
                });
            }
            timers.retain(|_, list| !list.is_empty());
        }
        self.active_index.retain(|_, (r, _)| map(*r).is_some());
        for (r, _) in self.active_index.values_mut() {
            *r = map(*r).expect("retained");
        }
        self.sightings = std::mem::take(&mut self.sightings)
            .into_iter()
            .filter_map(|(c, s)| map(c).map(|n| (n, s)))
            .collect();
    }

    /// The engine's whole state (windows, alerts, timers, watermarks, duplicate memory) with
    /// the source `positions` it covers, as bytes for [`Engine::restore`].
    pub fn checkpoint(&self, positions: &BTreeMap<String, String>) -> Vec<u8> {
        let snapshot = SnapshotOut {
            version: CHECKPOINT_VERSION,
            rules: self
                .rules
                .iter()
                .map(|rt| RuleStateOut {
                    id: &rt.rule.id,
                    definition: rt.rule.definition(),
                    alerts: rt.alerts.iter().collect(),
                    absence: rt.absence.iter().collect(),
                })
                .collect(),
            keys: &self.keys.names,
            sources: &self.sources,
            channels: &self.channels,
            windows: &self.windows,
            clock: self.clock,
            watermark: self.watermark,
            next_recompute: self.next_recompute,
            wm_timers: &self.wm_timers,
            clock_timers: &self.clock_timers,
            active_index: self.active_index.iter().collect(),
            sightings: self.sightings.iter().collect(),
            stats: &self.stats,
            positions,
        };
        postcard::to_stdvec(&snapshot).expect("engine state serialises")
    }

    /// An engine running `rules` that resumes from a [`Engine::checkpoint`]. Rules whose
    /// definition is unchanged get their state back; others start empty.
    pub fn restore(
        rules: RuleSet,
        config: EngineConfig,
        bytes: &[u8],
    ) -> Result<(Engine, Restored), CheckpointError> {
        let snapshot: SnapshotIn =
            postcard::from_bytes(bytes).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        if snapshot.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Version(snapshot.version));
        }
        let mut engine = Engine::new(rules, config);
        let mut restored = Restored {
            positions: snapshot.positions,
            ..Restored::default()
        };
        let mut map: Vec<Option<u32>> = Vec::with_capacity(snapshot.rules.len());
        for state in snapshot.rules {
            let found = engine
                .rules
                .iter()
                .position(|rt| rt.rule.id == state.id && rt.rule.definition() == state.definition);
            match found {
                Some(n) => {
                    let rt = &mut engine.rules[n];
                    rt.alerts = state.alerts.into_iter().collect();
                    rt.absence = state.absence.into_iter().collect();
                    restored.kept.push(state.id);
                }
                None => restored.dropped.push(state.id),
            }
            map.push(found.map(|n| n as u32));
        }
        engine.keys = KeyInterner {
            ids: snapshot
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i as u32))
                .collect(),
            names: snapshot.keys,
        };
        engine.sources = snapshot.sources;
        engine.channels = snapshot.channels;
        engine.channels.restored();
        engine.windows = snapshot.windows;
        engine.clock = snapshot.clock;
        engine.watermark = snapshot.watermark;
        engine.next_recompute = snapshot.next_recompute;
        engine.wm_timers = snapshot.wm_timers;
        engine.clock_timers = snapshot.clock_timers;
        engine.active_index = snapshot.active_index.into_iter().collect();
        engine.sightings = snapshot.sightings.into_iter().collect();
        engine.stats = snapshot.stats;
        engine.remap_rules(&|r: u32| map.get(r as usize).copied().flatten());
        Ok((engine, restored))
    }

    /// Counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The current watermark (epoch ms; `i64::MIN` before any event).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The current clock (epoch ms; `i64::MIN` before any event or tick).
    pub fn clock(&self) -> i64 {
        self.clock
    }

    /// Number of (rule, key) window states held.
    pub fn window_state_count(&self) -> usize {
        self.windows.len()
    }

    /// Takes one validated event. Late and duplicate events are refused with the reason
    /// (the caller dead-letters them); nothing else is refused.
    pub fn process(&mut self, event: &Event, out: &mut Emitted) -> Result<(), Rejection> {
        self.process_on(0, event, out)
    }

    /// Takes one validated event that came on input `channel` (a Kafka partition, an MQTT
    /// source): the watermark is the minimum over active channels ([`crate::watermark`]).
    pub fn process_on(
        &mut self,
        channel: u32,
        event: &Event,
        out: &mut Emitted,
    ) -> Result<(), Rejection> {
        let source = self.keys.intern(&event.source);
        if self.config.time_mode == TimeMode::Event && event.ts > self.clock {
            self.clock = event.ts;
        }
        self.channels.arrived(channel, self.clock);
        let lateness = self.config.allowed_lateness_ms;
        if self.watermark != NONE && event.ts < self.watermark.saturating_sub(lateness) {
            self.stats.late += 1;
            return Err(Rejection::Late {
                behind_ms: self.watermark - event.ts,
                allowed_ms: lateness,
            });
        }
        let fingerprint = event_fingerprint(event);
        let slot = source as usize;
        if self.sources.len() <= slot {
            self.sources.resize_with(slot + 1, || None);
        }
        let state = self.sources[slot].get_or_insert_with(|| SourceState {
            max_ts: event.ts,
            ..SourceState::default()
        });
        if state.recent.contains(&fingerprint) {
            self.stats.duplicates += 1;
            self.observe_duplicate(source, event, out);
            return Err(Rejection::Duplicate);
        }
        state.recent[state.next_slot as usize] = fingerprint;
        state.next_slot = (state.next_slot + 1) % 4;
        state.max_ts = state.max_ts.max(event.ts);
        state.channel = channel;
        self.stats.events += 1;

        for (name, v) in &event.values {
            if let Some(id) = self.metric_ids.get(name.as_str()) {
                self.event_values[*id as usize] = *v;
            }
        }
        let kind = event.kind.index();
        for i in 0..self.by_kind[kind].len() {
            let r = self.by_kind[kind][i];
            self.apply_rule(r, source, event, out);
        }
        for (name, _) in &event.values {
            if let Some(id) = self.metric_ids.get(name.as_str()) {
                self.event_values[*id as usize] = f64::NAN;
            }
        }
        self.after_clock_change(out);
        Ok(())
    }

    /// Shows a refused duplicate to the rules that watch for them (`match.metric:
    /// duplicate_timestamps`) as a reading of that metric, value 1; other rules never see it.
    fn observe_duplicate(&mut self, source: u32, event: &Event, out: &mut Emitted) {
        let Some(&id) = self.metric_ids.get(DUPLICATE_METRIC) else {
            return;
        };
        let watchers: Vec<u32> = self.by_kind[event.kind.index()]
            .iter()
            .copied()
            .filter(|r| self.rules[*r as usize].filter_metric == Some(id))
            .collect();
        if watchers.is_empty() {
            return;
        }
        let marker = Event {
            values: vec![(DUPLICATE_METRIC.to_string(), 1.0)],
            ..event.clone()
        };
        self.event_values[id as usize] = 1.0;
        for r in watchers {
            self.apply_rule(r, source, &marker, out);
        }
        self.event_values[id as usize] = f64::NAN;
        self.after_clock_change(out);
    }

    /// Sets the processing-time clock (live mode) and fires whatever is due: absence
    /// alerts, windows the watermark can now close, escalations.
    pub fn tick(&mut self, now: i64, out: &mut Emitted) {
        if now > self.clock {
            self.clock = now;
        }
        // Silence is counted from the first tick (a start, or a restore).
        self.channels.start_counting(now);
        self.after_clock_change(out);
    }

    /// The engine resumes at `now` after being down since its clock (a restart from a
    /// checkpoint): station silence is counted without the downtime, since nothing could be
    /// seen meanwhile, so absence rules do not report every station offline after a restart
    /// longer than their limit. Other timers (escalation, `resolve_after`) keep running on
    /// the wall clock: an incident does not pause while the centre restarts.
    pub fn resume(&mut self, now: i64) {
        if self.clock == NONE || now <= self.clock {
            return;
        }
        let downtime = now - self.clock;
        for runtime in &mut self.rules {
            for track in runtime.absence.values_mut() {
                track.last_seen = track.last_seen.saturating_add(downtime);
            }
        }
    }

    /// Input `channel` will deliver (a Kafka partition assigned): until it does, or goes
    /// idle, it holds the watermark back, so its backlog is not refused as late.
    pub fn open_channel(&mut self, channel: u32) {
        self.channels.open(channel, self.clock);
    }

    /// Input `channel` will not deliver any more (a Kafka partition revoked): it no longer
    /// holds the watermark back.
    pub fn close_channel(&mut self, channel: u32) {
        self.channels.close(channel);
    }

    /// Ends a bounded input: closes every open window as if event time had run out.
    /// Clock timers (absence, escalation) are left as they are: the future was not seen.
    pub fn finish(&mut self, out: &mut Emitted) {
        self.flushing = true;
        self.watermark = i64::MAX;
        self.fire_due(out);
        self.flushing = false;
    }

    /// Records an operator's acknowledgement on a firing alert.
    pub fn acknowledge(&mut self, id: &str, ack: Acknowledgement) -> Result<(), EngineError> {
        self.firing_mut(id)?.2.ack = Some(ack);
        Ok(())
    }

    /// The rule index, key and state of firing alert `id`.
    fn firing_mut(&mut self, id: &str) -> Result<(u32, u32, &mut ActiveAlert), EngineError> {
        let (r, k) = *self
            .active_index
            .get(id)
            .ok_or_else(|| EngineError::UnknownAlert(id.to_string()))?;
        let active = self.rules[r as usize]
            .alerts
            .get_mut(&k)
            .and_then(|t| t.active.as_mut())
            .ok_or_else(|| EngineError::UnknownAlert(id.to_string()))?;
        Ok((r, k, active))
    }

    /// The rules this engine runs (an exercise's engine is started with them).
    pub fn rule_set(&self) -> RuleSet {
        RuleSet {
            rules: self.rules.iter().map(|rt| rt.rule.clone()).collect(),
            lookups: self.lookups.clone(),
        }
    }

    /// The engine's event-time settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Resolves a firing alert by hand (an operator closing it) at `at`; the rule starts
    /// afresh for that key, so the alert comes back if the condition still holds.
    pub fn resolve_manually(
        &mut self,
        id: &str,
        at: i64,
        out: &mut Emitted,
    ) -> Result<(), EngineError> {
        let (r, k) = *self
            .active_index
            .get(id)
            .ok_or_else(|| EngineError::UnknownAlert(id.to_string()))?;
        self.resolve(r, k, at, None, out);
        Ok(())
    }

    /// Raises a firing alert's severity by hand (a playbook's escalation on a breached
    /// step) at `at`: an `escalated` transition when `severity` is above the alert's, nothing
    /// when it is not (a raise never lowers). Answers whether it changed anything.
    pub fn raise_severity(
        &mut self,
        id: &str,
        severity: Severity,
        at: i64,
        out: &mut Emitted,
    ) -> Result<bool, EngineError> {
        let (r, k, active) = self.firing_mut(id)?;
        if severity <= active.severity {
            return Ok(false);
        }
        active.severity = severity;
        self.emit(r, k, AlertState::Firing, at, None, out);
        Ok(true)
    }

    /// Every firing alert, ordered by id.
    pub fn active_alerts(&self) -> Vec<ActiveAlertView> {
        let mut views: Vec<ActiveAlertView> = self
            .active_index
            .iter()
            .filter_map(|(id, (r, k))| {
                let runtime = &self.rules[*r as usize];
                let active = runtime.alerts.get(k)?.active.as_ref()?;
                Some(ActiveAlertView {
                    alert_id: id.clone(),
                    rule: runtime.rule.id.clone(),
                    key: self.keys.names[*k as usize].to_string(),
                    severity: active.severity,
                    since: active.since,
                    acknowledged: active.ack.clone(),
                })
            })
            .collect();
        views.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        views
    }

    // -----------------------------------------------------------------------------------
    // Routing and windows.

    fn key_for(keys: &mut KeyInterner, rule: &Rule, source: u32, event: &Event) -> Option<u32> {
        match &rule.key_by {
            KeyBy::Source => Some(source),
            KeyBy::Zone => event.zone.as_deref().map(|z| keys.intern(z)),
            KeyBy::Attr(name) => event.attr_text(name).map(|v| keys.intern(&v)),
            KeyBy::All => Some(keys.intern("*")),
        }
    }

    fn rule_matches(runtime: &RuleRuntime, event: &Event, event_values: &[f64]) -> bool {
        let rule = &runtime.rule;
        if !rule.accepts_status(event.status) {
            return false;
        }
        if let Some(id) = runtime.filter_metric {
            if event_values[id as usize].is_nan() {
                return false;
            }
        }
        if let Some(pattern) = &rule.source_pattern {
            if !pattern.matches(&event.source) {
                return false;
            }
        }
        if let Some(zone) = &rule.zone {
            if event.zone.as_deref() != Some(zone.as_str()) {
                return false;
            }
        }
        if let Some(names) = &rule.camera_events {
            match &event.camera_event {
                Some(e) if names.iter().any(|n| n == e) => {}
                _ => return false,
            }
        }
        true
    }

    fn apply_rule(&mut self, r: u32, source: u32, event: &Event, out: &mut Emitted) {
        // Borrow the rule in place (no reference-count traffic on this path).
        let rule = &self.rules[r as usize].rule;
        if !Self::rule_matches(&self.rules[r as usize], event, &self.event_values) {
            return;
        }
        let Some(key) = Self::key_for(&mut self.keys, rule, source, event) else {
            return;
        };
        if let Some(absence_ms) = rule.absence_ms {
            self.on_absence_event(r, key, event.ts, absence_ms, out);
            return;
        }
        // An event that carries none of the rule's metrics has nothing to aggregate.
        let runtime = &self.rules[r as usize];
        if runtime.event_counter.is_none()
            && runtime
                .metric_ids
                .iter()
                .all(|id| self.event_values[*id as usize].is_nan())
        {
            return;
        }
        match runtime.rule.window {
            WindowKind::None => {
                let mut values = std::mem::take(&mut self.values_scratch);
                single_event_values(runtime, &self.event_values, &mut values);
                if self.config.emit_window_results {
                    out.windows.push(WindowResult {
                        rule: runtime.rule.id.clone(),
                        key: self.keys.names[key as usize].to_string(),
                        start: event.ts,
                        end: event.ts,
                        values: values.clone(),
                    });
                }
                self.evaluate(
                    r,
                    key,
                    (event.ts, event.ts),
                    event.ts,
                    &values,
                    Evaluation::Event,
                    out,
                );
                self.values_scratch = values;
            }
            WindowKind::Tumbling { size: pane } | WindowKind::Hopping { slide: pane, .. } => {
                let lateness = self.config.allowed_lateness_ms;
                let runtime = &self.rules[r as usize];
                let pane_start = event.ts.div_euclid(pane) * pane;
                let state = self
                    .windows
                    .get_or_insert_with(key, r, || WindowState::Panes {
                        open: OpenPanes::default(),
                        sliding: None,
                        scheduled: NONE,
                    });
                let WindowState::Panes {
                    open, scheduled, ..
                } = state
                else {
                    unreachable!("pane rules hold pane state")
                };
                let accs = open.entry(pane_start, &runtime.acc_template);
                add_event(runtime, &self.event_values, accs.as_mut_slice(), event.ts);
                let due = pane_start + pane + lateness;
                if *scheduled == NONE || due < *scheduled {
                    *scheduled = due;
                    push_timer(
                        &mut self.wm_timers,
                        due,
                        Timer::new(r, key, TimerKind::WindowClose, due),
                    );
                }
            }
            WindowKind::Session { gap } => {
                let lateness = self.config.allowed_lateness_ms;
                let runtime = &self.rules[r as usize];
                let state = self
                    .windows
                    .get_or_insert_with(key, r, || WindowState::Sessions {
                        sessions: Vec::with_capacity(1),
                        scheduled: NONE,
                    });
                let WindowState::Sessions {
                    sessions,
                    scheduled,
                } = state
                else {
                    unreachable!("session rules hold session state")
                };
                let ts = event.ts;
                // The first session this event touches (closer than `gap` to either end).
                let touching = sessions
                    .iter()
                    .position(|s| ts < s.last + gap && ts > s.start - gap);
                let idx = match touching {
                    None => {
                        let at = sessions.partition_point(|s| s.start < ts);
                        sessions.insert(
                            at,
                            Session {
                                start: ts,
                                last: ts,
                                accs: PaneAccs::from_template(&runtime.acc_template),
                            },
                        );
                        at
                    }
                    Some(i) => {
                        let s = &mut sessions[i];
                        s.start = s.start.min(ts);
                        s.last = s.last.max(ts);
                        // The grown session may now reach the next one: merge them.
                        while i + 1 < sessions.len()
                            && sessions[i + 1].start - sessions[i].last < gap
                        {
                            let next = sessions.remove(i + 1);
                            let s = &mut sessions[i];
                            s.last = s.last.max(next.last);
                            for (a, b) in s.accs.as_mut_slice().iter_mut().zip(next.accs.as_slice())
                            {
                                a.merge(b);
                            }
                        }
                        i
                    }
                };
                add_event(
                    runtime,
                    &self.event_values,
                    sessions[idx].accs.as_mut_slice(),
                    event.ts,
                );
                let due = sessions
                    .iter()
                    .map(|s| s.last + gap + lateness)
                    .min()
                    .unwrap_or(NONE);
                if *scheduled == NONE || due < *scheduled {
                    *scheduled = due;
                    push_timer(
                        &mut self.wm_timers,
                        due,
                        Timer::new(r, key, TimerKind::WindowClose, due),
                    );
                }
            }
        }
    }

    /// Closes what the watermark allows for one (rule, key) and re-arms its timer.
    fn close_windows(&mut self, r: u32, key: u32, fired_at: i64, out: &mut Emitted) {
        let lateness = self.config.allowed_lateness_ms;
        let wm = self.watermark;
        let runtime = &self.rules[r as usize];
        let rule = runtime.rule.clone();
        let alert_firing = runtime.alerts.get(&key).is_some_and(|t| t.active.is_some());
        let Some(state) = self.windows.get_mut(key, r) else {
            return;
        };
        if state.scheduled() != fired_at {
            return; // a stale timer: the window was re-armed earlier
        }
        // (start, end, aggregates, whether the window held data)
        let mut closed = std::mem::take(&mut self.closed_scratch);
        let drop_state;
        match state {
            WindowState::Panes {
                open,
                sliding,
                scheduled,
            } => {
                let pane = rule.window.pane().expect("pane window");
                let k = rule.window.panes_per_window();
                if k == 1 {
                    while open
                        .earliest()
                        .is_some_and(|start| start + pane + lateness <= wm)
                    {
                        let p = open.pop_earliest().expect("checked");
                        closed.push((p.start, p.start + pane, p.accs, true));
                    }
                    *scheduled = open
                        .earliest()
                        .map_or(NONE, |start| start + pane + lateness);
                    drop_state = open.is_empty();
                } else {
                    let Sliding { queue, cursor } = &mut **sliding.get_or_insert_with(|| {
                        Box::new(Sliding {
                            queue: None,
                            cursor: NONE,
                        })
                    });
                    let q =
                        queue.get_or_insert_with(|| PaneQueue::new(runtime.acc_template.clone()));
                    if *cursor == NONE {
                        *cursor = open.earliest().map_or(NONE, |start| start + pane);
                    }
                    let size = pane * k as i64;
                    while *cursor != NONE && *cursor + lateness <= wm {
                        let end = *cursor;
                        let pane_accs = if open.earliest() == Some(end - pane) {
                            open.pop_earliest().expect("checked").accs.into_boxed()
                        } else {
                            runtime.acc_template.clone()
                        };
                        q.push(pane_accs);
                        while q.len() > k {
                            q.pop();
                        }
                        let total = q.total();
                        if total.iter().any(|a| a.count() > 0) {
                            closed.push((end - size, end, PaneAccs::Many(total), true));
                            *cursor = end + pane;
                        } else {
                            // An empty sliding window is real evidence (nothing in the last
                            // `size`): let a firing alert see it and resolve.
                            if alert_firing || closed.iter().any(|c| c.3) {
                                closed.push((end - size, end, PaneAccs::Many(total), false));
                            }
                            // The window slid past all data: wait for the next open pane.
                            *queue = None;
                            *cursor = open.earliest().map_or(NONE, |start| start + pane);
                            break;
                        }
                    }
                    *scheduled = if *cursor == NONE {
                        NONE
                    } else {
                        *cursor + lateness
                    };
                    drop_state = *cursor == NONE && open.is_empty();
                }
            }
            WindowState::Sessions {
                sessions,
                scheduled,
            } => {
                let WindowKind::Session { gap } = rule.window else {
                    unreachable!("session state belongs to a session rule")
                };
                let mut i = 0;
                while i < sessions.len() {
                    if sessions[i].last + gap + lateness <= wm {
                        let s = sessions.remove(i);
                        closed.push((s.start, s.last + gap, s.accs, true));
                    } else {
                        i += 1;
                    }
                }
                *scheduled = sessions
                    .iter()
                    .map(|s| s.last + gap + lateness)
                    .min()
                    .unwrap_or(NONE);
                drop_state = sessions.is_empty();
            }
        }
        let rearm = state.scheduled();
        if drop_state {
            self.windows.remove(key, r);
        } else if rearm != NONE {
            push_timer(
                &mut self.wm_timers,
                rearm,
                Timer::new(r, key, TimerKind::WindowClose, rearm),
            );
        }
        let event_counter = self.rules[r as usize].event_counter;
        let mut values = std::mem::take(&mut self.values_scratch);
        for (start, end, accs, held_data) in closed.drain(..) {
            window_values(&rule, event_counter, accs.as_slice(), &mut values);
            if held_data {
                self.stats.windows_closed += 1;
            }
            if held_data && self.config.emit_window_results {
                out.windows.push(WindowResult {
                    rule: rule.id.clone(),
                    key: self.keys.names[key as usize].to_string(),
                    start,
                    end,
                    values: values.clone(),
                });
            }
            self.evaluate(
                r,
                key,
                (start, end),
                end,
                &values,
                Evaluation::Window { held_data },
                out,
            );
        }
        self.values_scratch = values;
        self.closed_scratch = closed;
    }

    // -----------------------------------------------------------------------------------
    // Alert lifecycle.

    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        r: u32,
        key: u32,
        window: (i64, i64),
        at: i64,
        values: &[f64],
        kind: Evaluation,
        out: &mut Emitted,
    ) {
        let per_event = kind == Evaluation::Event;
        let rule = self.rules[r as usize].rule.clone();
        let key_name = self.keys.names[key as usize].clone();
        let with_derived;
        let values = if rule.derived.is_empty() {
            values
        } else {
            let mut all = values.to_vec();
            for d in &rule.derived {
                let v = d.number(&Scope {
                    aggregates: &all,
                    key: &key_name,
                    lookups: &self.lookups,
                });
                all.push(v);
            }
            with_derived = all;
            &with_derived[..]
        };
        let scope = Scope {
            aggregates: values,
            key: &key_name,
            lookups: &self.lookups,
        };
        let holds = match rule.condition.as_ref().map(|c| c.holds(&scope)) {
            Some(Ok(b)) => b,
            Some(Err(_)) => {
                self.stats.eval_errors += 1;
                false
            }
            None => false,
        };
        // The highest severity a value escalation grants right now.
        let raised = if holds && !rule.value_escalations.is_empty() {
            rule.value_escalations
                .iter()
                .filter(|e| e.when.holds(&scope) == Ok(true))
                .map(|e| e.severity)
                .max()
        } else {
            None
        };
        let runtime = &mut self.rules[r as usize];
        let firing = runtime.alerts.get(&key).is_some_and(|t| t.active.is_some());
        if firing {
            let clears = match &rule.clear {
                Some(clear) => match clear.holds(&scope) {
                    Ok(b) => b,
                    Err(_) => {
                        self.stats.eval_errors += 1;
                        false
                    }
                },
                None => !holds,
            };
            let track = runtime
                .alerts
                .get_mut(&key)
                .expect("firing alert has a track");
            if holds {
                track.last_true = at;
            }
            track.last_values = values.into();
            track.last_window = window;
            if !clears {
                let active = track.active.as_mut().expect("firing");
                if let Some(severity) = raised.filter(|s| *s > active.severity) {
                    active.severity = severity;
                    self.emit(r, key, AlertState::Firing, at, None, out);
                }
            }
            if clears {
                self.resolve(r, key, at, None, out);
            }
            return;
        }
        if !holds || kind == (Evaluation::Window { held_data: false }) {
            runtime.alerts.remove(&key);
            return;
        }
        let width = values.len();
        let track = runtime.alerts.entry(key).or_insert_with(|| AlertTrack {
            streak: 0,
            streak_start: NONE,
            last_true: NONE,
            last_values: vec![f64::NAN; width].into_boxed_slice(),
            last_window: window,
            active: None,
        });
        if track.streak == 0 {
            track.streak_start = if per_event { at } else { window.0 };
        }
        track.streak += 1;
        track.last_true = at;
        track.last_values = values.into();
        track.last_window = window;
        if track.streak >= rule.for_windows && at - track.streak_start >= rule.for_ms {
            self.fire(r, key, at, None, out);
            if let Some(severity) = raised.filter(|s| *s > rule.severity) {
                self.set_initial_severity(r, key, severity, out);
            }
        } else if per_event && rule.for_ms > 0 && track.streak == 1 {
            let due = track.streak_start + rule.for_ms;
            let tag = track.streak_start;
            push_timer(
                &mut self.wm_timers,
                due,
                Timer::new(r, key, TimerKind::ForDuration, tag),
            );
        }
    }

    fn fire(&mut self, r: u32, key: u32, at: i64, value: Option<f64>, out: &mut Emitted) {
        let runtime = &mut self.rules[r as usize];
        let rule = runtime.rule.clone();
        let id = alert_id(&rule.id, &self.keys.names[key as usize], at);
        let track = runtime.alerts.get_mut(&key).expect("fire needs a track");
        track.active = Some(ActiveAlert {
            id: id.clone(),
            since: at,
            severity: rule.severity,
            next_escalation: 0,
            ack: None,
        });
        self.active_index.insert(id, (r, key));
        if let Some(first) = rule.escalations.first() {
            push_timer(
                &mut self.wm_timers,
                at + first.after_ms,
                Timer::new(r, key, TimerKind::Escalate, at),
            );
        }
        if let Some(after) = rule.resolve_after_ms {
            push_timer(
                &mut self.wm_timers,
                at + after,
                Timer::new(r, key, TimerKind::ResolveAfter, at),
            );
        }
        self.emit(r, key, AlertState::Firing, at, value, out);
        if !self.listeners[r as usize].is_empty() {
            self.corroborate(r, key, at, out);
        }
    }

    /// Joins a firing of rule `r` for `key` with the recent firings of the other side of
    /// each corroboration rule listening to `r`, by time and by the keys' positions.
    fn corroborate(&mut self, r: u32, key: u32, at: i64, out: &mut Emitted) {
        let Some(((lat_t, lat_c), (lon_t, lon_c))) = self.position_columns else {
            return;
        };
        let name = &self.keys.names[key as usize];
        let (Some(lat), Some(lon)) = (
            self.lookups.get(lat_t, lat_c, name),
            self.lookups.get(lon_t, lon_c, name),
        ) else {
            return;
        };
        let place = Location { lat, lon };
        for (c, side) in self.listeners[r as usize].clone() {
            let spec = self.rules[c as usize]
                .rule
                .corroborate
                .clone()
                .expect("listeners are corroboration rules");
            let sightings = self.sightings.entry(c).or_default();
            sightings.retain(|s| s.at >= at - spec.within_ms);
            let partner = sightings
                .iter()
                .filter(|s| s.side != side && (s.at - at).abs() <= spec.within_ms)
                .map(|s| (place.distance_m(&s.place), s.clone()))
                .filter(|(d, _)| *d <= spec.distance_m)
                .min_by(|a, b| a.0.total_cmp(&b.0));
            sightings.push(Sighting {
                side,
                key,
                at,
                place,
            });
            let Some((distance, partner)) = partner else {
                continue;
            };
            // The alert is about the first rule's key; the label names the other side's
            // rule (always `then`) and key.
            let (subject, other) = match side {
                Side::First => (key, partner.key),
                Side::Then => (partner.key, key),
            };
            let other_rule = &spec.then;
            let with = format!("{other_rule}:{}", self.keys.names[other as usize]);
            let runtime = &mut self.rules[c as usize];
            let track = runtime.alerts.entry(subject).or_insert_with(|| AlertTrack {
                streak: 1,
                streak_start: at,
                last_true: at,
                last_values: Box::new([]),
                last_window: (partner.at.min(at), at),
                active: None,
            });
            track.last_true = at;
            if track.active.is_some() {
                continue;
            }
            self.fire(c, subject, at, Some(distance), out);
            if let Some(last) = out.transitions.last_mut() {
                last.labels.insert("corroborated_by".into(), with);
            }
        }
    }

    /// Raises the severity of the transition `fire` just emitted (a value escalation that
    /// already holds when the alert fires), so no separate escalation is sent for it.
    fn set_initial_severity(&mut self, r: u32, key: u32, severity: Severity, out: &mut Emitted) {
        if let Some(active) = self.rules[r as usize]
            .alerts
            .get_mut(&key)
            .and_then(|t| t.active.as_mut())
        {
            active.severity = severity;
            if let Some(last) = out.transitions.last_mut() {
                if last.alert_id == active.id {
                    last.severity = severity;
                }
            }
        }
    }

    fn resolve(&mut self, r: u32, key: u32, at: i64, value: Option<f64>, out: &mut Emitted) {
        self.emit(r, key, AlertState::Resolved, at, value, out);
        if let Some(track) = self.rules[r as usize].alerts.remove(&key) {
            if let Some(active) = track.active {
                self.active_index.remove(&active.id);
            }
        }
    }

    fn emit(
        &mut self,
        r: u32,
        key: u32,
        state: AlertState,
        at: i64,
        value_override: Option<f64>,
        out: &mut Emitted,
    ) {
        let runtime = &self.rules[r as usize];
        let rule = &runtime.rule;
        let Some(track) = runtime.alerts.get(&key) else {
            return;
        };
        let Some(active) = &track.active else {
            return;
        };
        let key_name = &self.keys.names[key as usize];
        let value = value_override.unwrap_or_else(|| {
            rule.value_slot
                .map_or(f64::NAN, |slot| track.last_values[slot])
        });
        let template = match (state, &rule.resolved_message) {
            (AlertState::Resolved, Some(resolved)) => resolved,
            _ => &rule.message,
        };
        let message = template.render(&TemplateVars {
            aggregates: &track.last_values,
            key: key_name,
            rule: &rule.id,
            severity: active.severity,
            value,
            window_start: track.last_window.0,
            window_end: track.last_window.1,
            lookups: &self.lookups,
        });
        self.stats.transitions += 1;
        out.transitions.push(AlertTransition {
            alert_id: active.id.clone(),
            rule: rule.id.clone(),
            key: key_name.to_string(),
            state,
            severity: active.severity,
            at,
            window_start: track.last_window.0,
            window_end: track.last_window.1,
            value,
            message,
            labels: rule.labels.clone(),
        });
    }

    fn on_absence_event(&mut self, r: u32, key: u32, ts: i64, absence_ms: i64, out: &mut Emitted) {
        let clock = self.clock;
        let runtime = &mut self.rules[r as usize];
        let track = runtime.absence.entry(key).or_insert(AbsenceTrack {
            last_seen: clock,
            last_ts: ts,
            scheduled: NONE,
        });
        track.last_seen = clock;
        track.last_ts = track.last_ts.max(ts);
        if track.scheduled == NONE && clock != NONE {
            track.scheduled = clock + absence_ms;
            push_timer(
                &mut self.clock_timers,
                clock + absence_ms,
                Timer::new(r, key, TimerKind::Absence, 0),
            );
        }
        if runtime.alerts.get(&key).is_some_and(|t| t.active.is_some()) {
            // Data is back.
            let track = runtime.alerts.get_mut(&key).expect("checked");
            let silence_s = (ts - track.last_window.0) as f64 / 1000.0;
            track.last_window.1 = ts;
            self.resolve(r, key, ts, Some(silence_s), out);
        }
    }

    fn on_timer(&mut self, at: i64, timer: Timer, out: &mut Emitted) {
        let (r, key, kind, tag) = (timer.rule(), timer.key, timer.kind(), timer.tag);
        if kind == TimerKind::WindowClose {
            self.close_windows(r, key, tag, out);
            return;
        }
        if self.flushing {
            return;
        }
        let rule = self.rules[r as usize].rule.clone();
        match kind {
            TimerKind::WindowClose => unreachable!("handled above"),
            TimerKind::ForDuration => {
                let ready = self.rules[r as usize].alerts.get(&key).is_some_and(|t| {
                    t.active.is_none()
                        && t.streak > 0
                        && t.streak_start == tag
                        && t.streak >= rule.for_windows
                });
                if ready {
                    self.fire(r, key, at, None, out);
                }
            }
            TimerKind::Escalate => {
                let Some(track) = self.rules[r as usize].alerts.get_mut(&key) else {
                    return;
                };
                let Some(active) = track.active.as_mut().filter(|a| a.since == tag) else {
                    return;
                };
                let Some(step) = rule.escalations.get(active.next_escalation) else {
                    return;
                };
                active.next_escalation += 1;
                let next = rule
                    .escalations
                    .get(active.next_escalation)
                    .map(|e| e.after_ms);
                let skip = step.unless_acknowledged && active.ack.is_some();
                if !skip && step.severity > active.severity {
                    active.severity = step.severity;
                    self.emit(r, key, AlertState::Firing, at, None, out);
                }
                if let Some(after) = next {
                    push_timer(
                        &mut self.wm_timers,
                        tag + after,
                        Timer::new(r, key, TimerKind::Escalate, tag),
                    );
                }
            }
            TimerKind::ResolveAfter => {
                let Some(after) = rule.resolve_after_ms else {
                    return;
                };
                let Some(track) = self.rules[r as usize].alerts.get(&key) else {
                    return;
                };
                if track.active.as_ref().is_none_or(|a| a.since != tag) {
                    return;
                }
                let quiet_until = track.last_true + after;
                if quiet_until <= at {
                    self.resolve(r, key, at, None, out);
                } else {
                    push_timer(
                        &mut self.wm_timers,
                        quiet_until,
                        Timer::new(r, key, TimerKind::ResolveAfter, tag),
                    );
                }
            }
            TimerKind::Absence => {
                let Some(absence_ms) = rule.absence_ms else {
                    return;
                };
                let runtime = &mut self.rules[r as usize];
                let Some(track) = runtime.absence.get_mut(&key) else {
                    return;
                };
                let deadline = track.last_seen + absence_ms;
                if deadline > at {
                    track.scheduled = deadline;
                    push_timer(
                        &mut self.clock_timers,
                        deadline,
                        Timer::new(r, key, TimerKind::Absence, 0),
                    );
                    return;
                }
                track.scheduled = NONE;
                let window = (track.last_ts, deadline);
                let silence_s = (at - track.last_seen) as f64 / 1000.0;
                if runtime.alerts.get(&key).is_some_and(|t| t.active.is_some()) {
                    return;
                }
                runtime.alerts.insert(
                    key,
                    AlertTrack {
                        streak: 1,
                        streak_start: track.last_seen,
                        last_true: at,
                        last_values: Box::new([]),
                        last_window: window,
                        active: None,
                    },
                );
                // Absence alerts report the seconds of silence as their value.
                self.fire(r, key, deadline, Some(silence_s), out);
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Time.

    fn after_clock_change(&mut self, out: &mut Emitted) {
        if self.clock != NONE && (self.next_recompute == NONE || self.clock >= self.next_recompute)
        {
            self.recompute_watermark();
            // Until the first event there is nothing to recompute: the first event sets the
            // watermark at once (a tick just before it must not delay that by an interval,
            // or an hour-old straggler right after a start would pass as on time).
            if self.sources.iter().any(Option::is_some) {
                self.next_recompute = self
                    .clock
                    .saturating_add(self.config.watermark_interval_ms.max(1));
            }
        }
        self.fire_due(out);
    }

    fn recompute_watermark(&mut self) {
        let sources = self.sources.iter().flatten().map(|s| (s.channel, s.max_ts));
        let candidate = self.channels.candidate(
            sources,
            self.clock,
            self.config.max_out_of_orderness_ms,
            self.config.idle_timeout_ms,
        );
        if let Some(candidate) = candidate.filter(|c| *c > self.watermark) {
            self.watermark = candidate;
        }
    }

    fn fire_due(&mut self, out: &mut Emitted) {
        loop {
            let wm_due = self
                .wm_timers
                .first_key_value()
                .is_some_and(|(t, _)| *t <= self.watermark);
            let clock_due = !self.flushing
                && self.clock != NONE
                && self
                    .clock_timers
                    .first_key_value()
                    .is_some_and(|(t, _)| *t <= self.clock);
            let (at, timers) = if wm_due {
                self.wm_timers.pop_first().expect("checked")
            } else if clock_due {
                self.clock_timers.pop_first().expect("checked")
            } else {
                break;
            };
            for timer in timers {
                self.on_timer(at, timer, out);
            }
        }
    }
}

/// A rule's runtime state, empty, with its metrics numbered in `metric_ids`.
fn build_runtime(rule: &Arc<Rule>, metric_ids: &mut FxHashMap<Box<str>, u16>) -> RuleRuntime {
    let needs_counter = rule
        .aggregates
        .iter()
        .any(|a| a.metric.is_none() && a.func == AggFn::Count);
    let mut template: Vec<Accumulator> = rule
        .metric_needs_sketch
        .iter()
        .zip(&rule.metric_needs_hourly)
        .map(|(sketch, hourly)| {
            let acc = Accumulator::new(*sketch);
            if *hourly {
                acc.with_hourly()
            } else {
                acc
            }
        })
        .collect();
    let event_counter = needs_counter.then(|| {
        template.push(Accumulator::new(false));
        template.len() - 1
    });
    let mut id_of = |name: &str| -> u16 {
        let next = metric_ids.len() as u16;
        *metric_ids.entry(Box::from(name)).or_insert(next)
    };
    let rule_metric_ids = rule.metrics.iter().map(|m| id_of(m)).collect();
    let filter_metric = rule.metric_filter.as_deref().map(&mut id_of);
    RuleRuntime {
        rule: rule.clone(),
        metric_ids: rule_metric_ids,
        filter_metric,
        acc_template: template.into_boxed_slice(),
        event_counter,
        alerts: FxHashMap::default(),
        absence: FxHashMap::default(),
    }
}

/// Rules by event kind, and the corroboration rules listening to each rule.
#[allow(clippy::type_complexity)]
fn wire(rules: &[Arc<Rule>]) -> (Vec<Vec<u32>>, Vec<Vec<(u32, Side)>>) {
    let mut by_kind = vec![Vec::new(); Kind::ALL.len()];
    let mut listeners = vec![Vec::new(); rules.len()];
    for (i, rule) in rules.iter().enumerate() {
        match &rule.corroborate {
            None => by_kind[rule.kind.index()].push(i as u32),
            Some(corroborate) => {
                for (name, side) in [
                    (&corroborate.first, Side::First),
                    (&corroborate.then, Side::Then),
                ] {
                    if let Some(r) = rules.iter().position(|x| &x.id == name) {
                        listeners[r].push((i as u32, side));
                    }
                }
            }
        }
    }
    (by_kind, listeners)
}

fn push_timer(timers: &mut BTreeMap<i64, Vec<Timer>>, at: i64, timer: Timer) {
    timers.entry(at).or_default().push(timer);
}

/// Identity of an event for duplicate detection: same source (implied), kind, time,
/// camera detection and metric names.
fn event_fingerprint(event: &Event) -> u64 {
    let mut h = FxHasher::default();
    event.ts.hash(&mut h);
    event.kind.hash(&mut h);
    event.camera_event.hash(&mut h);
    for (name, _) in &event.values {
        name.hash(&mut h);
    }
    h.finish() | 1
}

#[inline]
fn add_event(runtime: &RuleRuntime, event_values: &[f64], accs: &mut [Accumulator], ts: i64) {
    for (i, id) in runtime.metric_ids.iter().enumerate() {
        let v = event_values[*id as usize];
        if !v.is_nan() {
            accs[i].add(ts, v);
        }
    }
    if let Some(c) = runtime.event_counter {
        accs[c].add(ts, 1.0);
    }
}

fn window_values(
    rule: &Rule,
    event_counter: Option<usize>,
    accs: &[Accumulator],
    values: &mut Vec<f64>,
) {
    values.clear();
    values.extend(rule.aggregates.iter().map(|a| match a.metric {
        Some(m) => accs[m].value(a.func),
        None => accs[event_counter.expect("count() has a counter")].value(AggFn::Count),
    }));
}

fn single_event_values(runtime: &RuleRuntime, event_values: &[f64], values: &mut Vec<f64>) {
    values.clear();
    values.extend(runtime.rule.aggregates.iter().map(|a| {
        let v = match a.metric {
            None => return 1.0,
            Some(m) => Some(event_values[runtime.metric_ids[m] as usize]).filter(|v| !v.is_nan()),
        };
        match (a.func, v) {
            (AggFn::Count, v) => f64::from(u8::from(v.is_some())),
            (AggFn::Sum, None) => 0.0,
            (_, None) => f64::NAN,
            (AggFn::Stddev | AggFn::Slope, Some(_)) => 0.0,
            (AggFn::NowCast, Some(_)) => f64::NAN,
            (AggFn::HourMean, Some(v)) => v,
            (_, Some(v)) => v,
        }
    }));
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "operator_tests.rs"]
mod operator_tests;

#[cfg(test)]
#[path = "corroboration_tests.rs"]
mod corroboration_tests;

#[cfg(test)]
#[path = "absence_tests.rs"]
mod absence_tests;

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod lifecycle_tests;

#[cfg(test)]
#[path = "lateness_tests.rs"]
mod lateness_tests;
