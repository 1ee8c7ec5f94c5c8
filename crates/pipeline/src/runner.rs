//! The pipeline's engine task: takes batches from the sources' queue, logs them to the
//! write-ahead log, processes them, hands alerts and dead letters to the outputs, and
//! acknowledges each batch once it is durable in the log and its outputs confirmed it.
//! Checkpoints are taken here, every `checkpoint_interval`, when the outputs are caught up.
//!
//! Order of a batch: admit (redeliveries of logged input are set aside) → append to the
//! log (the writer thread syncs while the engine works) → process → hand over → pending
//! until durable and confirmed → acknowledged. Acknowledgements leave in arrival order.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use watchfloor_wal::Record;

use watchfloor_connectors::{Ack, ChannelEvent, Inbound, PipelineStats};

use crate::control::EngineCommand;
use crate::delivery::{Delivery, Item};
use crate::durable::record::{InputRecord, LogRecord, OperatorAction, Origin};
use crate::durable::Durable;
use crate::run::{PipelineError, BATCH, MAX_PENDING_BATCHES};
use crate::step::Processor;

/// How long a clean stop (or the end of a replay) waits for the observer (the incident
/// store) to keep what it was handed before writing a checkpoint.
const OBSERVER_WAIT: Duration = Duration::from_secs(10);
/// How often progress (rates, queue depth) is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// How long a clean stop waits for the outputs to confirm what they were handed.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// Items an output may hold unconfirmed before the engine stops taking input.
const MAX_BACKLOG: u64 = (BATCH * MAX_PENDING_BATCHES) as u64;

/// Input handed over, waiting to be durable and confirmed before it is acknowledged.
struct PendingBatch {
    marks: Vec<u64>,
    dead_letter_mark: u64,
    wal_mark: u64,
    acks: Vec<Ack>,
}

/// A checkpoint taken, waiting for the outputs to confirm what was handed to them before
/// it (then it is written).
struct PendingCheckpoint {
    snapshot: crate::durable::Snapshot,
    marks: Vec<u64>,
    dead_letter_mark: u64,
    /// What the observer (the incident store) was handed before it.
    observer_mark: u64,
}

/// The engine task's state.
pub(crate) struct Runner {
    pub processor: Processor,
    pub outputs: Vec<Delivery>,
    /// Per output: is it an exercise twin (takes exercise alerts, and only them)?
    pub exercise_twins: Vec<bool>,
    pub dead_letters: Delivery,
    pub durable: Option<Durable>,
    pub checkpoint_every: Duration,
    pub stats: Arc<PipelineStats>,
    pending: VecDeque<PendingBatch>,
    checkpoint: Option<PendingCheckpoint>,
    last_checkpoint: Instant,
    last_report: Instant,
    last_received: u64,
}

/// Where a message came from, as the log records it.
fn origin(ack: &Ack) -> Origin {
    match ack {
        Ack::Mqtt(_, publish, connection) => Origin::Mqtt {
            dup: publish.dup,
            connection: *connection,
        },
        #[cfg(feature = "kafka")]
        Ack::Kafka(ack) => {
            let (partition, offset) = ack.position();
            Origin::Kafka { partition, offset }
        }
        Ack::None => Origin::None,
    }
}

impl Runner {
    pub(crate) fn new(
        processor: Processor,
        outputs: Vec<(Delivery, bool)>,
        dead_letters: Delivery,
        durable: Option<Durable>,
        checkpoint_every: Duration,
        stats: Arc<PipelineStats>,
    ) -> Runner {
        let (outputs, exercise_twins) = outputs.into_iter().unzip();
        Runner {
            processor,
            outputs,
            exercise_twins,
            dead_letters,
            durable,
            checkpoint_every,
            stats,
            pending: VecDeque::new(),
            checkpoint: None,
            last_checkpoint: Instant::now(),
            last_report: Instant::now(),
            last_received: 0,
        }
    }

