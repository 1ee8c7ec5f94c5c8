//! What people do to a run's steps: complete (with the evidence the step asks for), choose
//! a decision's branch, approve or refuse, reassign, comment — and who may.
//!
//! Invariants: only an active step is acted on; a refused action changes nothing and says
//! why ([`ActError`]); viewers and integrators never act; an operator acts only on steps
//! for operators of the run's commune (or of the city, when the operator is city-wide); a
//! step reassigned to a named account is that account's (and the admins'); admins of the
//! whole city act on every step.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::run::{Out, Run, Status};
use crate::spec::{Evidence, Playbook, Reach, Role, StepKind};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The account's name.
    pub name: String,
    /// Its role: `admin`, `operator`, `viewer`, `integrator`.
    pub role: String,
    /// Its communes (none: the whole city).
    pub communes: Option<Vec<String>>,
}

/// An action on a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// A task done, with its evidence.
    Complete {
        /// A number, a choice or an attachment reference.
        #[serde(default)]
        value: Option<serde_json::Value>,
        /// A note.
        #[serde(default)]
        note: Option<String>,
    },
    /// A decision's branch.
    Choose {
        /// The branch id.
        branch: String,
        /// Why.
        #[serde(default)]
        note: Option<String>,
    },
    /// An approval given.
    Approve {
        /// A note.
        #[serde(default)]
        note: Option<String>,
    },
    /// An approval refused.
    Reject {
        /// Why.
        #[serde(default)]
        note: Option<String>,
    },
    /// Given to a named account.
    Reassign {
        /// The account's name.
        to: String,
        /// Why.
        #[serde(default)]
        note: Option<String>,
    },
    /// A remark on the step.
    Comment {
        /// The remark.
        note: String,
    },
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActError {
    /// No such run.
    #[error("no such run")]
    NoRun,
    /// No such step in the run's playbook.
    #[error("no step `{0}` in this playbook")]
    NoStep(String),
    /// The step is not started, or already done.
    #[error("step `{0}` is not active")]
    NotActive(String),
    /// The action does not fit the step's kind.
    #[error("step `{step}` is a {kind}: {hint}")]
    WrongKind {
        /// The step.
        step: String,
        /// Its kind.
        kind: &'static str,
        /// What fits.
        hint: &'static str,
    },
    /// The evidence is missing or malformed.
    #[error("{0}")]
    Evidence(String),
    /// The actor may not act on this step.
    #[error("{0}")]
    Forbidden(String),
}

impl ActError {
    /// The HTTP status a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            ActError::NoRun | ActError::NoStep(_) => 404,
            ActError::NotActive(_) => 409,
            ActError::Forbidden(_) => 403,
            ActError::WrongKind { .. } | ActError::Evidence(_) => 422,
        }
    }
}

/// May `actor` act on step `step` of `run`?
pub fn may_act(actor: &Actor, pb: &Playbook, run: &Run, step: &str) -> Result<(), ActError> {
    let forbid = |why: &str| Err(ActError::Forbidden(why.to_string()));
    let city_wide = actor.communes.is_none();
    if actor.role == "admin" && city_wide {
        return Ok(());
    }
    if actor.role != "admin" && actor.role != "operator" {
        return forbid("viewers and integrators do not act on playbook steps");
    }
    let Some(s) = pb.step(step) else {
        return Err(ActError::NoStep(step.into()));
    };
    if let Some(name) = run.steps.get(step).and_then(|s| s.assigned_to.as_ref()) {
        return if *name == actor.name {
            Ok(())
        } else {
            forbid(&format!("this step was given to {name}"))
        };
    }
    let Some(assignee) = s.assignee() else {
        return Ok(());
    };
    if assignee.role == Role::Admin && actor.role != "admin" {
        return forbid("this step is for an administrator");
    }
    match (assignee.scope, &actor.communes) {
        (_, None) => Ok(()),
        (Reach::City, Some(_)) => forbid("this step is for the city's centre"),
        (Reach::Commune, Some(mine)) => match &run.subject.zone {
            Some(z) if mine.contains(z) => Ok(()),
            _ => forbid("this step is for another commune's operators"),
        },
    }
}

fn wrong(step: &str, kind: &'static str, hint: &'static str) -> ActError {
    ActError::WrongKind {
        step: step.to_string(),
        kind,
        hint,
    }
}

