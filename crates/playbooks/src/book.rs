//! The book of runs: which playbook starts on which alert, every run in progress, and the
//! playbook versions they pinned. Pure like the runs (`now` is given); its host feeds it
//! the alerts' transitions, ticks it at [`Book::next_due`], stores what changed and carries
//! out the effects.
//!
//! Invariants: one run per alert and playbook (`<playbook>:<alert id>`), whatever the
//! re-fires; a run keeps the playbook version it started with across reloads and restarts
//! (the host stores the versions' definitions with the runs); a reload changes only which
//! version new runs start with.

use std::collections::BTreeMap;
use std::sync::Arc;

use watchfloor_model::AlertState;

use crate::act::{may_act, ActError, Action, Actor};
use crate::run::{Out, Run, Subject};
use crate::spec::{Playbook, Trigger};
use crate::Library;

/// Every run, and the playbooks they follow.
#[derive(Debug, Default)]
pub struct Book {
    current: BTreeMap<String, Arc<Playbook>>,
    pinned: BTreeMap<(String, String), Arc<Playbook>>,
    runs: BTreeMap<String, Run>,
    by_alert: BTreeMap<String, Vec<String>>,
    /// The rules any pinned playbook's waits name (`rule_fires`): other alerts' firings
    /// are shown to the runs only for these (not every transition to every run).
    waited_rules: std::collections::BTreeSet<String>,
    /// Exercises ended (drills aborted or over): their alerts start no new runs (a
    /// transition queued before the end may arrive after it).
    ended_exercises: std::collections::BTreeSet<String>,
}

fn waited_rules(pb: &Playbook) -> impl Iterator<Item = String> + '_ {
    pb.steps.iter().filter_map(|s| match &s.kind {
        crate::spec::StepKind::Wait {
            until: Some(crate::spec::Condition::RuleFires(r)),
            ..
        } => Some(r.clone()),
        _ => None,
    })
}

/// Does `trigger` start on this subject?
pub fn triggers(trigger: &Trigger, s: &Subject) -> bool {
    s.state == AlertState::Firing
        && (trigger.rules.is_empty() || trigger.rules.contains(&s.rule))
        && trigger
            .labels
            .iter()
            .all(|(k, v)| s.labels.get(k) == Some(v))
        && trigger.min_severity.is_none_or(|m| s.severity >= m)
        && (trigger.zones.is_empty() || s.zone.as_ref().is_some_and(|z| trigger.zones.contains(z)))
        && (!trigger.escalated_only || s.severity > s.fired_severity)
}

impl Book {
    /// A book following `library`, with no runs.
    pub fn new(library: Library) -> Book {
        let mut book = Book::default();
        book.reload(library);
        book
    }

    /// New runs follow `library`; runs in progress keep their versions.
    pub fn reload(&mut self, library: Library) {
        self.current.clear();
        for pb in library.playbooks {
            self.waited_rules.extend(waited_rules(&pb));
            self.pinned
                .insert((pb.id.clone(), pb.version.clone()), pb.clone());
            self.current.insert(pb.id.clone(), pb);
        }
    }

    /// Takes back runs (and the versions they pinned) from the store after a restart.
    pub fn restore(&mut self, versions: Vec<Playbook>, runs: Vec<Run>) {
        for pb in versions {
            self.waited_rules.extend(waited_rules(&pb));
            self.pinned
                .entry((pb.id.clone(), pb.version.clone()))
                .or_insert_with(|| Arc::new(pb));
        }
        for run in runs {
            if let Some(alert) = &run.subject.alert_id {
                self.by_alert
                    .entry(alert.clone())
                    .or_default()
                    .push(run.id.clone());
            }
            self.runs.insert(run.id.clone(), run);
        }
    }

    /// The playbooks new runs start with.
    pub fn playbooks(&self) -> impl Iterator<Item = &Arc<Playbook>> {
        self.current.values()
    }

