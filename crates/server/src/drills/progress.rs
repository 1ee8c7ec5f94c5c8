//! One drill in progress (an exercise): its pinned script and plan, its clock, how far the
//! master list has gone, the messages shown to the players, and its row in the store.
//!
//! Invariants: an action is taken once, in plan order, when the wall clock reaches the
//! planned wall time of its drill time ([`Clock::wall_of`]); its event time is that planned
//! time, so a restart that takes overdue actions late gives them the same event times (and
//! an action taken twice — a crash between the engine logging it and the store saving the
//! progress — is refused by the exercise engine as a duplicate); a paused drill takes no
//! action; the drill finishes on its own once every action is taken and its end time (the
//! last action plus the longest expected time) has passed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use watchfloor_drills::{spec::Text, Action, Clock, Drill, Known, Planned};
use watchfloor_store::DrillRow;

/// Where a drill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Injecting.
    Running,
    /// Clock stopped.
    Paused,
    /// Over, scored.
    Finished,
    /// Stopped by the leader, scored as far as it went.
    Aborted,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Finished => "finished",
            Status::Aborted => "aborted",
        }
    }

    fn parse(text: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Paused,
            Status::Finished,
            Status::Aborted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Is it over?
    pub(crate) fn ended(self) -> bool {
        matches!(self, Status::Finished | Status::Aborted)
    }
}

/// A message shown to the players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Drill time, ms.
    pub at_ms: i64,
    /// Wall time it was shown, epoch ms.
    pub shown_at: i64,
    /// Its inject.
    pub inject: String,
    /// The text.
    pub text: Text,
}

/// What changes as the drill goes (stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The drill's clock.
    pub clock: Clock,
    /// The next action of the plan.
    pub next: usize,
    /// Drill time each inject's first action was taken at.
    pub injected: BTreeMap<String, i64>,
    /// Messages shown so far.
    pub messages: Vec<Message>,
    /// Injected events the pipeline refused, with why (an exercise reading refused).
    pub refused: Vec<String>,
    /// The pauses so far (wall epoch ms from, to).
    #[serde(default)]
    pub pauses: Vec<(i64, i64)>,
}

/// A drill in progress or over.
#[derive(Debug, Clone)]
pub struct Exercise {
    pub id: String,
    pub drill: Drill,
    pub file: String,
    pub text: String,
    pub plan: Vec<Planned>,
    pub progress: Progress,
    pub status: Status,
    pub started_by: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub report: Option<Value>,
    /// Not before (wall ms): set when the engine or the store refused a step, so the task
    /// tries again later instead of at once (not stored).
    pub hold_until: i64,
}

impl Exercise {
    /// A drill started at `now` by `by`, `speed` drill ms per wall ms.
    pub fn start(
        id: String,
        drill: Drill,
        file: String,
        text: String,
        speed: f64,
        by: &str,
        now: i64,
    ) -> Exercise {
        let plan = watchfloor_drills::plan(&drill);
        Exercise {
            id,
            drill,
            file,
            text,
            plan,
            progress: Progress {
                clock: Clock::new(now, speed),
                next: 0,
                injected: BTreeMap::new(),
                messages: Vec::new(),
                refused: Vec::new(),
                pauses: Vec::new(),
            },
            status: Status::Running,
            started_by: by.to_string(),
            started_at: now,
            ended_at: None,
            report: None,
            hold_until: 0,
        }
    }

    /// Drill time the drill is over at: its last action plus the longest time an outcome
    /// may take (an acknowledgement or step after an alert adds up along its chain).
    pub fn end_ms(&self) -> i64 {
        let last = self.plan.last().map_or(0, |p| p.at_ms);
        let latest_inject = self
            .drill
            .injects
            .iter()
            .map(|i| i.at_ms)
            .max()
            .unwrap_or(0);
        let chain: i64 = self.drill.outcomes.iter().map(|o| o.within_ms).sum();
        let longest = self
            .drill
            .outcomes
            .iter()
            .map(|o| o.within_ms)
            .max()
            .unwrap_or(0);
        // The whole chain of expectations from the last inject, but never less than the
        // longest one after the last action.
        last.max(latest_inject + chain).max(last + longest)
    }

    /// The actions due at wall time `now` (none while paused), marked taken.
    pub fn take_due(&mut self, now: i64) -> Vec<Planned> {
        if self.status != Status::Running || now < self.hold_until {
            return Vec::new();
        }
        let mut due = Vec::new();
        while let Some(p) = self.plan.get(self.progress.next) {
            if self.progress.clock.wall_of(p.at_ms) > now {
                break;
            }
            self.progress
                .injected
                .entry(p.inject.clone())
                .or_insert(p.at_ms);
            if let Action::Message { text } = &p.action {
                self.progress.messages.push(Message {
                    at_ms: p.at_ms,
                    shown_at: now,
                    inject: p.inject.clone(),
                    text: text.clone(),
                });
            }
            due.push(p.clone());
            self.progress.next += 1;
        }
        due
    }

