//! Playbook runs in the live centre: the book of runs (`watchfloor-playbooks`) on its own
//! task, fed the hub's alert transitions, ticked at its next due time on the wall clock,
//! every change stored in the incident store before it is shown, answered or carried out,
//! and the runs on the `runs` WebSocket channel and the REST API.
//!
//! - `service.rs`: the task (transitions, timers, requests), the commit of each change.
//! - `persist.rs`: runs, timelines, pinned versions and the outbox as store rows; restore.
//! - `effects.rs`: carrying out what runs ask (MQTT and webhook messages, raised severity).
//! - `api.rs`: `/api/playbooks`, `/api/runs…`.
//! - `report.rs`: the playbooks part of the daily report.
//!
//! Invariants: a change is visible (API answer, WebSocket delta) only once stored; an
//! effect is recorded in the outbox with the change that asked for it and carried out
//! afterwards, again after a crash until marked done (same id: receivers deduplicate);
//! timers are the runs' stored due times, so a restart fires them on time; transitions
//! reach the service through a bounded queue (a full queue is counted, never waited on by
//! the engine's task).

mod api;
mod effects;
mod persist;
pub(crate) mod report;
mod service;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use watchfloor_model::{AlertState, AlertTransition, Severity};
use watchfloor_playbooks::Subject;

pub(crate) use api::routes;
pub use effects::{Channels, Notifier};
pub use service::{spawn, PlaybookConfig};

use crate::hub::{AlertRecord, Hub};

/// Transitions waiting for the playbook task at most.
const QUEUE: usize = 100_000;

/// A run as screens see it, with what its scope is decided by.
#[derive(Debug, Clone)]
pub(crate) struct RunView {
    pub ward: Option<String>,
    pub sectors: Vec<String>,
    pub alert_id: Option<String>,
    pub finished: bool,
    pub data: Value,
}

/// Counters for `/metrics`, per playbook and step.
#[derive(Debug, Default)]
pub(crate) struct StepCounts {
    pub started: u64,
    pub completed: u64,
    pub breached: u64,
    /// Time to complete, seconds: counts per bucket of [`SECONDS_BUCKETS`], and the sum.
    pub buckets: [u64; 8],
    pub seconds_sum: f64,
}

/// Buckets of the time-to-complete histogram, seconds.
pub(crate) const SECONDS_BUCKETS: [f64; 8] = [
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    14_400.0,
    86_400.0,
    f64::INFINITY,
];

/// What the hub and the API share with the playbook task.
pub struct Link {
    transitions: mpsc::Sender<Subject>,
    requests: mpsc::Sender<service::Request>,
    pub(crate) views: Mutex<BTreeMap<String, RunView>>,
    /// The playbooks new runs start with, as `/api/playbooks` lists them.
    pub(crate) playbooks: Mutex<Vec<Value>>,
    pub(crate) counts: Mutex<BTreeMap<(String, String), StepCounts>>,
    dropped: AtomicU64,
    pub(crate) outbox_failed: AtomicU64,
}

impl Link {
    /// Transitions the queue had no room for.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Hub {
    /// Connects the playbook task (once).
    pub fn attach_playbooks(&self, link: std::sync::Arc<Link>) {
        let _ = self.playbooks.set(link);
    }

    /// Hands a transition to the playbook task, never waiting.
    pub(crate) fn offer_to_playbooks(&self, record: &AlertRecord, t: &AlertTransition) {
        let Some(link) = self.playbooks.get() else {
            return;
        };
        let fired_severity = record
            .history
            .first()
            .and_then(|h| h.detail.split(':').next())
            .and_then(Severity::parse)
            .unwrap_or(t.severity);
        let zone_name = record.ward.as_ref().and_then(|w| {
            self.city()
                .and_then(|c| c.zones.get(w).map(|z| z.name.clone()))
        });
        let subject = Subject {
            alert_id: Some(t.alert_id.clone()),
            rule: t.rule.clone(),
            key: t.key.clone(),
            zone: record.ward.clone(),
            zone_name,
            sectors: record.sectors.clone(),
            severity: t.severity,
            fired_severity,
            state: if record.state == "resolved" {
                AlertState::Resolved
            } else {
                AlertState::Firing
            },
            value: record.value,
            message: t.message.clone(),
            labels: record.labels.clone(),
            exercise: record.labels.get("exercise").cloned(),
        };
        if link.transitions.try_send(subject).is_err() {
            link.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The runs' views in scope of `sees`, newest first (the `runs` snapshot).
    pub(crate) fn run_views(&self) -> Vec<RunView> {
        let Some(link) = self.playbooks.get() else {
            return Vec::new();
        };
        let mut views: Vec<RunView> = link
            .views
            .lock()
            .expect("views lock")
            .values()
            .cloned()
            .collect();
        views.sort_by_key(|v| std::cmp::Reverse(v.data["started_at"].as_i64().unwrap_or(0)));
        views
    }

    /// The playbook metrics, Prometheus text.
    pub(crate) fn playbook_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let Some(link) = self.playbooks.get() else {
            return;
        };
        let _ = writeln!(out, "# TYPE watchfloor_playbook_transitions_dropped_total counter\nwatchfloor_playbook_transitions_dropped_total {}", link.dropped());
        let _ = writeln!(out, "# TYPE watchfloor_playbook_outbox_failed_total counter\nwatchfloor_playbook_outbox_failed_total {}", link.outbox_failed.load(Ordering::Relaxed));
        let counts = link.counts.lock().expect("counts lock");
        let _ = writeln!(
            out,
            "# TYPE watchfloor_playbook_steps_started_total counter"
        );
        for ((pb, step), c) in counts.iter() {
            let _ = writeln!(
                out,
                "watchfloor_playbook_steps_started_total{{playbook=\"{pb}\",step=\"{step}\"}} {}",
                c.started
            );
        }
        let _ = writeln!(
            out,
            "# TYPE watchfloor_playbook_steps_completed_total counter"
        );
        for ((pb, step), c) in counts.iter() {
            let _ = writeln!(
                out,
                "watchfloor_playbook_steps_completed_total{{playbook=\"{pb}\",step=\"{step}\"}} {}",
                c.completed
            );
        }
        let _ = writeln!(
            out,
            "# TYPE watchfloor_playbook_steps_breached_total counter"
        );
        for ((pb, step), c) in counts.iter() {
            let _ = writeln!(
                out,
                "watchfloor_playbook_steps_breached_total{{playbook=\"{pb}\",step=\"{step}\"}} {}",
                c.breached
            );
        }
        let _ = writeln!(out, "# TYPE watchfloor_playbook_step_seconds histogram");
        for ((pb, step), c) in counts.iter() {
            let mut cumulative = 0;
            for (i, le) in SECONDS_BUCKETS.iter().enumerate() {
                cumulative += c.buckets[i];
                let le = if le.is_infinite() {
                    "+Inf".to_string()
                } else {
                    format!("{le}")
                };
                let _ = writeln!(out, "watchfloor_playbook_step_seconds_bucket{{playbook=\"{pb}\",step=\"{step}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "watchfloor_playbook_step_seconds_sum{{playbook=\"{pb}\",step=\"{step}\"}} {}",
                c.seconds_sum
            );
            let _ = writeln!(out, "watchfloor_playbook_step_seconds_count{{playbook=\"{pb}\",step=\"{step}\"}} {cumulative}");
        }
    }
}
