//! A playbook run: the state of each step, its due times, and the transitions time and the
//! alert make. Pure: every function takes `now` (event time in replays and tests, the wall
//! clock live) and returns what happened as [`Out`] (timeline events and effects to carry
//! out); nothing here sends, stores or reads a clock.
//!
//! Invariants: a step is started at most once per iteration (a cycle through a `wait` starts
//! a new iteration); a due step breaches once per iteration and its escalation runs once; a
//! notify is rendered from the subject as it is at the moment the step starts (its send
//! time) and carries the deterministic id `<run>/<step>/<iteration>`; timers are only due
//! times stored in the run, so a restored run fires them on time; a run is finished when no
//! step is active and no all-clear is awaited (the steps `when_resolved` starts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use watchfloor_model::{AlertState, Severity};

use crate::render::render;
use crate::spec::{Condition, Destination, Playbook, StepKind, Text};

/// What a run is about: an alert, or an incident reported by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The alert (none for a reported incident).
    pub alert_id: Option<String>,
    /// The rule (`incident` for a reported incident).
    pub rule: String,
    /// The alert's key (a station, a zone), or the incident's title.
    pub key: String,
    /// The commune, when known.
    pub zone: Option<String>,
    /// The commune's name.
    pub zone_name: Option<String>,
    /// Its sectors.
    pub sectors: Vec<String>,
    /// Severity now.
    pub severity: Severity,
    /// Severity it fired with.
    pub fired_severity: Severity,
    /// Firing or resolved.
    pub state: AlertState,
    /// The deciding value.
    pub value: Option<f64>,
    /// The alert's message.
    pub message: String,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
    /// A drill's exercise id (runs of exercise alerts are exercise runs).
    pub exercise: Option<String>,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started.
    Pending,
    /// Started, not done.
    Active,
    /// Done.
    Done,
    /// Closed without being done (no longer needed after the all-clear, a branch not taken).
    Skipped,
}

/// One step's state in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    /// Where it is.
    pub status: Status,
    /// How many times it started (a cycle through a wait starts it again).
    pub iteration: u32,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it is due (tasks, decisions, approvals), or when a wait ends.
    pub due_at: Option<i64>,
    /// When it breached its due time.
    pub breached_at: Option<i64>,
    /// When it was done or closed.
    pub finished_at: Option<i64>,
    /// Who did it.
    pub by: Option<String>,
    /// The value given (a number, a choice, an attachment reference).
    pub value: Option<serde_json::Value>,
    /// The note given.
    pub note: Option<String>,
    /// Given to this account by name (a reassignment), instead of the step's role.
    pub assigned_to: Option<String>,
}

impl StepState {
    fn new() -> StepState {
        StepState {
            status: Status::Pending,
            iteration: 0,
            started_at: None,
            due_at: None,
            breached_at: None,
            finished_at: None,
            by: None,
            value: None,
            note: None,
            assigned_to: None,
        }
    }
}

/// A line of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run.
    pub run: String,
    /// Its position in the run's timeline (from 1).
    pub seq: u64,
    /// When.
    pub at: i64,
    /// The step (none: the run itself).
    pub step: Option<String>,
    /// What: `run_started`, `started`, `completed`, `chosen`, `approved`, `rejected`,
    /// `breached`, `escalated`, `notified`, `timed_out`, `condition_met`, `skipped`,
    /// `reassigned`, `commented`, `alert_escalated`, `alert_resolved`, `alert_refired`,
    /// `run_finished`.
    pub event: String,
    /// Who (none: the playbook itself).
    pub by: Option<String>,
    /// A value (a choice, a number, a severity, a destination).
    pub value: Option<serde_json::Value>,
    /// A note.
    pub note: Option<String>,
}

/// Something the run asks its host to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    /// Send a message (at least once; `id` is the same on every attempt, for deduplication).
    Notify {
        /// `<run>/<step>/<iteration>` (`…/breach` for an escalation's).
        id: String,
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// Where.
        to: Destination,
        /// The text, rendered at send time.
        text: Text,
        /// The subject as it was at send time.
        subject: Box<Subject>,
    },
    /// Raise the alert's severity.
    RaiseSeverity {
        /// The run.
        run: String,
        /// The alert.
        alert_id: String,
        /// To this.
        severity: Severity,
    },
}

/// What one call changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Out {
    /// New timeline lines, in order.
    pub events: Vec<RunEvent>,
    /// Effects to carry out, in order.
    pub effects: Vec<Effect>,
}

