//! The drill task: starts exercises (a script checked against what the centre knows),
//! takes each one's actions when they come due — readings and camera detections as JSON
//! envelopes through the engine's exercise path, messages onto the drill's record — and
//! pauses, resumes, ends and aborts them; every change saved in the incident store before
//! it is answered; the after-action report written when a drill ends.
//!
//! Invariants: one task owns every exercise (no locks around the clock); an exercise is
//! started in the engine before its first inject, and ended there (its open alerts
//! resolved) before its report is written; a restart reads the open drills back and goes
//! on (overdue actions are taken at once, with their planned event times).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use watchfloor_drills::{Action, Known, Planned};
use watchfloor_model::{valid_exercise_id, Kind};
use watchfloor_pipeline::{EngineCommand, ExerciseAction, ExerciseAnswer};
use watchfloor_store::Store;

use super::progress::{Exercise, Status};

/// How long ending a drill waits for its closed alerts to show resolved.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How long a drill waits before trying again what the engine or the store refused.
const RETRY_MS: i64 = 2_000;
use crate::hub::{now_ms, Hub};

pub(crate) use crate::ask::Refusal;

/// What the drill task needs.
pub struct DrillConfig {
    /// Stations, communes, rules and playbook steps scripts are checked against.
    pub known: Known,
    /// Each station's kind (an injected reading's envelope says it).
    pub kinds: HashMap<String, Kind>,
    /// Where drills are kept (none: they do not survive a restart).
    pub store: Option<Store>,
    /// The engine.
    pub commands: mpsc::Sender<EngineCommand>,
    /// The drill scripts a leader may start by id (file name, text), checked already.
    pub scripts: Vec<(String, String)>,
}

/// A script a leader may start by its drill id.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub id: String,
    pub file: String,
    pub text: String,
    pub summary: Value,
}

/// What the leader asks of a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Pause,
    Resume,
    /// End now and score.
    End,
    Abort,
}

pub(crate) enum Request {
    Start {
        file: String,
        text: String,
        speed: f64,
        by: String,
        reply: oneshot::Sender<Result<Value, Refusal>>,
    },
    Control {
        id: String,
        control: Control,
        by: String,
        reply: oneshot::Sender<Result<Value, Refusal>>,
    },
    /// The drill as it is (its report is computed by the caller, off this task).
    Snapshot {
        id: String,
        reply: oneshot::Sender<Option<Exercise>>,
    },
}

/// What the API shares with the drill task.
pub struct Link {
    requests: mpsc::Sender<Request>,
    /// Every drill of this run of the centre (and the open ones restored), as the API
    /// shows it.
    pub(crate) views: Mutex<BTreeMap<String, Value>>,
    /// The scripts that can be started by id.
    pub(crate) scripts: Vec<Script>,
    /// The store, for drills of earlier runs of the centre.
    pub(crate) store: Option<Store>,
}

impl Link {
    /// The drill `id` of this run of the centre, as it is now.
    pub(crate) async fn snapshot(&self, id: &str) -> Result<Option<Exercise>, Refusal> {
        crate::ask::ask_for(
            &self.requests,
            "drill service",
            Duration::from_secs(30),
            |reply| Request::Snapshot {
                id: id.to_string(),
                reply,
            },
        )
        .await
    }

    /// Sends a request and waits for the answer.
    pub(crate) async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Value, Refusal>>) -> Request,
    ) -> Result<Value, Refusal> {
        crate::ask::ask(
            &self.requests,
            "drill service",
            Duration::from_secs(30),
            make,
        )
        .await
    }
}

struct Task {
    config: DrillConfig,
    hub: Arc<Hub>,
    link: Arc<Link>,
    exercises: BTreeMap<String, Exercise>,
}

