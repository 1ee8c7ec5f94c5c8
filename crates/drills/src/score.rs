//! The after-action report: each expected outcome timed from what was observed (inject →
//! alert, alert → acknowledgement, step started → completed), met, late or missed; each
//! objective rated from its outcomes; and what was not expected (alerts no outcome
//! expected, breached steps, missed outcomes). Pure: the host gathers what happened.
//!
//! Invariants: times are event times in milliseconds and reported to the millisecond (and
//! in seconds); an outcome counts 1 when met, ½ when late, 0 when missed; an objective is
//! *performed* at 1, *performed with some challenges* from ¾, *with major challenges* from
//! ¼, else *not performed*; an alert outcome matches the first alert of its rule and key
//! fired at or after its inject.

use serde::{Deserialize, Serialize};

use crate::spec::{Drill, Expect};

/// An alert of the drill, as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenAlert {
    /// Alert id.
    pub alert_id: String,
    /// Rule.
    pub rule: String,
    /// Key.
    pub key: String,
    /// Fired, event time.
    pub fired_at: i64,
    /// Acknowledged.
    pub acked_at: Option<i64>,
}

/// A playbook step on a drill alert's run, as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenStep {
    /// The run's alert.
    pub alert_id: String,
    /// Playbook.
    pub playbook: String,
    /// Step.
    pub step: String,
    /// Started.
    pub started_at: i64,
    /// Completed.
    pub completed_at: Option<i64>,
    /// Breached.
    pub breached_at: Option<i64>,
}

/// What happened during the drill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Event time each inject started at.
    pub injects: std::collections::BTreeMap<String, i64>,
    /// The drill's alerts.
    pub alerts: Vec<SeenAlert>,
    /// The steps of the drill's runs.
    pub steps: Vec<SeenStep>,
}

/// Met, late or missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the limit.
    Met,
    /// Happened, over the limit.
    Late,
    /// Did not happen.
    Missed,
}

/// One outcome, timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeResult {
    /// The outcome.
    pub id: String,
    /// `alert`, `ack` or `step`.
    pub kind: String,
    /// What the time is measured from (event time).
    pub from: Option<i64>,
    /// When it happened.
    pub at: Option<i64>,
    /// `at − from`, ms.
    pub took_ms: Option<i64>,
    /// The limit, ms.
    pub within_ms: i64,
    /// Met, late or missed.
    pub verdict: Verdict,
    /// The alert it matched (alert outcomes), or is about.
    pub alert_id: Option<String>,
}

/// An objective's rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// Every outcome met.
    Performed,
    /// Mostly met.
    SomeChallenges,
    /// Partly met.
    MajorChallenges,
    /// Little or nothing met.
    NotPerformed,
}

/// An objective, rated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveResult {
    /// The objective.
    pub id: String,
    /// Its rating.
    pub rating: Rating,
    /// Its score, 0–1.
    pub score: f64,
}

/// The after-action report's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// Per expected outcome.
    pub outcomes: Vec<OutcomeResult>,
    /// Per objective.
    pub objectives: Vec<ObjectiveResult>,
    /// Alerts no outcome expected.
    pub unexpected_alerts: Vec<SeenAlert>,
    /// Steps that passed their due time.
    pub breached_steps: Vec<SeenStep>,
    /// Outcomes that did not happen.
    pub missed: Vec<String>,
}

fn result(
    id: &str,
    kind: &str,
    from: Option<i64>,
    at: Option<i64>,
    within_ms: i64,
    alert_id: Option<String>,
) -> OutcomeResult {
    let took_ms = from.zip(at).map(|(f, a)| a - f);
    let verdict = match took_ms {
        Some(t) if t <= within_ms => Verdict::Met,
        Some(_) => Verdict::Late,
        None => Verdict::Missed,
    };
    OutcomeResult {
        id: id.into(),
        kind: kind.into(),
        from,
        at,
        took_ms,
        within_ms,
        verdict,
        alert_id,
    }
}

/// Scores what was observed against the drill's expectations.
pub fn score(drill: &Drill, seen: &Observed) -> Findings {
    let mut outcomes: Vec<OutcomeResult> = Vec::new();
    for o in &drill.outcomes {
        let r = match &o.expect {
            Expect::Alert { rule, key, after } => {
                let from = seen.injects.get(after).copied();
                let alert = from.and_then(|f| {
                    seen.alerts
                        .iter()
                        .filter(|a| &a.rule == rule && &a.key == key && a.fired_at >= f)
                        .min_by_key(|a| a.fired_at)
                });
                result(
                    &o.id,
                    "alert",
                    from,
                    alert.map(|a| a.fired_at),
                    o.within_ms,
                    alert.map(|a| a.alert_id.clone()),
                )
            }
            Expect::Ack { of } => {
                let alert_id = outcomes
                    .iter()
                    .find(|r| &r.id == of)
                    .and_then(|r| r.alert_id.clone());
                let alert = alert_id
                    .as_ref()
                    .and_then(|id| seen.alerts.iter().find(|a| &a.alert_id == id));
                result(
                    &o.id,
                    "ack",
                    alert.map(|a| a.fired_at),
                    alert.and_then(|a| a.acked_at),
                    o.within_ms,
                    alert_id,
                )
            }
            Expect::Step { playbook, step, of } => {
                let alert_id = outcomes
                    .iter()
                    .find(|r| &r.id == of)
                    .and_then(|r| r.alert_id.clone());
                let st = alert_id.as_ref().and_then(|id| {
                    seen.steps
                        .iter()
                        .find(|s| &s.alert_id == id && &s.playbook == playbook && &s.step == step)
                });
                result(
                    &o.id,
                    "step",
                    st.map(|s| s.started_at),
                    st.and_then(|s| s.completed_at),
                    o.within_ms,
                    alert_id,
                )
            }
        };
        outcomes.push(r);
    }
    let objectives = drill
        .objectives
        .iter()
        .map(|obj| {
            let points: Vec<f64> = obj
                .outcomes
                .iter()
                .filter_map(|id| outcomes.iter().find(|r| &r.id == id))
                .map(|r| match r.verdict {
                    Verdict::Met => 1.0,
                    Verdict::Late => 0.5,
                    Verdict::Missed => 0.0,
                })
                .collect();
            let score = if points.is_empty() {
                0.0
            } else {
                points.iter().sum::<f64>() / points.len() as f64
            };
            let rating = if score >= 1.0 {
                Rating::Performed
            } else if score >= 0.75 {
                Rating::SomeChallenges
            } else if score >= 0.25 {
                Rating::MajorChallenges
            } else {
                Rating::NotPerformed
            };
            ObjectiveResult {
                id: obj.id.clone(),
                rating,
                score,
            }
        })
        .collect();
    let matched: Vec<&String> = outcomes
        .iter()
        .filter(|r| r.kind == "alert")
        .filter_map(|r| r.alert_id.as_ref())
        .collect();
    Findings {
        unexpected_alerts: seen
            .alerts
            .iter()
            .filter(|a| !matched.contains(&&a.alert_id))
            .cloned()
            .collect(),
        breached_steps: seen
            .steps
            .iter()
            .filter(|s| s.breached_at.is_some())
            .cloned()
            .collect(),
        missed: outcomes
            .iter()
            .filter(|r| r.verdict == Verdict::Missed)
            .map(|r| r.id.clone())
            .collect(),
        outcomes,
        objectives,
    }
}