    /// When the drill next needs its task (an action, or its end): wall epoch ms.
    pub fn next_wake(&self) -> Option<i64> {
        if self.status != Status::Running {
            return None;
        }
        let at = match self.plan.get(self.progress.next) {
            Some(p) => p.at_ms,
            None => self.end_ms(),
        };
        Some(self.progress.clock.wall_of(at).max(self.hold_until))
    }

    /// Every action taken and the end time passed?
    pub fn is_over(&self, now: i64) -> bool {
        self.status == Status::Running
            && now >= self.hold_until
            && self.progress.next >= self.plan.len()
            && self.progress.clock.drill_time(now) >= self.end_ms()
    }

    /// Stops the drill's clock at `now` (nothing unless running).
    pub fn pause(&mut self, now: i64) -> bool {
        if self.status != Status::Running {
            return false;
        }
        self.progress.clock.pause(now);
        self.status = Status::Paused;
        true
    }

    /// Restarts the clock at `now` where it stopped (nothing unless paused).
    pub fn resume(&mut self, now: i64) -> bool {
        if self.status != Status::Paused {
            return false;
        }
        if let Some(from) = self.progress.clock.paused_at {
            self.progress.pauses.push((from, now.max(from)));
        }
        self.progress.clock.resume(now);
        self.status = Status::Running;
        true
    }

    /// Drill time (ms from the start) at wall time `wall`, counting only the pauses before
    /// it (a later pause does not move what happened earlier).
    pub fn drill_ms_at(&self, wall: i64) -> i64 {
        let clock = &self.progress.clock;
        let mut paused: i64 = self
            .progress
            .pauses
            .iter()
            .map(|(from, to)| (wall.min(*to) - from).max(0))
            .sum();
        if let Some(from) = clock.paused_at {
            paused += (wall - from).max(0);
        }
        (((wall - clock.started_wall - paused).max(0)) as f64 * clock.speed).round() as i64
    }

    /// The event time (epoch ms) of an action at drill time `at_ms`.
    pub fn event_time(&self, at_ms: i64) -> i64 {
        self.progress.clock.wall_of(at_ms)
    }

    /// The store row.
    pub fn row(&self) -> DrillRow {
        DrillRow {
            id: self.id.clone(),
            drill: self.drill.id.clone(),
            file: self.file.clone(),
            text: self.text.clone(),
            status: self.status.as_str().into(),
            started_by: self.started_by.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            progress: serde_json::to_string(&self.progress).expect("progress serialises"),
            report: self.report.as_ref().map(Value::to_string),
        }
    }

    /// Back from the store: the pinned script compiled again against what the centre knows.
    pub fn from_row(row: DrillRow, known: &Known) -> Result<Exercise, String> {
        let drill = watchfloor_drills::spec::compile(&row.file, &row.text, known).map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let progress: Progress =
            serde_json::from_str(&row.progress).map_err(|e| format!("progress: {e}"))?;
        let status = Status::parse(&row.status).ok_or(format!("status `{}`", row.status))?;
        let plan = watchfloor_drills::plan(&drill);
        Ok(Exercise {
            id: row.id,
            drill,
            file: row.file,
            text: row.text,
            plan,
            progress,
            status,
            started_by: row.started_by,
            started_at: row.started_at,
            ended_at: row.ended_at,
            report: row.report.and_then(|r| serde_json::from_str(&r).ok()),
            hold_until: 0,
        })
    }

    /// As the API shows it.
    pub fn view(&self, now: i64) -> Value {
        let clock = &self.progress.clock;
        json!({
            "id": self.id,
            "drill": self.drill.id,
            "name": self.drill.name,
            "file": self.file,
            "status": self.status.as_str(),
            "started_by": self.started_by,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "speed": clock.speed,
            "drill_time_ms": self.drill_ms_at(self.ended_at.unwrap_or(now)),
            "end_ms": self.end_ms(),
            "actions": self.plan.len(),
            "actions_taken": self.progress.next,
            "next_action_at": self.next_wake(),
            "injected": self.progress.injected,
            "messages": self.progress.messages,
            "refused": self.progress.refused,
            "objectives": self.drill.objectives,
            "participants": self.drill.participants,
            "report": self.report.is_some(),
        })
    }
}
