//! Alert transitions: what the engine emits and every output, screen and integrator consumes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::time::{format_rfc3339, EpochMillis};

/// How bad an alert is, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record; no action expected.
    Info,
    /// Look at it this shift.
    Minor,
    /// Act now.
    Major,
    /// Act now, escalate to the duty leader.
    Critical,
}

impl Severity {
    /// Parses `info`, `minor`, `major` or `critical`.
    pub fn parse(name: &str) -> Option<Severity> {
        match name {
            "info" => Some(Severity::Info),
            "minor" => Some(Severity::Minor),
            "major" => Some(Severity::Major),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// The severity's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds (a severity change keeps the state `firing`).
    Firing,
    /// The condition has cleared, the data returned, or an operator resolved it.
    Resolved,
}

/// One change in an alert's life: it fired, changed severity, or resolved.
///
/// Serialises as the replay/output line
/// `{"alert_id","rule","key","state","severity","at","window_start","window_end","value","message","labels"}`
/// with times in RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// Stable id of the alert instance: the same input always yields the same id.
    pub alert_id: String,
    /// Rule id.
    pub rule: String,
    /// Grouping key (a station, a zone…).
    pub key: String,
    /// The state after this transition.
    pub state: AlertState,
    /// The severity after this transition.
    pub severity: Severity,
    /// Event time of the transition.
    pub at: EpochMillis,
    /// Start of the window whose result decided.
    pub window_start: EpochMillis,
    /// End (exclusive) of the window whose result decided.
    pub window_end: EpochMillis,
    /// The aggregate that decided.
    pub value: f64,
    /// The rule's message, filled in.
    pub message: String,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
}

/// The label naming the exercise (drill) an alert belongs to; exercise alerts also carry
/// [`MODE_LABEL`] = [`EXERCISE_MODE`]. Real alerts have neither.
pub const EXERCISE_LABEL: &str = "exercise";
/// The label saying whether an alert is real or an exercise's.
pub const MODE_LABEL: &str = "mode";
/// [`MODE_LABEL`]'s value on exercise alerts.
pub const EXERCISE_MODE: &str = "exercise";
/// Separates an exercise's id from the engine's id in an exercise alert's id
/// (`<exercise>~<id>`), so exercise alerts never share an id with real ones.
pub const EXERCISE_ID_SEPARATOR: char = '~';

/// The exercise an alert id belongs to, if it is an exercise alert's.
pub fn exercise_of_alert(alert_id: &str) -> Option<&str> {
    alert_id
        .split_once(EXERCISE_ID_SEPARATOR)
        .map(|(exercise, _)| exercise)
}

/// Is `id` a well-formed exercise id: 1–64 of `a-z`, `0-9`, `_`, `-`?
pub fn valid_exercise_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl AlertTransition {
    /// The exercise this transition belongs to (from its labels), if any.
    pub fn exercise(&self) -> Option<&str> {
        self.labels.get(EXERCISE_LABEL).map(String::as_str)
    }
}

#[derive(Serialize)]
struct TransitionRecord<'a> {
    alert_id: &'a str,
    rule: &'a str,
    key: &'a str,
    state: AlertState,
    severity: Severity,
    at: String,
    window_start: String,
    window_end: String,
    value: Option<f64>,
    message: &'a str,
    labels: &'a BTreeMap<String, String>,
}

impl Serialize for AlertTransition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TransitionRecord {
            alert_id: &self.alert_id,
            rule: &self.rule,
            key: &self.key,
            state: self.state,
            severity: self.severity,
            at: format_rfc3339(self.at),
            window_start: format_rfc3339(self.window_start),
            window_end: format_rfc3339(self.window_end),
            value: self.value.is_finite().then_some(self.value),
            message: &self.message,
            labels: &self.labels,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_the_documented_field_order() {
        let t = AlertTransition {
            alert_id: "a1".into(),
            rule: "r".into(),
            key: "k".into(),
            state: AlertState::Firing,
            severity: Severity::Major,
            at: 1_795_000_000_000,
            window_start: 1_794_999_940_000,
            window_end: 1_795_000_000_000,
            value: 12.5,
            message: "m".into(),
            labels: BTreeMap::from([("pack".to_string(), "air".to_string())]),
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"alert_id":"a1","rule":"r","key":"k","state":"firing","severity":"major","at":"2026-11-18T11:06:40.000Z","window_start":"2026-11-18T11:05:40.000Z","window_end":"2026-11-18T11:06:40.000Z","value":12.5,"message":"m","labels":{"pack":"air"}}"#
        );
        assert!(Severity::Critical > Severity::Major);
    }
}