/// Reads the open drills back, starts the task and attaches it to the hub.
pub async fn spawn(
    hub: Arc<Hub>,
    config: DrillConfig,
) -> Result<tokio::task::JoinHandle<()>, watchfloor_store::StoreError> {
    let (requests, requests_rx) = mpsc::channel(64);
    let scripts = config
        .scripts
        .iter()
        .filter_map(|(file, text)| {
            let drill = watchfloor_drills::spec::compile(file, text, &config.known).ok()?;
            let plan = watchfloor_drills::plan(&drill);
            Some(Script {
                id: drill.id.clone(),
                file: file.clone(),
                text: text.clone(),
                summary: json!({
                    "id": drill.id, "name": drill.name, "file": file,
                    "objectives": drill.objectives, "participants": drill.participants,
                    "injects": drill.injects.len(), "actions": plan.len(),
                    "outcomes": drill.outcomes.len(),
                    "duration_ms": plan.last().map_or(0, |p| p.at_ms),
                }),
            })
        })
        .collect();
    let link = Arc::new(Link {
        requests,
        views: Mutex::new(BTreeMap::new()),
        scripts,
        store: config.store.clone(),
    });
    let mut task = Task {
        config,
        hub: hub.clone(),
        link: link.clone(),
        exercises: BTreeMap::new(),
    };
    if let Some(store) = &task.config.store {
        for row in store.open_drills().await? {
            let id = row.id.clone();
            match Exercise::from_row(row, &task.config.known) {
                Ok(ex) => {
                    tracing::info!(exercise = %id, status = ex.status.as_str(), "drill resumed after the restart");
                    task.exercises.insert(id, ex);
                }
                Err(e) => {
                    tracing::error!(exercise = %id, error = %e, "drill in the store no longer loads; left as it was")
                }
            }
        }
    }
    hub.attach_drills(link);
    Ok(tokio::spawn(task.run(requests_rx)))
}