    /// Processes again the log records after the checkpoint, hands their alerts over, and
    /// takes a checkpoint covering them (so a crash right after the restart does not make
    /// the next start do it all again).
    pub(crate) async fn replay(&mut self, records: Vec<Record>) -> Result<(), PipelineError> {
        if records.is_empty() {
            self.processor.engine.resume(crate::run::now_ms());
            self.processor.exercises.resume(crate::run::now_ms());
            return Ok(());
        }
        let started = Instant::now();
        for chunk in records.chunks(BATCH) {
            for record in chunk {
                match LogRecord::decode(&record.body) {
                    Ok(LogRecord::Input(input)) => self.processor.process(&input),
                    Ok(LogRecord::Operator(action)) => {
                        if let Err(e) = self.apply(action) {
                            tracing::warn!(seq = record.seq, error = %e, "logged operator action no longer applies");
                        }
                    }
                    Ok(LogRecord::Exercise(exercise)) => {
                        if let Err(e) = self.processor.exercise(&exercise) {
                            tracing::warn!(seq = record.seq, error = %e, "logged exercise command no longer applies");
                        }
                    }
                    Err(e) => tracing::error!(seq = record.seq, error = %e, "log record skipped"),
                }
            }
            self.hand_over();
            // The log may be long: keep the outputs' backlog bounded.
            self.wait_confirmed(|r| r.accepting(), None).await?;
        }
        self.wait_confirmed(|r| r.all_confirmed(), None).await?;
        // The downtime is not station silence (absence rules).
        self.processor.engine.resume(crate::run::now_ms());
        self.processor.exercises.resume(crate::run::now_ms());
        // (If the incident store cannot keep the replayed transitions now, the loop's own
        // checkpoint follows once it has.)
        if !self.observer_caught_up().await {
            self.last_checkpoint = Instant::now();
            return Ok(());
        }
        if let Some(durable) = &mut self.durable {
            durable.checkpoint_and_wait(&self.processor.engine, &self.processor.exercises)?;
        }
        self.last_checkpoint = Instant::now();
        tracing::info!(
            records = records.len(),
            ms = started.elapsed().as_millis() as u64,
            "write-ahead log replayed after the checkpoint"
        );
        Ok(())
    }

    /// One batch from the queue.
    pub(crate) async fn on_batch(
        &mut self,
        batch: &mut Vec<Inbound>,
        now: i64,
    ) -> Result<(), PipelineError> {
        self.processor.tick(now);
        let inputs: Vec<InputRecord<'_>> = batch
            .iter()
            .map(|message| InputRecord {
                source: message.source as u16,
                now,
                origin: origin(&message.ack),
                topic: message.topic.as_str().into(),
                payload: message.payload.as_ref().into(),
            })
            .collect();
        let admitted: Vec<bool> = inputs
            .iter()
            .map(|input| match &mut self.durable {
                Some(durable) => durable.admit(input),
                None => true,
            })
            .collect();
        let wal_mark = match &mut self.durable {
            Some(durable) => durable.log_batch()?,
            None => 0,
        };
        for (input, admitted) in inputs.iter().zip(&admitted) {
            if *admitted {
                self.processor.process(input);
            }
        }
        drop(inputs);
        self.hand_over();
        self.pending.push_back(PendingBatch {
            marks: self.outputs.iter().map(Delivery::mark).collect(),
            dead_letter_mark: self.dead_letters.mark(),
            wal_mark,
            acks: batch.drain(..).map(|m| m.ack).collect(),
        });
        Ok(())
    }

    /// A partition assigned or revoked: it holds the watermark back, or no longer.
    pub(crate) fn on_channel(&mut self, event: ChannelEvent) {
        let channel = crate::step::channel(event.source as u16, event.partition as u32 & 0xffff);
        if event.open {
            self.processor.engine.open_channel(channel);
        } else {
            self.processor.engine.close_channel(channel);
        }
    }

