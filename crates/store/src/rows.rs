//! What the store holds, as plain values: an alert's latest state ([`AlertRow`]), one line
//! of its timeline ([`Entry`]), a change pairing the two ([`Change`]), an audit line.

use std::collections::BTreeMap;

use serde::Serialize;
use watchfloor_model::Severity;

/// An alert as operators see it: the engine's latest transition plus what people did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Stable alert id.
    pub alert_id: String,
    /// Rule id.
    pub rule: String,
    /// Key (station or zone).
    pub key: String,
    /// `firing`, `acknowledged` or `resolved`.
    pub state: String,
    /// Current severity.
    pub severity: Severity,
    /// When it fired (event time, epoch ms).
    pub fired_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// The deciding value.
    pub value: Option<f64>,
    /// The rule's message.
    pub message: String,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
    /// Ward of the key.
    pub ward: Option<String>,
    /// District of the key (legacy tier).
    pub district: Option<String>,
    /// The sectors (departments) it belongs to.
    pub sectors: Vec<String>,
    /// Kind of the station the alert is about.
    pub kind: Option<String>,
    /// Position (lat, lon) of the station the alert is about.
    pub location: Option<[f64; 2]>,
    /// Who acknowledged, when, with what note.
    pub ack: Option<(String, i64, Option<String>)>,
    /// Who it is assigned to.
    pub assignee: Option<String>,
}

/// One line of an alert's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Epoch ms.
    pub at: i64,
    /// fired, escalated, resolved, acknowledged, commented, assigned, resolved by hand…
    pub event: String,
    /// Who (operators' actions).
    pub by: Option<String>,
    /// Details: severity and message, note, comment, assignee.
    pub detail: String,
}

/// Something that happened to an alert: its timeline line plus what it changes. Engine
/// transitions carry the whole row (they may be the first the store hears of an alert);
/// operator actions change only their own columns, so the order in which a transition and
/// an action reach the database never loses either.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The engine fired, escalated or resolved the alert.
    Transition {
        /// The alert after the transition (operator columns are not written from it).
        row: Box<AlertRow>,
        /// The timeline line.
        entry: Entry,
        /// A key that makes a transition replayed after a restart a no-op on the timeline.
        dedup: String,
        /// The alert was resolved at a restart and fires again: open it again.
        reopen: bool,
    },
    /// An operator acted on the alert.
    Action {
        /// The alert.
        alert_id: String,
        /// What it changes.
        action: Action,
        /// The timeline line (who, when, note).
        entry: Entry,
        /// The alert as the caller sees it, stored first if the store does not have it yet
        /// (its firing is still queued behind an alert storm).
        row: Option<Box<AlertRow>>,
    },
}

/// What an operator action changes on the alert's row.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Acknowledged: sets who, when and the note; an open alert becomes `acknowledged`.
    Acknowledge {
        /// Account.
        by: String,
        /// Epoch ms.
        at: i64,
        /// Free note.
        note: Option<String>,
    },
    /// Assigned to someone.
    Assign {
        /// Assignee.
        to: String,
    },
    /// Resolved by hand (the engine's own transition follows).
    Resolve {
        /// Epoch ms.
        at: i64,
    },
    /// A comment: a timeline line only.
    Comment,
}

impl Change {
    /// The alert this change is about.
    pub fn alert_id(&self) -> &str {
        match self {
            Change::Transition { row, .. } => &row.alert_id,
            Change::Action { alert_id, .. } => alert_id,
        }
    }

    /// Its timeline line.
    pub fn entry(&self) -> &Entry {
        match self {
            Change::Transition { entry, .. } | Change::Action { entry, .. } => entry,
        }
    }
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// Epoch ms.
    pub at: i64,
    /// Account name.
    pub by: String,
    /// What was done (`acknowledge`, `reload`…).
    pub action: String,
    /// On what.
    pub target: String,
    /// Details, JSON.
    pub detail: serde_json::Value,
}

/// The numeric order of a severity, for range filters in SQL.
pub(crate) fn rank(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Minor => 1,
        Severity::Major => 2,
        Severity::Critical => 3,
    }
}

/// Builds an [`AlertRow`] from a result row of `SELECT * FROM alerts` (either backend).
/// The `sectors` column of a row: ids with a space on each side, so that
/// `LIKE '% id %'` matches one.
pub(crate) fn sectors_column(sectors: &[String]) -> String {
    if sectors.is_empty() {
        String::new()
    } else {
        format!(" {} ", sectors.join(" "))
    }
}

macro_rules! alert_from_row {
    ($r:expr) => {{
        use sqlx::Row as _;
        let r = $r;
        let severity: String = r.try_get("severity")?;
        let labels: String = r.try_get("labels")?;
        let lat: Option<f64> = r.try_get("lat")?;
        let lon: Option<f64> = r.try_get("lon")?;
        let ack_by: Option<String> = r.try_get("ack_by")?;
        let ack_at: Option<i64> = r.try_get("ack_at")?;
        $crate::rows::AlertRow {
            alert_id: r.try_get("alert_id")?,
            rule: r.try_get("rule")?,
            key: r.try_get("key")?,
            state: r.try_get("state")?,
            severity: watchfloor_model::Severity::parse(&severity).ok_or_else(|| {
                $crate::StoreError::Fatal(format!("unknown severity `{severity}` in the store"))
            })?,
            fired_at: r.try_get("fired_at")?,
            updated_at: r.try_get("updated_at")?,
            resolved_at: r.try_get("resolved_at")?,
            value: r.try_get("value")?,
            message: r.try_get("message")?,
            labels: serde_json::from_str(&labels)
                .map_err(|e| $crate::StoreError::Fatal(format!("labels: {e}")))?,
            ward: r.try_get("ward")?,
            district: r.try_get("district")?,
            sectors: {
                let column: String = r.try_get("sectors")?;
                column.split_whitespace().map(str::to_string).collect()
            },
            kind: r.try_get("kind")?,
            location: lat.zip(lon).map(|(a, b)| [a, b]),
            ack: ack_by
                .zip(ack_at)
                .map(|(by, at)| (by, at, r.try_get("ack_note").ok().flatten())),
            assignee: r.try_get("assignee")?,
        }
    }};
}
pub(crate) use alert_from_row;