/// A run of one playbook version on one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `<playbook>:<alert id>` or `<playbook>:<incident id>`.
    pub id: String,
    /// The playbook.
    pub playbook: String,
    /// The version it pinned.
    pub version: String,
    /// What it is about, as last seen.
    pub subject: Subject,
    /// Who started it by hand (none: its trigger).
    pub started_by: Option<String>,
    /// When it started.
    pub started_at: i64,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Every step's state.
    pub steps: BTreeMap<String, StepState>,
    /// The last timeline position used.
    pub seq: u64,
}

impl Run {
    /// Starts a run of `playbook` on `subject`.
    pub fn start(
        id: String,
        playbook: &Playbook,
        subject: Subject,
        by: Option<String>,
        now: i64,
    ) -> (Run, Out) {
        let mut run = Run {
            id,
            playbook: playbook.id.clone(),
            version: playbook.version.clone(),
            subject,
            started_by: by.clone(),
            started_at: now,
            finished_at: None,
            steps: playbook
                .steps
                .iter()
                .map(|s| (s.id.clone(), StepState::new()))
                .collect(),
            seq: 0,
        };
        let mut out = Out::default();
        run.event(&mut out, now, None, "run_started", by, None, None);
        for id in playbook.start.clone() {
            run.activate(playbook, &id, now, &mut out);
        }
        run.check_finished(playbook, now, &mut out);
        (run, out)
    }

    /// Ends the run at `now` without its remaining steps (a drill aborted): every step not
    /// done is skipped with `why`, and the run is finished. Nothing if it is over already.
    pub fn abort(&mut self, now: i64, by: Option<String>, why: &str, out: &mut Out) {
        if self.is_finished() {
            return;
        }
        let open: Vec<String> = self
            .steps
            .iter()
            .filter(|(_, s)| matches!(s.status, Status::Pending | Status::Active))
            .map(|(id, _)| id.clone())
            .collect();
        for id in open {
            let s = self.steps.get_mut(&id).expect("listed");
            s.status = Status::Skipped;
            s.finished_at = Some(now);
            self.event(out, now, Some(&id), "skipped", None, None, Some(why.into()));
        }
        self.finished_at = Some(now);
        self.event(out, now, None, "run_aborted", by, None, Some(why.into()));
    }

