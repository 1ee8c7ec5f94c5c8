//! The playbook task: one owner of the book of runs. It takes the hub's transitions,
//! people's requests and its own due times in turn, stores each change (runs, timeline,
//! outbox, pinned versions) in one transaction, then shows it (views, `runs` deltas,
//! metrics) and carries out its effects, marking each in the outbox.
//!
//! Invariants: nothing is shown or answered before it is stored (a store outage answers
//! 503 and keeps the change to store with the next one); the outbox entries left pending
//! by a crash are carried out at start, before anything new; due times are read from the
//! book after every change, so a new earlier timer is never missed.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use watchfloor_pipeline::EngineCommand;
use watchfloor_playbooks::{Action, Actor, Book, Effect, Library, Out, Run, Subject};
use watchfloor_store::{OutboxRow, RunEventRow, RunRow, Store, StoreError};

use super::persist::{self, effect_id, FINISHED_KEPT_MS};
use super::{Link, Notifier, StepCounts, QUEUE, SECONDS_BUCKETS};
use crate::hub::{now_ms, Channel, DeltaItem, Hub};

/// How often failed outbox entries are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// What the centre gives the playbook task.
pub struct PlaybookConfig {
    /// The playbooks new runs start with.
    pub library: Library,
    /// The incident store.
    pub store: Store,
    /// The engine (raised severities).
    pub commands: mpsc::Sender<EngineCommand>,
    /// Where messages go.
    pub notifier: Notifier,
}

/// A refusal: HTTP status and reason.
pub(crate) use crate::ask::Refusal;

/// What the API asks of the task.
pub(crate) enum Request {
    /// An action on a step.
    Act {
        run: String,
        step: String,
        action: Action,
        actor: Actor,
        reply: oneshot::Sender<Result<Value, Refusal>>,
    },
    /// A playbook started by hand.
    Start {
        playbook: String,
        subject: Subject,
        incident: Option<String>,
        actor: Actor,
        reply: oneshot::Sender<Result<Value, Refusal>>,
    },
    /// A drill aborted: its exercise's unfinished runs end, their open steps skipped.
    AbortExercise {
        exercise: String,
        by: Option<String>,
        reply: oneshot::Sender<Result<Value, Refusal>>,
    },
}

impl Link {
    /// Ends the unfinished runs of a drill's exercise (the drill aborted); answers how many.
    pub async fn abort_exercise(&self, exercise: &str, by: &str) -> Result<usize, Refusal> {
        let answer = self
            .ask(|reply| Request::AbortExercise {
                exercise: exercise.to_string(),
                by: Some(by.to_string()),
                reply,
            })
            .await?;
        Ok(answer["aborted"].as_u64().unwrap_or(0) as usize)
    }

    /// Sends a request to the task and waits for its answer.
    pub(crate) async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Value, Refusal>>) -> Request,
    ) -> Result<Value, Refusal> {
        crate::ask::ask(
            &self.requests,
            "playbook service",
            Duration::from_secs(15),
            make,
        )
        .await
    }
}

struct Task {
    book: Book,
    library: Library,
    store: Store,
    hub: Arc<Hub>,
    link: Arc<Link>,
    commands: mpsc::Sender<EngineCommand>,
    notifier: Notifier,
    stored_versions: HashSet<(String, String)>,
    unsaved: (BTreeSet<String>, Vec<RunEventRow>, Vec<OutboxRow>),
    failed_effects: bool,
}

/// Restores the runs from the store, attaches the task to the hub and starts it.
pub async fn spawn(
    hub: Arc<Hub>,
    config: PlaybookConfig,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let now = now_ms();
    let mut book = Book::new(config.library.clone());
    let restored = persist::restore(&config.store, &mut book, now).await?;
    let stored_versions = config
        .store
        .playbook_versions()
        .await?
        .into_iter()
        .map(|v| (v.playbook, v.version))
        .collect();
    let (transitions, transitions_rx) = mpsc::channel(QUEUE);
    let (requests, requests_rx) = mpsc::channel(64);
    let link = Arc::new(Link {
        transitions,
        requests,
        views: Mutex::new(Default::default()),
        playbooks: Mutex::new(listing(&config.library)),
        counts: Mutex::new(Default::default()),
        dropped: Default::default(),
        outbox_failed: Default::default(),
    });
    let task = Task {
        book,
        library: config.library,
        store: config.store,
        hub: hub.clone(),
        link: link.clone(),
        commands: config.commands,
        notifier: config.notifier,
        stored_versions,
        unsaved: Default::default(),
        failed_effects: false,
    };
    let ids: Vec<String> = task.book.runs().map(|r| r.id.clone()).collect();
    task.refresh_views(&ids, false);
    hub.attach_playbooks(link);
    tracing::info!(
        playbooks = task.library.playbooks.len(),
        runs = restored,
        "playbooks ready; runs restored from the store"
    );
    Ok(tokio::spawn(task.run(transitions_rx, requests_rx)))
}