    /// Applies an operator's action to the engine (or to its exercise's engine).
    fn apply(&mut self, action: OperatorAction) -> Result<(), watchfloor_engine::EngineError> {
        let processor = &mut self.processor;
        let id = match &action {
            OperatorAction::Acknowledge { id, .. }
            | OperatorAction::Resolve { id, .. }
            | OperatorAction::Raise { id, .. } => id.clone(),
        };
        let act = |engine: &mut watchfloor_engine::Engine,
                   id: &str,
                   out: &mut watchfloor_engine::Emitted| match action {
            OperatorAction::Acknowledge { ack, .. } => engine.acknowledge(id, ack),
            OperatorAction::Resolve { at, .. } => engine.resolve_manually(id, at, out),
            OperatorAction::Raise { severity, at, .. } => {
                engine.raise_severity(id, severity, at, out).map(|_| ())
            }
        };
        if watchfloor_model::exercise_of_alert(&id).is_some() {
            return processor
                .exercises
                .on_alert(&id, &mut processor.emitted, act)
                .unwrap_or(Ok(()));
        }
        act(&mut processor.engine, &id, &mut processor.emitted)
    }

    /// Logs an exercise command (when there is a log), then applies it.
    fn exercise(
        &mut self,
        id: String,
        action: crate::exercise::ExerciseAction,
    ) -> Result<crate::exercise::ExerciseAnswer, watchfloor_engine::EngineError> {
        let now = crate::run::now_ms();
        self.processor.tick(now);
        let record = crate::exercise::ExerciseRecord { id, now, action };
        if let Some(durable) = &mut self.durable {
            if let Err(e) = durable.log_exercise(&record) {
                tracing::error!(error = %e, "exercise command not logged; refused");
                return Err(watchfloor_engine::EngineError::Unavailable(e.to_string()));
            }
        }
        let answer = self.processor.exercise(&record);
        self.hand_over();
        answer
    }

    /// Logs an operator's action (when there is a log), then applies it.
    fn log_and_apply(
        &mut self,
        action: OperatorAction,
    ) -> Result<(), watchfloor_engine::EngineError> {
        if let Some(durable) = &mut self.durable {
            if let Err(e) = durable.log_operator(&action) {
                tracing::error!(error = %e, "operator action not logged; refused");
                return Err(watchfloor_engine::EngineError::Unavailable(e.to_string()));
            }
        }
        self.apply(action)
    }

