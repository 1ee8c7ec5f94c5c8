//! The hub and the incident store: alert records to and from store rows, the hub's state
//! rebuilt from the store at start, and the reconciliation with the engine once it has
//! restored its checkpoint (an alert open in the store but not in the engine was resolved
//! while the centre was down; one open in the engine but unknown to the store is added).
//!
//! Invariant: the store hears of every change the hub makes, in the hub's order (engine
//! transitions are queued under the alerts lock; operator actions are committed before
//! the hub applies them).

use std::collections::BTreeSet;

use watchfloor_engine::ActiveAlertView;
use watchfloor_model::{AlertState, AlertTransition, Kind};
use watchfloor_store::{AlertRow, Change, Entry};

use crate::hub::{AckInfo, AlertRecord, HistoryEntry, Hub};

/// A record's state name as a `'static` string.
fn state_name(state: &str) -> &'static str {
    match state {
        "acknowledged" => "acknowledged",
        "resolved" => "resolved",
        _ => "firing",
    }
}

/// The store's row of a record.
pub(crate) fn row_of(a: &AlertRecord) -> AlertRow {
    AlertRow {
        alert_id: a.alert_id.clone(),
        rule: a.rule.clone(),
        key: a.key.clone(),
        state: a.state.to_string(),
        severity: a.severity,
        fired_at: a.fired_at,
        updated_at: a.updated_at,
        resolved_at: a.resolved_at,
        value: a.value,
        message: a.message.clone(),
        labels: a.labels.clone(),
        ward: a.ward.clone(),
        district: a.district.clone(),
        sectors: a.sectors.clone(),
        kind: a.kind.map(|k| k.as_str().to_string()),
        location: a.location,
        ack: a
            .acknowledged
            .as_ref()
            .map(|k| (k.by.clone(), k.at, k.note.clone())),
        assignee: a.assignee.clone(),
    }
}

/// A record rebuilt from the store.
pub(crate) fn record_of(row: AlertRow, timeline: Vec<Entry>) -> AlertRecord {
    AlertRecord {
        alert_id: row.alert_id,
        rule: row.rule,
        key: row.key,
        state: state_name(&row.state),
        severity: row.severity,
        fired_at: row.fired_at,
        updated_at: row.updated_at,
        resolved_at: row.resolved_at,
        value: row.value,
        message: row.message,
        labels: row.labels,
        ward: row.ward,
        district: row.district,
        sectors: row.sectors,
        kind: row.kind.as_deref().and_then(Kind::parse),
        location: row.location,
        acknowledged: row.ack.map(|(by, at, note)| AckInfo { by, at, note }),
        assignee: row.assignee,
        history: timeline
            .into_iter()
            .map(|e| HistoryEntry {
                at: e.at,
                event: e.event,
                by: e.by,
                detail: e.detail,
            })
            .collect(),
    }
}

/// The store change for an engine transition applied to `record`.
pub(crate) fn transition_change(
    record: &AlertRecord,
    t: &AlertTransition,
    entry: &HistoryEntry,
    reopen: bool,
) -> Change {
    let kind = if reopen {
        "reopen".to_string()
    } else {
        format!("{:?}", t.state)
    };
    Change::Transition {
        row: Box::new(row_of(record)),
        entry: Entry {
            at: entry.at,
            event: entry.event.clone(),
            by: None,
            detail: entry.detail.clone(),
        },
        dedup: format!("{}|{kind}|{}|{}", t.alert_id, t.severity.as_str(), t.at),
        reopen,
    }
}

/// An alert and its timeline as stored, if stored.
pub(crate) async fn stored_record(
    store: &watchfloor_store::Store,
    id: &str,
) -> Result<Option<AlertRecord>, watchfloor_store::StoreError> {
    let Some(row) = store.alert(id).await? else {
        return Ok(None);
    };
    let timeline = store.timeline(id).await?;
    Ok(Some(record_of(row, timeline)))
}