fn check_evidence(
    evidence: &Evidence,
    value: &Option<serde_json::Value>,
    note: &Option<String>,
) -> Result<(), ActError> {
    let blank = |n: &Option<String>| n.as_deref().is_none_or(|t| t.trim().is_empty());
    match evidence {
        Evidence::None => Ok(()),
        Evidence::Note if blank(note) => {
            Err(ActError::Evidence("this task is done with a note".into()))
        }
        Evidence::Note => Ok(()),
        Evidence::Number => match value {
            Some(v) if v.as_f64().is_some_and(f64::is_finite) => Ok(()),
            _ => Err(ActError::Evidence(
                "this task is done with a number (`value`)".into(),
            )),
        },
        Evidence::Choice(choices) => match value.as_ref().and_then(|v| v.as_str()) {
            Some(c) if choices.iter().any(|x| x == c) => Ok(()),
            _ => Err(ActError::Evidence(format!(
                "this task is done with one of: {}",
                choices.join(", ")
            ))),
        },
        Evidence::Attachment => match value.as_ref().and_then(|v| v.as_str()) {
            Some(r) if !r.trim().is_empty() => Ok(()),
            _ => Err(ActError::Evidence(
                "this task is done with an attachment reference (`value`)".into(),
            )),
        },
    }
}

impl Run {
    /// Carries out `action` on `step` by `actor` (already allowed by [`may_act`]).
    pub fn act(
        &mut self,
        pb: &Playbook,
        step: &str,
        action: Action,
        actor: &Actor,
        now: i64,
        out: &mut Out,
    ) -> Result<(), ActError> {
        let Some(s) = pb.step(step) else {
            return Err(ActError::NoStep(step.into()));
        };
        let active = self
            .steps
            .get(step)
            .is_some_and(|st| st.status == Status::Active);
        let by = Some(actor.name.clone());
        match action {
            Action::Comment { note } => {
                self.event(out, now, Some(step), "commented", by, None, Some(note));
                return Ok(());
            }
            _ if !active => return Err(ActError::NotActive(step.into())),
            Action::Reassign { to, note } => {
                if s.assignee().is_none() {
                    return Err(wrong(
                        step,
                        s.kind_name(),
                        "only tasks, decisions and approvals are given to people",
                    ));
                }
                self.steps.get_mut(step).expect("active").assigned_to = Some(to.clone());
                self.event(
                    out,
                    now,
                    Some(step),
                    "reassigned",
                    by,
                    Some(serde_json::json!(to)),
                    note,
                );
                return Ok(());
            }
            Action::Complete { value, note } => {
                let StepKind::Task { evidence, .. } = &s.kind else {
                    return Err(wrong(
                        step,
                        s.kind_name(),
                        "choose a branch, approve or refuse, or wait",
                    ));
                };
                check_evidence(evidence, &value, &note)?;
                self.record(step, &actor.name, value.clone(), note.clone());
                self.event(out, now, Some(step), "completed", by, value, note);
                self.complete(pb, step, now, s.next.clone(), out);
            }
            Action::Choose { branch, note } => {
                let StepKind::Decision { branches, .. } = &s.kind else {
                    return Err(wrong(step, s.kind_name(), "only a decision has branches"));
                };
                let Some(b) = branches.iter().find(|b| b.id == branch) else {
                    let ids: Vec<&str> = branches.iter().map(|b| b.id.as_str()).collect();
                    return Err(ActError::Evidence(format!(
                        "no branch `{branch}` (one of: {})",
                        ids.join(", ")
                    )));
                };
                let mut next = s.next.clone();
                next.extend(b.next.iter().cloned());
                self.record(
                    step,
                    &actor.name,
                    Some(serde_json::json!(branch)),
                    note.clone(),
                );
                self.event(
                    out,
                    now,
                    Some(step),
                    "chosen",
                    by,
                    Some(serde_json::json!(branch)),
                    note,
                );
                self.complete(pb, step, now, next, out);
            }
            Action::Approve { note } | Action::Reject { note }
                if !matches!(s.kind, StepKind::Approval { .. }) =>
            {
                let _ = note;
                return Err(wrong(
                    step,
                    s.kind_name(),
                    "only an approval is approved or refused",
                ));
            }
            Action::Approve { note } => {
                self.record(
                    step,
                    &actor.name,
                    Some(serde_json::json!("approved")),
                    note.clone(),
                );
                self.event(out, now, Some(step), "approved", by, None, note);
                self.complete(pb, step, now, s.next.clone(), out);
            }
            Action::Reject { note } => {
                let StepKind::Approval { on_reject, .. } = &s.kind else {
                    unreachable!("checked above")
                };
                self.record(
                    step,
                    &actor.name,
                    Some(serde_json::json!("rejected")),
                    note.clone(),
                );
                self.event(out, now, Some(step), "rejected", by, None, note);
                self.complete(pb, step, now, on_reject.clone(), out);
            }
        }
        self.check_finished(pb, now, out);
        Ok(())
    }

    fn record(
        &mut self,
        step: &str,
        by: &str,
        value: Option<serde_json::Value>,
        note: Option<String>,
    ) {
        let st = self.steps.get_mut(step).expect("active");
        st.by = Some(by.to_string());
        st.value = value;
        st.note = note;
    }
}