    /// The playbook version a run follows.
    pub fn playbook_of(&self, run: &Run) -> Option<&Arc<Playbook>> {
        self.pinned
            .get(&(run.playbook.clone(), run.version.clone()))
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Option<&Run> {
        self.runs.get(id)
    }

    /// Every run.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    /// The runs of an alert.
    pub fn runs_of(&self, alert_id: &str) -> Vec<&Run> {
        self.by_alert
            .get(alert_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.runs.get(id))
            .collect()
    }

    /// Aborts every unfinished run of exercise `exercise` (a drill aborted) at `now`.
    pub fn abort_exercise(&mut self, exercise: &str, now: i64, by: Option<String>) -> Out {
        let mut out = Out::default();
        self.ended_exercises.insert(exercise.to_string());
        for run in self
            .runs
            .values_mut()
            .filter(|r| r.subject.exercise.as_deref() == Some(exercise))
        {
            run.abort(now, by.clone(), "drill aborted", &mut out);
        }
        out
    }

    /// Drops finished runs (the host keeps them in its store): memory stays bounded.
    pub fn forget_finished(&mut self, before: i64) {
        let gone: Vec<String> = self
            .runs
            .values()
            .filter(|r| r.finished_at.is_some_and(|f| f < before))
            .map(|r| r.id.clone())
            .collect();
        for id in gone {
            if let Some(run) = self.runs.remove(&id) {
                if let Some(alert) = run.subject.alert_id {
                    if let Some(list) = self.by_alert.get_mut(&alert) {
                        list.retain(|r| *r != id);
                        if list.is_empty() {
                            self.by_alert.remove(&alert);
                        }
                    }
                }
            }
        }
    }

    /// The earliest due time of any run whose playbook version is known (a run whose
    /// version could not be restored has no timers to fire: it would be due forever).
    pub fn next_due(&self) -> Option<i64> {
        self.runs
            .values()
            .filter(|r| {
                self.pinned
                    .contains_key(&(r.playbook.clone(), r.version.clone()))
            })
            .filter_map(Run::next_due)
            .min()
    }

    /// An alert changed: its runs see it, waits on other rules see it, matching playbooks
    /// start (once per alert and playbook).
    pub fn on_transition(&mut self, subject: Subject, now: i64) -> Out {
        let mut out = Out::default();
        let Some(alert) = subject.alert_id.clone() else {
            return out;
        };
        if subject
            .exercise
            .as_ref()
            .is_some_and(|x| self.ended_exercises.contains(x))
        {
            return out;
        }
        for id in self.by_alert.get(&alert).cloned().unwrap_or_default() {
            let Some(run) = self.runs.get_mut(&id) else {
                continue;
            };
            let Some(pb) = self
                .pinned
                .get(&(run.playbook.clone(), run.version.clone()))
            else {
                continue;
            };
            run.on_subject(pb, subject.clone(), now, &mut out);
        }
        if subject.state == AlertState::Firing && self.waited_rules.contains(&subject.rule) {
            for run in self.runs.values_mut() {
                if run.is_finished() || run.subject.alert_id.as_deref() == Some(alert.as_str()) {
                    continue;
                }
                if let Some(pb) = self
                    .pinned
                    .get(&(run.playbook.clone(), run.version.clone()))
                {
                    run.on_other_fired(pb, &subject.rule, subject.zone.as_deref(), now, &mut out);
                }
            }
        }
        let starting: Vec<Arc<Playbook>> = self
            .current
            .values()
            .filter(|pb| pb.trigger.as_ref().is_some_and(|t| triggers(t, &subject)))
            .filter(|pb| !self.runs.contains_key(&format!("{}:{alert}", pb.id)))
            .cloned()
            .collect();
        for pb in starting {
            let id = format!("{}:{alert}", pb.id);
            let (run, o) = Run::start(id.clone(), &pb, subject.clone(), None, now);
            out.events.extend(o.events);
            out.effects.extend(o.effects);
            self.by_alert
                .entry(alert.clone())
                .or_default()
                .push(id.clone());
            self.runs.insert(id, run);
        }
        out
    }

    /// Fires every due time at or before `now`.
    pub fn tick(&mut self, now: i64) -> Out {
        let mut out = Out::default();
        for run in self.runs.values_mut() {
            if run.next_due().is_some_and(|d| d <= now) {
                if let Some(pb) = self
                    .pinned
                    .get(&(run.playbook.clone(), run.version.clone()))
                {
                    run.tick(pb, now, &mut out);
                }
            }
        }
        out
    }

    /// An action on a run's step by `actor`.
    pub fn act(
        &mut self,
        run_id: &str,
        step: &str,
        action: Action,
        actor: &Actor,
        now: i64,
    ) -> Result<Out, ActError> {
        let run = self.runs.get_mut(run_id).ok_or(ActError::NoRun)?;
        let pb = self
            .pinned
            .get(&(run.playbook.clone(), run.version.clone()))
            .ok_or(ActError::NoRun)?;
        may_act(actor, pb, run, step)?;
        let mut out = Out::default();
        run.act(pb, step, action, actor, now, &mut out)?;
        Ok(out)
    }

    /// Starts `playbook` by hand: on an alert (`subject.alert_id`), or on a reported incident
    /// with id `incident`. Refused for an unknown playbook, a run already there, a playbook
    /// that is not manual on an incident, or an actor who may not act.
    pub fn start(
        &mut self,
        playbook: &str,
        subject: Subject,
        incident: Option<&str>,
        actor: &Actor,
        now: i64,
    ) -> Result<(String, Out), ActError> {
        let pb = self.current.get(playbook).cloned().ok_or(ActError::NoRun)?;
        if actor.role != "admin" && actor.role != "operator" {
            return Err(ActError::Forbidden(
                "viewers and integrators do not start playbooks".into(),
            ));
        }
        if let (Some(mine), Some(zone)) = (&actor.communes, &subject.zone) {
            if !mine.contains(zone) {
                return Err(ActError::Forbidden("that commune is not yours".into()));
            }
        }
        let id = match (&subject.alert_id, incident) {
            (Some(alert), _) => format!("{}:{alert}", pb.id),
            (None, Some(inc)) if pb.manual => format!("{}:{inc}", pb.id),
            (None, _) => {
                return Err(ActError::Forbidden(format!(
                    "playbook `{}` is not started on a reported incident",
                    pb.id
                )))
            }
        };
        if self.runs.contains_key(&id) {
            return Err(ActError::NotActive(format!("{id} (already running)")));
        }
        let (run, out) = Run::start(id.clone(), &pb, subject, Some(actor.name.clone()), now);
        if let Some(alert) = &run.subject.alert_id {
            self.by_alert
                .entry(alert.clone())
                .or_default()
                .push(id.clone());
        }
        self.runs.insert(id.clone(), run);
        Ok((id, out))
    }
}