impl Hub {
    /// (jobs handed to the store writer, jobs it finished): see
    /// [`watchfloor_pipeline::PipelineObserver::durability`].
    pub(crate) fn store_durability(&self) -> (u64, u64) {
        self.store().map_or((0, 0), |w| {
            let h = w.health();
            (
                h.queued_jobs.load(std::sync::atomic::Ordering::SeqCst),
                h.durable_jobs(),
            )
        })
    }

    /// Loads the open alerts and the most recently resolved ones (as many as the hub keeps)
    /// from the store into the hub, at start, before the pipeline runs: a transition the
    /// engine replays from its log then finds its alert with the whole timeline. Returns
    /// how many are open.
    pub async fn restore_from_store(&self) -> Result<usize, watchfloor_store::StoreError> {
        let Some(writer) = self.store() else {
            return Ok(0);
        };
        let set = writer
            .store()
            .working_set(crate::hub::RESOLVED_KEPT)
            .await?;
        let open = set
            .iter()
            .filter(|(row, _)| row.state != "resolved")
            .count();
        self.insert_records(
            set.into_iter()
                .map(|(row, timeline)| record_of(row, timeline)),
        );
        Ok(open)
    }

    /// Makes the hub (and the store) agree with the engine's firing alerts, once the
    /// engine has restored its state: open records the engine no longer has are resolved
    /// ("while the centre was stopped"); firing alerts the hub does not know are added.
    /// Returns (resolved, added).
    pub fn reconcile(&self, active: &[ActiveAlertView], now: i64) -> (usize, usize) {
        let firing: BTreeSet<&str> = active.iter().map(|a| a.alert_id.as_str()).collect();
        let mut resolved = 0;
        for record in self.alerts() {
            if record.state != "resolved" && !firing.contains(record.alert_id.as_str()) {
                let t = AlertTransition {
                    alert_id: record.alert_id.clone(),
                    rule: record.rule.clone(),
                    key: record.key.clone(),
                    state: AlertState::Resolved,
                    severity: record.severity,
                    at: now.max(record.updated_at),
                    window_start: now,
                    window_end: now,
                    value: f64::NAN,
                    message: "no longer firing in the engine after the restart".into(),
                    labels: record.labels.clone(),
                };
                tracing::info!(alert = %record.alert_id, rule = %record.rule, key = %record.key, "open in the store, no longer firing in the engine: resolved");
                self.apply_transition_as(&t, Some(crate::hub::RESOLVED_AT_RESTART));
                resolved += 1;
            }
        }
        let known: BTreeSet<String> = self.alerts().into_iter().map(|a| a.alert_id).collect();
        let mut added = 0;
        for a in active.iter().filter(|a| !known.contains(&a.alert_id)) {
            let t = AlertTransition {
                alert_id: a.alert_id.clone(),
                rule: a.rule.clone(),
                key: a.key.clone(),
                state: AlertState::Firing,
                severity: a.severity,
                at: a.since,
                window_start: a.since,
                window_end: a.since,
                value: f64::NAN,
                message: format!("{} (open in the engine at restart)", a.rule),
                labels: exercise_labels(&a.alert_id),
            };
            tracing::info!(alert = %a.alert_id, rule = %a.rule, key = %a.key, "firing in the engine, unknown to the store: added");
            self.apply_transition(&t);
            added += 1;
        }
        (resolved, added)
    }
}

/// The labels that mark an exercise alert, from its id (none for a real alert).
fn exercise_labels(alert_id: &str) -> std::collections::BTreeMap<String, String> {
    watchfloor_model::exercise_of_alert(alert_id)
        .map(|exercise| {
            [
                (
                    watchfloor_model::EXERCISE_LABEL.to_string(),
                    exercise.to_string(),
                ),
                (
                    watchfloor_model::MODE_LABEL.to_string(),
                    watchfloor_model::EXERCISE_MODE.to_string(),
                ),
            ]
            .into()
        })
        .unwrap_or_default()
}