    /// A command from the command-centre server.
    pub(crate) fn on_command(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::Acknowledge { id, ack, reply } => {
                let _ = reply.send(self.log_and_apply(OperatorAction::Acknowledge { id, ack }));
            }
            EngineCommand::Resolve { id, at, reply } => {
                let _ = reply.send(self.log_and_apply(OperatorAction::Resolve { id, at }));
            }
            EngineCommand::Raise {
                id,
                severity,
                at,
                reply,
            } => {
                let action = OperatorAction::Raise { id, severity, at };
                let _ = reply.send(self.log_and_apply(action));
            }
            EngineCommand::Exercise { id, action, reply } => {
                let _ = reply.send(self.exercise(id, action));
            }
            EngineCommand::Reload { rules, city, reply } => {
                self.processor
                    .exercises
                    .reload(&rules, &mut self.processor.emitted);
                let summary = self
                    .processor
                    .engine
                    .reload(rules, &mut self.processor.emitted);
                self.processor.city = city;
                tracing::info!(
                    kept = summary.kept.len(),
                    changed = summary.changed.len(),
                    added = summary.added.len(),
                    removed = summary.removed.len(),
                    "rules reloaded"
                );
                let _ = reply.send(summary);
            }
            EngineCommand::WithActiveAlerts { with } => with(self.active_alerts()),
            EngineCommand::ActiveAlerts { reply } => {
                let _ = reply.send(self.active_alerts());
            }
        }
    }

    /// The firing alerts, real and the exercises'.
    fn active_alerts(&self) -> Vec<watchfloor_engine::ActiveAlertView> {
        let mut all = self.processor.engine.active_alerts();
        all.extend(self.processor.exercises.active_alerts());
        all
    }

    /// Hands alerts and dead letters to the outputs' tasks (never waits on them).
    pub(crate) fn hand_over(&mut self) {
        let emitted = &mut self.processor.emitted;
        if let (Some(observer), false) = (&self.processor.observer, emitted.transitions.is_empty())
        {
            observer.on_transitions(&emitted.transitions);
        }
        self.stats
            .transitions
            .fetch_add(emitted.transitions.len() as u64, Ordering::Relaxed);
        for transition in emitted.transitions.drain(..) {
            let exercise = transition.exercise().is_some();
            let transition = Arc::new(transition);
            // Real alerts to the real outputs, exercise alerts to the exercise twins only.
            for (output, twin) in self.outputs.iter_mut().zip(&self.exercise_twins) {
                if exercise == *twin {
                    output.send(Item::Alert(transition.clone()));
                }
            }
        }
        for record in self.processor.dead_letters.drain(..) {
            self.dead_letters.send(Item::Record(Arc::new(record)));
        }
    }

    /// Is every output confirmed up to what it was handed?
    fn all_confirmed(&self) -> bool {
        self.outputs.iter().all(|o| o.confirmed(o.mark()))
            && self.dead_letters.confirmed(self.dead_letters.mark())
    }

    /// May the engine take more input? Not while too many batches wait for their
    /// acknowledgement, or an output holds too much unconfirmed (backpressure: the queue
    /// fills and the sources stop reading; commands are still served).
    pub(crate) fn accepting(&self) -> bool {
        self.pending.len() <= MAX_PENDING_BATCHES
            && self
                .outputs
                .iter()
                .chain(std::iter::once(&self.dead_letters))
                .all(|o| o.backlog() <= MAX_BACKLOG)
    }

    /// An output that can deliver nothing more, not even to its undelivered file.
    fn failed_output(&self) -> Result<(), PipelineError> {
        match self
            .outputs
            .iter()
            .chain(std::iter::once(&self.dead_letters))
            .find_map(Delivery::failed)
        {
            Some(why) => Err(PipelineError::OutputFailed(why)),
            None => Ok(()),
        }
    }

    /// Waits until `done` holds (or `limit` passes: `Ok(false)`), failing if an output
    /// failed for good.
    async fn wait_confirmed(
        &mut self,
        done: impl Fn(&Runner) -> bool,
        limit: Option<Duration>,
    ) -> Result<bool, PipelineError> {
        let started = Instant::now();
        while !done(self) {
            self.failed_output()?;
            if limit.is_some_and(|limit| started.elapsed() >= limit) {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(true)
    }

    /// After each step: backpressure from the outputs, acknowledgements that are due, the
    /// checkpoint when it is due, progress.
    pub(crate) async fn after_step(&mut self) -> Result<(), PipelineError> {
        if let Some(durable) = &mut self.durable {
            durable.poll()?;
        }
        self.failed_output()?;
        let checkpoint_due = self.checkpoint.is_none()
            && self.durable.as_ref().is_some_and(|d| !d.checkpoint_busy())
            && self.last_checkpoint.elapsed() >= self.checkpoint_every;
        if let (true, Some(durable)) = (checkpoint_due, &mut self.durable) {
            // Taken now; written once the outputs confirmed every alert handed over before
            // it (a checkpoint must not cover an alert an output could still lose). The
            // engine does not wait for that.
            self.checkpoint = Some(PendingCheckpoint {
                snapshot: durable.snapshot(&self.processor.engine, &self.processor.exercises),
                marks: self.outputs.iter().map(Delivery::mark).collect(),
                dead_letter_mark: self.dead_letters.mark(),
                observer_mark: self.observer_durability().0,
            });
            self.last_checkpoint = Instant::now();
        }
        let confirmed = self.checkpoint.as_ref().is_some_and(|c| {
            self.confirmed(&c.marks, c.dead_letter_mark)
                && self.observer_durability().1 >= c.observer_mark
        });
        if let (true, Some(durable)) = (confirmed, &mut self.durable) {
            let checkpoint = self.checkpoint.take().expect("checked");
            durable.write(checkpoint.snapshot);
        }
        self.release_ready();
        self.report();
        Ok(())
    }

    /// The observer's (handed, durable) numbers.
    fn observer_durability(&self) -> (u64, u64) {
        self.processor
            .observer
            .as_ref()
            .map_or((0, 0), |o| o.durability())
    }

    /// Waits (at most [`OBSERVER_WAIT`]) until the observer kept everything handed to it.
    fn observer_caught_up(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let observer = self.processor.observer.clone();
        async move {
            let Some(observer) = observer else {
                return true;
            };
            let (handed, _) = observer.durability();
            let deadline = Instant::now() + OBSERVER_WAIT;
            while observer.durability().1 < handed {
                if Instant::now() >= deadline {
                    tracing::warn!("the incident store is behind; no checkpoint now (the log keeps the input, a restart replays it)");
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            true
        }
    }

    /// Is anything waiting to be acknowledged?
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Has every output confirmed what it was handed up to these marks?
    fn confirmed(&self, marks: &[u64], dead_letter_mark: u64) -> bool {
        self.outputs
            .iter()
            .zip(marks)
            .all(|(o, mark)| o.confirmed(*mark))
            && self.dead_letters.confirmed(dead_letter_mark)
    }

    fn release_ready(&mut self) {
        let durable = self.durable.as_ref().map_or(u64::MAX, |d| d.durable());
        while self
            .pending
            .front()
            .is_some_and(|p| p.wal_mark <= durable && self.confirmed(&p.marks, p.dead_letter_mark))
        {
            let done = self.pending.pop_front().expect("checked");
            Ack::release_all(done.acks);
        }
    }

    /// Progress, also under full load (the ticker branch can starve then).
    fn report(&mut self) {
        if self.last_report.elapsed() < REPORT_EVERY {
            return;
        }
        let stats = &self.stats;
        let received = stats.received.load(Ordering::Relaxed);
        tracing::info!(
            received,
            accepted = stats.accepted.load(Ordering::Relaxed),
            rejected = stats.rejected_total(),
            redelivered = stats.redelivered.load(Ordering::Relaxed),
            transitions = stats.transitions.load(Ordering::Relaxed),
            queue_depth = stats.queue_depth.load(Ordering::Relaxed),
            rate_per_s =
                (received - self.last_received) as f64 / self.last_report.elapsed().as_secs_f64(),
            "pipeline progress"
        );
        self.last_received = received;
        self.last_report = Instant::now();
    }

    /// A clean stop: outputs confirmed, the log synced, everything acknowledged, a last
    /// checkpoint written. An output that cannot confirm within [`STOP_WAIT`] leaves its
    /// input unacknowledged (the broker redelivers it) and no last checkpoint.
    pub(crate) async fn shutdown(mut self) -> Result<(), PipelineError> {
        self.hand_over();
        let mut confirmed = true;
        for output in self.outputs.iter_mut() {
            confirmed &= output.close(STOP_WAIT).await;
        }
        confirmed &= self.dead_letters.close(STOP_WAIT).await;
        if !confirmed {
            tracing::warn!("outputs not confirmed at shutdown; their input will be redelivered");
            return Ok(());
        }
        // The last checkpoint must not cover transitions the observer has not kept.
        if !self.observer_caught_up().await {
            return Ok(());
        }
        if let Some(durable) = &mut self.durable {
            durable.checkpoint_and_wait(&self.processor.engine, &self.processor.exercises)?;
        }
        for done in self.pending.drain(..) {
            Ack::release_all(done.acks);
        }
        Ok(())
    }
}