/// The playbooks as `/api/playbooks` lists them.
fn listing(library: &Library) -> Vec<Value> {
    library
        .playbooks
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id, "name": p.name, "sector": p.sector, "version": p.version,
                "manual": p.manual, "trigger": p.trigger, "steps": p.steps.len(),
            })
        })
        .collect()
}

impl Task {
    async fn run(
        mut self,
        mut transitions: mpsc::Receiver<Subject>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        self.retry_outbox().await;
        // Timers that came due while the centre was down fire now.
        let out = self.book.tick(now_ms());
        let _ = self.commit(out).await;
        loop {
            let due = self.book.next_due();
            let sleep_ms = due.map_or(3_600_000, |d| (d - now_ms()).clamp(0, 3_600_000)) as u64;
            tokio::select! {
                request = requests.recv() => match request {
                    Some(r) => self.handle(r).await,
                    None => break,
                },
                subject = transitions.recv() => match subject {
                    Some(s) => {
                        let out = self.book.on_transition(s, now_ms());
                        let _ = self.commit(out).await;
                    }
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {
                    let out = self.book.tick(now_ms());
                    let _ = self.commit(out).await;
                }
                _ = tokio::time::sleep(RETRY_EVERY), if self.failed_effects => self.retry_outbox().await,
            }
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Act {
                run,
                step,
                action,
                actor,
                reply,
            } => {
                let answer = match self.book.act(&run, &step, action, &actor, now_ms()) {
                    Ok(out) => self.commit(out).await.map(|_| self.view_of(&run)),
                    Err(e) => Err((e.status(), e.to_string())),
                };
                let _ = reply.send(answer);
            }
            Request::Start {
                playbook,
                subject,
                incident,
                actor,
                reply,
            } => {
                let answer =
                    match self
                        .book
                        .start(&playbook, subject, incident.as_deref(), &actor, now_ms())
                    {
                        Ok((id, out)) => self.commit(out).await.map(|_| self.view_of(&id)),
                        Err(e) => Err((e.status(), e.to_string())),
                    };
                let _ = reply.send(answer);
            }
            Request::AbortExercise {
                exercise,
                by,
                reply,
            } => {
                let out = self.book.abort_exercise(&exercise, now_ms(), by);
                let aborted = out
                    .events
                    .iter()
                    .filter(|e| e.event == "run_aborted")
                    .count();
                let answer = self
                    .commit(out)
                    .await
                    .map(|_| serde_json::json!({ "aborted": aborted }));
                let _ = reply.send(answer);
            }
        }
    }

    fn view_of(&self, id: &str) -> Value {
        self.link
            .views
            .lock()
            .expect("views lock")
            .get(id)
            .map_or(Value::Null, |v| v.data.clone())
    }

    /// Stores `out` (with anything a failed commit left), then shows it and carries out
    /// its effects.
    async fn commit(&mut self, out: Out) -> Result<(), Refusal> {
        if out.events.is_empty() && out.effects.is_empty() && self.unsaved.0.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let changed: Vec<String> = out
            .events
            .iter()
            .map(|e| e.run.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.unsaved.0.extend(changed.iter().cloned());
        self.unsaved
            .1
            .extend(out.events.iter().map(persist::event_row));
        self.unsaved
            .2
            .extend(out.effects.iter().map(|e| persist::outbox_row(e, now)));
        let runs: Vec<RunRow> = self
            .unsaved
            .0
            .iter()
            .filter_map(|id| self.book.run(id))
            .map(persist::run_row)
            .collect();
        let versions: Vec<_> = persist::version_rows(&self.library)
            .into_iter()
            .filter(|v| {
                !self
                    .stored_versions
                    .contains(&(v.playbook.clone(), v.version.clone()))
            })
            .filter(|v| {
                runs.iter()
                    .any(|r| r.playbook == v.playbook && r.version == v.version)
            })
            .collect();
        if let Err(e) = self
            .store
            .save_runs(&versions, &runs, &self.unsaved.1, &self.unsaved.2)
            .await
        {
            tracing::error!(error = %e, runs = runs.len(), "playbook runs not stored; kept for the next try");
            return Err((503, format!("the run could not be stored ({e}); try again")));
        }
        self.stored_versions
            .extend(versions.into_iter().map(|v| (v.playbook, v.version)));
        self.unsaved = Default::default();
        self.count(&out);
        self.refresh_views(&changed, true);
        for effect in &out.effects {
            self.attempt(effect).await;
        }
        self.book.forget_finished(now - FINISHED_KEPT_MS);
        Ok(())
    }

    /// Carries out one effect and records the attempt.
    async fn attempt(&mut self, effect: &Effect) {
        let id = effect_id(effect);
        let result = self
            .notifier
            .carry_out(effect, &self.commands, now_ms())
            .await;
        if let Err(e) = &result {
            tracing::warn!(effect = %id, error = %e, "playbook effect failed; it will be tried again");
            self.link.outbox_failed.fetch_add(1, Ordering::Relaxed);
            self.failed_effects = true;
        }
        let done = result.is_ok().then(now_ms);
        if let Err(e) = self
            .store
            .outbox_attempt(&id, done, result.err().as_deref())
            .await
        {
            tracing::error!(effect = %id, error = %e, "outbox attempt not recorded");
        }
    }

    /// The pending outbox entries (left by a crash, or failed), carried out again.
    async fn retry_outbox(&mut self) {
        self.failed_effects = false;
        let pending = match self.store.outbox_pending().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the playbook outbox cannot be read");
                self.failed_effects = true;
                return;
            }
        };
        for row in pending {
            match serde_json::from_str::<Effect>(&row.effect) {
                Ok(effect) => self.attempt(&effect).await,
                Err(e) => {
                    tracing::error!(effect = %row.id, error = %e, "an outbox entry does not read back")
                }
            }
        }
    }