    /// Is it over?
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }

    /// The earliest due time of its active steps.
    pub fn next_due(&self) -> Option<i64> {
        self.steps
            .values()
            .filter(|s| s.status == Status::Active && s.breached_at.is_none())
            .filter_map(|s| s.due_at)
            .min()
    }

    /// Appends a timeline line.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &mut self,
        out: &mut Out,
        at: i64,
        step: Option<&str>,
        event: &str,
        by: Option<String>,
        value: Option<serde_json::Value>,
        note: Option<String>,
    ) {
        self.seq += 1;
        out.events.push(RunEvent {
            run: self.id.clone(),
            seq: self.seq,
            at,
            step: step.map(str::to_string),
            event: event.to_string(),
            by,
            value,
            note,
        });
    }

    /// Starts a step (again, if it was done before: a new iteration).
    pub(crate) fn activate(&mut self, pb: &Playbook, id: &str, now: i64, out: &mut Out) {
        let Some(step) = pb.step(id) else { return };
        let state = self
            .steps
            .entry(id.to_string())
            .or_insert_with(StepState::new);
        if state.status == Status::Active {
            return;
        }
        let iteration = state.iteration + 1;
        *state = StepState {
            status: Status::Active,
            iteration,
            started_at: Some(now),
            ..StepState::new()
        };
        let mut due = step.due_ms().map(|d| now + d);
        if let StepKind::Wait {
            duration_ms,
            timeout_ms,
            ..
        } = &step.kind
        {
            due = duration_ms.or(*timeout_ms).map(|d| now + d);
        }
        state.due_at = due;
        self.event(out, now, Some(id), "started", None, None, None);
        match &step.kind {
            StepKind::Notify { to, message } => {
                let text = Text {
                    vi: render(&message.vi, &self.subject, &self.id, id, &pb.id),
                    en: render(&message.en, &self.subject, &self.id, id, &pb.id),
                };
                let to = match to {
                    Destination::Mqtt(t) => {
                        Destination::Mqtt(render(t, &self.subject, &self.id, id, &pb.id))
                    }
                    other => other.clone(),
                };
                out.effects.push(Effect::Notify {
                    id: format!("{}/{}/{}", self.id, id, iteration),
                    run: self.id.clone(),
                    step: id.to_string(),
                    to: to.clone(),
                    text,
                    subject: Box::new(self.subject.clone()),
                });
                self.event(
                    out,
                    now,
                    Some(id),
                    "notified",
                    None,
                    serde_json::to_value(&to).ok(),
                    None,
                );
                self.complete(pb, id, now, step.next.clone(), out);
            }
            StepKind::Wait {
                until: Some(cond), ..
            } if self.holds(cond, None) => {
                self.event(out, now, Some(id), "condition_met", None, None, None);
                self.complete(pb, id, now, step.next.clone(), out);
            }
            StepKind::Parallel { members } => {
                for m in members.clone() {
                    self.activate(pb, &m, now, out);
                }
            }
            _ => {}
        }
    }

    /// Marks a step done and starts `next` (or, for a group's member, the group's next once
    /// every member is done).
    pub(crate) fn complete(
        &mut self,
        pb: &Playbook,
        id: &str,
        now: i64,
        next: Vec<String>,
        out: &mut Out,
    ) {
        let Some(state) = self.steps.get_mut(id) else {
            return;
        };
        if state.status != Status::Active {
            return;
        }
        state.status = Status::Done;
        state.finished_at = Some(now);
        let group = pb.step(id).and_then(|s| s.group.clone());
        match group {
            Some(g) => {
                let members = match pb.step(&g).map(|s| &s.kind) {
                    Some(StepKind::Parallel { members }) => members.clone(),
                    _ => Vec::new(),
                };
                let all_done = members.iter().all(|m| {
                    matches!(
                        self.steps.get(m).map(|s| s.status),
                        Some(Status::Done | Status::Skipped)
                    )
                });
                if all_done && self.steps.get(&g).map(|s| s.status) == Some(Status::Active) {
                    self.event(out, now, Some(&g), "completed", None, None, None);
                    let next = pb.step(&g).map(|s| s.next.clone()).unwrap_or_default();
                    self.complete(pb, &g, now, next, out);
                }
            }
            None => {
                for n in next {
                    self.activate(pb, &n, now, out);
                }
            }
        }
    }

    /// Does a wait's condition hold? `fired` is another alert that just fired: `(rule, zone)`.
    fn holds(&self, cond: &Condition, fired: Option<(&str, Option<&str>)>) -> bool {
        match cond {
            Condition::Resolved => self.subject.state == AlertState::Resolved,
            Condition::SeverityAtLeast(s) => {
                self.subject.state == AlertState::Firing && self.subject.severity >= *s
            }
            Condition::RuleFires(rule) => fired.is_some_and(|(r, zone)| {
                r == rule && zone.is_some() && zone == self.subject.zone.as_deref()
            }),
        }
    }

    /// Is the run waiting for its alert's all-clear (steps the all-clear starts)?
    pub fn awaits_all_clear(&self, pb: &Playbook) -> bool {
        !pb.when_resolved.start.is_empty()
            && self.subject.alert_id.is_some()
            && self.subject.state == AlertState::Firing
    }

    /// Ends the run when no step is active and no all-clear is awaited.
    pub(crate) fn check_finished(&mut self, pb: &Playbook, now: i64, out: &mut Out) {
        if self.finished_at.is_none()
            && !self.steps.values().any(|s| s.status == Status::Active)
            && !self.awaits_all_clear(pb)
        {
            self.finished_at = Some(now);
            self.event(out, now, None, "run_finished", None, None, None);
        }
    }

    /// Fires every due time at or before `now`, in time order: breaches (and their
    /// escalations), waits that end, waits that time out.
    pub fn tick(&mut self, pb: &Playbook, now: i64, out: &mut Out) {
        while let Some((due, id)) = self
            .steps
            .iter()
            .filter(|(_, s)| s.status == Status::Active && s.breached_at.is_none())
            .filter_map(|(id, s)| s.due_at.map(|d| (d, id.clone())))
            .filter(|(d, _)| *d <= now)
            .min()
        {
            let Some(step) = pb.step(&id) else { break };
            match &step.kind {
                StepKind::Wait { until: None, .. } => {
                    self.event(out, due, Some(&id), "completed", None, None, None);
                    self.complete(pb, &id, due, step.next.clone(), out);
                }
                StepKind::Wait { on_timeout, .. } => {
                    self.event(out, due, Some(&id), "timed_out", None, None, None);
                    let next = on_timeout.clone().unwrap_or_else(|| step.next.clone());
                    self.complete(pb, &id, due, next, out);
                }
                _ => self.breach(pb, &id, due, out),
            }
        }
        self.check_finished(pb, now, out);
    }

    /// A step passed its due time: recorded once, its escalation carried out once.
    fn breach(&mut self, pb: &Playbook, id: &str, at: i64, out: &mut Out) {
        let Some(step) = pb.step(id) else { return };
        let state = self.steps.get_mut(id).expect("a known step");
        state.breached_at = Some(at);
        let iteration = state.iteration;
        self.event(out, at, Some(id), "breached", None, None, None);
        let Some(esc) = step.on_breach().cloned() else {
            return;
        };
        if let Some(people) = esc.notify {
            let title = step.title();
            let text = Text {
                vi: format!("Quá hạn: {} ({})", title.vi, self.subject.key),
                en: format!("Overdue: {} ({})", title.en, self.subject.key),
            };
            out.effects.push(Effect::Notify {
                id: format!("{}/{}/{}/breach", self.id, id, iteration),
                run: self.id.clone(),
                step: id.to_string(),
                to: Destination::People(people),
                text,
                subject: Box::new(self.subject.clone()),
            });
            self.event(
                out,
                at,
                Some(id),
                "escalated",
                None,
                serde_json::to_value(Destination::People(people)).ok(),
                None,
            );
        }
        if let (Some(sev), Some(alert)) = (esc.raise_severity, self.subject.alert_id.clone()) {
            if sev > self.subject.severity && self.subject.state == AlertState::Firing {
                out.effects.push(Effect::RaiseSeverity {
                    run: self.id.clone(),
                    alert_id: alert,
                    severity: sev,
                });
                self.event(
                    out,
                    at,
                    Some(id),
                    "escalated",
                    None,
                    Some(serde_json::json!(sev.as_str())),
                    None,
                );
            }
        }
        for s in esc.start {
            self.activate(pb, &s, at, out);
        }
    }

    /// The subject changed (a transition of the run's alert).
    pub fn on_subject(&mut self, pb: &Playbook, subject: Subject, now: i64, out: &mut Out) {
        let before = std::mem::replace(&mut self.subject, subject);
        let resolved =
            before.state == AlertState::Firing && self.subject.state == AlertState::Resolved;
        let refired =
            before.state == AlertState::Resolved && self.subject.state == AlertState::Firing;
        if self.subject.state == AlertState::Firing && self.subject.severity != before.severity {
            let sev = self.subject.severity.as_str();
            self.event(
                out,
                now,
                None,
                "alert_escalated",
                None,
                Some(serde_json::json!(sev)),
                None,
            );
        }
        if refired {
            self.event(out, now, None, "alert_refired", None, None, None);
            if self.finished_at.take().is_some() {
                for id in pb.start.clone() {
                    self.activate(pb, &id, now, out);
                }
            }
        }
        self.satisfy_waits(pb, now, None, out);
        if resolved {
            self.event(out, now, None, "alert_resolved", None, None, None);
            if pb.when_resolved.finish {
                let open: Vec<String> = self
                    .steps
                    .iter()
                    .filter(|(_, s)| s.status == Status::Active)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in open {
                    let s = self.steps.get_mut(&id).expect("known");
                    s.status = Status::Skipped;
                    s.finished_at = Some(now);
                    self.event(
                        out,
                        now,
                        Some(&id),
                        "skipped",
                        None,
                        None,
                        Some("all-clear".into()),
                    );
                }
            }
            let was_finished = self.finished_at.take();
            for id in pb.when_resolved.start.clone() {
                self.activate(pb, &id, now, out);
            }
            if pb.when_resolved.start.is_empty() {
                self.finished_at = was_finished;
            }
        }
        self.check_finished(pb, now, out);
    }

    /// Another alert fired (`rule` in `zone`): waits for it end.
    pub fn on_other_fired(
        &mut self,
        pb: &Playbook,
        rule: &str,
        zone: Option<&str>,
        now: i64,
        out: &mut Out,
    ) {
        self.satisfy_waits(pb, now, Some((rule, zone)), out);
        self.check_finished(pb, now, out);
    }

    fn satisfy_waits(
        &mut self,
        pb: &Playbook,
        now: i64,
        fired: Option<(&str, Option<&str>)>,
        out: &mut Out,
    ) {
        let waiting: Vec<String> = self
            .steps
            .iter()
            .filter(|(_, s)| s.status == Status::Active)
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            let Some(step) = pb.step(&id) else { continue };
            if let StepKind::Wait {
                until: Some(cond), ..
            } = &step.kind
            {
                if self.holds(cond, fired) {
                    self.event(out, now, Some(&id), "condition_met", None, None, None);
                    self.complete(pb, &id, now, step.next.clone(), out);
                }
            }
        }
    }
}