impl Task {
    async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let ids: Vec<String> = self.exercises.keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.engine(&id, ExerciseAction::Start).await {
                tracing::error!(exercise = %id, error = %e.1, "the engine did not take the resumed drill");
            }
            self.show(&id);
        }
        loop {
            let now = now_ms();
            let wake = self
                .exercises
                .values()
                .filter_map(Exercise::next_wake)
                .min();
            let sleep = wake.map_or(3_600_000, |w| (w - now).clamp(0, 3_600_000)) as u64;
            tokio::select! {
                request = requests.recv() => match request {
                    Some(r) => self.handle(r).await,
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(sleep)) => self.step(now_ms()).await,
            }
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Start {
                file,
                text,
                speed,
                by,
                reply,
            } => {
                let answer = self.start(file, text, speed, &by).await;
                let _ = reply.send(answer);
            }
            Request::Control {
                id,
                control,
                by,
                reply,
            } => {
                let answer = self.control(&id, control, &by).await;
                let _ = reply.send(answer);
            }
            Request::Snapshot { id, reply } => {
                let _ = reply.send(self.exercises.get(&id).cloned());
            }
        }
    }

    async fn start(
        &mut self,
        file: String,
        text: String,
        speed: f64,
        by: &str,
    ) -> Result<Value, Refusal> {
        if !(speed.is_finite() && (0.01..=1000.0).contains(&speed)) {
            return Err((400, format!("speed {speed}: from 0.01 to 1000")));
        }
        let drill = watchfloor_drills::spec::compile(&file, &text, &self.config.known).map_err(
            |errors| {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                (422, lines.join("\n"))
            },
        )?;
        let now = now_ms();
        let stamp = watchfloor_model::format_rfc3339(now)
            .chars()
            .filter(char::is_ascii_digit)
            .take(14)
            .collect::<String>();
        let id = format!(
            "{}-{stamp}",
            drill.id.replace(['.', ' '], "_").to_lowercase()
        );
        if !valid_exercise_id(&id) {
            return Err((422, format!("drill id `{}` makes no exercise id", drill.id)));
        }
        if self.exercises.contains_key(&id) {
            return Err((409, format!("drill `{id}` started this second already")));
        }
        let ex = Exercise::start(id.clone(), drill, file, text, speed, by, now);
        self.engine(&id, ExerciseAction::Start).await?;
        if let Err(e) = self.save(&ex).await {
            // Not stored, not started: the engine lets the exercise go again.
            let _ = self.engine(&id, ExerciseAction::End { at: now }).await;
            return Err(e);
        }
        tracing::info!(exercise = %id, by, speed, actions = ex.plan.len(), "drill started");
        self.exercises.insert(id.clone(), ex);
        self.step(now_ms()).await;
        self.show(&id);
        Ok(self.view(&id))
    }

    async fn control(&mut self, id: &str, control: Control, by: &str) -> Result<Value, Refusal> {
        let now = now_ms();
        let ex = self
            .exercises
            .get_mut(id)
            .ok_or_else(|| (404, format!("no drill `{id}` in progress")))?;
        if ex.status.ended() {
            return Err((
                409,
                format!("drill `{id}` is {} already", ex.status.as_str()),
            ));
        }
        match control {
            Control::Pause => {
                if !ex.pause(now) {
                    return Err((409, format!("drill `{id}` is {}", ex.status.as_str())));
                }
            }
            Control::Resume => {
                if !ex.resume(now) {
                    return Err((409, format!("drill `{id}` is {}", ex.status.as_str())));
                }
            }
            Control::End => return self.finish(id, Status::Finished, by).await,
            Control::Abort => return self.finish(id, Status::Aborted, by).await,
        }
        tracing::info!(exercise = %id, by, control = ?control, "drill clock changed");
        let ex = self.exercises.get(id).expect("present");
        self.save(ex).await?;
        self.show(id);
        Ok(self.view(id))
    }

    /// Takes every action due at `now`; finishes drills that are over.
    async fn step(&mut self, now: i64) {
        let ids: Vec<String> = self.exercises.keys().cloned().collect();
        for id in ids {
            let Some(ex) = self.exercises.get_mut(&id) else {
                continue;
            };
            let before = (ex.progress.next, ex.progress.messages.len());
            let due = ex.take_due(now);
            if !due.is_empty() {
                let payloads: Vec<String> = due
                    .iter()
                    .filter_map(|p| envelope(p, ex.event_time(p.at_ms), &self.config.kinds))
                    .collect();
                if !payloads.is_empty() {
                    match self.engine(&id, ExerciseAction::Inject { payloads }).await {
                        Ok(answer) => {
                            if let Some(ex) = self.exercises.get_mut(&id) {
                                ex.progress.refused.extend(answer.refused);
                            }
                        }
                        Err((_, e)) => {
                            // Not taken: the same actions are tried again on the next wake.
                            tracing::warn!(exercise = %id, error = %e, "drill inject not taken by the engine; retried");
                            if let Some(ex) = self.exercises.get_mut(&id) {
                                ex.progress.next = before.0;
                                ex.progress.messages.truncate(before.1);
                                ex.hold_until = now_ms() + RETRY_MS;
                            }
                            continue;
                        }
                    }
                }
                let ex = self.exercises.get(&id).expect("present");
                if let Err((_, e)) = self.save(ex).await {
                    tracing::warn!(exercise = %id, error = %e, "drill progress not saved (the injects are taken; a restart takes them again, refused as duplicates)");
                }
                self.show(&id);
            }
            if self.exercises.get(&id).is_some_and(|ex| ex.is_over(now)) {
                if let Err((_, e)) = self.finish(&id, Status::Finished, "drill clock").await {
                    tracing::warn!(exercise = %id, error = %e, "drill could not finish; retried");
                    if let Some(ex) = self.exercises.get_mut(&id) {
                        ex.hold_until = now_ms() + RETRY_MS;
                    }
                }
            }
        }
    }

    /// Ends a drill: the engine closes its alerts, its runs end, the report is written.
    async fn finish(&mut self, id: &str, status: Status, by: &str) -> Result<Value, Refusal> {
        let now = now_ms();
        let answer = self.engine(id, ExerciseAction::End { at: now }).await?;
        if answer.closed > 0 {
            self.await_closed(id).await;
        }
        let runs = match self.hub.playbooks.get() {
            Some(link) => link.abort_exercise(id, by).await.unwrap_or_else(|(_, e)| {
                tracing::warn!(exercise = %id, error = %e, "drill runs not ended");
                0
            }),
            None => 0,
        };
        let ex = self.exercises.get_mut(id).expect("present");
        let before = (
            ex.status,
            ex.ended_at,
            ex.progress.clone(),
            ex.report.clone(),
        );
        ex.status = status;
        ex.ended_at = Some(now);
        if let Some(from) = ex.progress.clock.paused_at {
            ex.progress.pauses.push((from, now.max(from)));
            ex.progress.clock.resume(now);
        }
        let report = super::observe::report(&self.hub, ex, now).await;
        let ex = self.exercises.get_mut(id).expect("present");
        ex.report = Some(report);
        tracing::info!(exercise = %id, status = status.as_str(), by, alerts_closed = answer.closed, runs_ended = runs, "drill ended; report written");
        let ex = self.exercises.get(id).expect("present");
        if let Err(e) = self.save(ex).await {
            // Not stored: as it was (a restart must not find it running with its engine
            // gone, nor an ended drill be reported here as stored); tried again later.
            let ex = self.exercises.get_mut(id).expect("present");
            (ex.status, ex.ended_at, ex.progress, ex.report) = before;
            ex.hold_until = now_ms() + RETRY_MS;
            return Err(e);
        }
        self.show(id);
        Ok(self.view(id))
    }

    /// The engine resolved the drill's open alerts; they show resolved here once their
    /// transitions have come through the pipeline (its log, then the hub). Waited for, up
    /// to [`CLOSE_WAIT`], so an answered end is what every screen and the API then show.
    async fn await_closed(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        while self.hub.open_exercise_alerts(id) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(exercise = %id, "drill ended; some of its alerts are not shown resolved yet");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn engine(&self, id: &str, action: ExerciseAction) -> Result<ExerciseAnswer, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.config
            .commands
            .send(EngineCommand::Exercise {
                id: id.to_string(),
                action,
                reply,
            })
            .await
            .map_err(|_| (503, "the engine is not running".to_string()))?;
        match tokio::time::timeout(Duration::from_secs(15), answer).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(e @ watchfloor_engine::EngineError::Unavailable(_)))) => {
                Err((503, e.to_string()))
            }
            Ok(Ok(Err(e))) => Err((409, e.to_string())),
            _ => Err((503, "the engine did not answer; try again".into())),
        }
    }

    async fn save(&self, ex: &Exercise) -> Result<(), Refusal> {
        let Some(store) = &self.config.store else {
            return Ok(());
        };
        store
            .save_drill(&ex.row())
            .await
            .map_err(|e| (503, format!("the drill could not be stored: {e}")))
    }

    fn view(&self, id: &str) -> Value {
        self.exercises
            .get(id)
            .map_or(Value::Null, |ex| ex.view(now_ms()))
    }

    /// Publishes a drill's view to the API's list.
    fn show(&self, id: &str) {
        let view = self.view(id);
        self.link
            .views
            .lock()
            .expect("views lock")
            .insert(id.to_string(), view);
    }
}

/// The JSON envelope of a reading or detection at event time `ts` (none for a message).
fn envelope(p: &Planned, ts: i64, kinds: &HashMap<String, Kind>) -> Option<String> {
    match &p.action {
        Action::Reading { station, values } => {
            let kind = kinds.get(station).map_or("air", |k| k.as_str());
            Some(json!({"source": station, "kind": kind, "ts": ts, "values": values}).to_string())
        }
        Action::Camera {
            station,
            event,
            confidence,
        } => Some(
            json!({"source": station, "kind": "camera", "ts": ts, "event": event, "confidence": confidence})
                .to_string(),
        ),
        Action::Message { .. } => None,
    }
}