    fn count(&self, out: &Out) {
        let mut counts = self.link.counts.lock().expect("counts lock");
        for e in &out.events {
            let (Some(step), Some(run)) = (&e.step, self.book.run(&e.run)) else {
                continue;
            };
            let c: &mut StepCounts = counts
                .entry((run.playbook.clone(), step.clone()))
                .or_default();
            match e.event.as_str() {
                "started" => c.started += 1,
                "breached" => c.breached += 1,
                "completed" | "chosen" | "approved" | "rejected" => {
                    c.completed += 1;
                    if let Some(start) = run.steps.get(step).and_then(|s| s.started_at) {
                        let seconds = (e.at - start).max(0) as f64 / 1000.0;
                        let i = SECONDS_BUCKETS
                            .iter()
                            .position(|b| seconds <= *b)
                            .unwrap_or(7);
                        c.buckets[i] += 1;
                        c.seconds_sum += seconds;
                    }
                }
                _ => {}
            }
        }
    }

    /// Rebuilds the views of `ids` (dropping forgotten runs) and, when `publish`, sends
    /// them on the `runs` channel.
    fn refresh_views(&self, ids: &[String], publish: bool) {
        for id in ids {
            let run: Option<&Run> = self.book.run(id);
            let view = run.and_then(|r| self.book.playbook_of(r).map(|pb| persist::view(r, pb)));
            let mut views = self.link.views.lock().expect("views lock");
            match view {
                Some(v) => {
                    views.insert(id.clone(), v.clone());
                    drop(views);
                    if publish {
                        self.hub.publish(DeltaItem {
                            channel: Channel::Runs,
                            ward: v.ward.clone(),
                            district: None,
                            sectors: v.sectors.clone(),
                            severity: None,
                            rule: None,
                            kind: None,
                            station: None,
                            data: v.data.clone(),
                            personal: false,
                        });
                    }
                }
                None => {
                    views.remove(id);
                }
            }
        }
        let mut views = self.link.views.lock().expect("views lock");
        views.retain(|id, _| self.book.run(id).is_some());
    }
}
