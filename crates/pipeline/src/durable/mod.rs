//! Crash-exact state: a message is acknowledged to its broker only once it is in the
//! write-ahead log, and the engine's state is the last checkpoint plus the log after it.
//!
//! The guarantee: the alert transitions of a pipeline that is killed at any instant and
//! restarted are those of one uninterrupted run over the same input (exactly-once state,
//! at-least-once outputs with byte-identical repeats).
//!
//! How:
//! 1. Each batch taken from the sources is appended to the log ([`Durable::admit`], then
//!    [`Durable::log_batch`]); the writer thread syncs it in one group commit. The batch's
//!    acknowledgements (MQTT PUBACK, Kafka offset store) wait until it is durable.
//! 2. A checkpoint is the engine's state after log sequence `P`, taken when every alert and
//!    dead letter handed over so far is confirmed by its output; it is written on a thread,
//!    and once it is durable the log drops what it covers (all but one old segment).
//! 3. At start: the checkpoint is restored, then every log record after `P` is processed
//!    again, in order, at the clock it was first processed at; outputs get the transitions
//!    again (same ids, same bytes).
//! 4. Input the broker sends again that is already in the log is recognised
//!    ([`redelivery`]) and acknowledged without processing.

pub mod checkpoint;
pub mod record;
pub mod redelivery;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use watchfloor_engine::{Engine, EngineConfig, RuleSet};

use crate::exercise::Exercises;
use watchfloor_wal::{Record, Wal, WalError};

use checkpoint::{start_engine, Checkpointer};
use record::{InputRecord, LogRecord, OperatorAction};
use redelivery::Redelivery;
use watchfloor_connectors::PipelineStats;

/// The checkpoint's position key for the log sequence it covers.
const WAL_SEQ: &str = "wal:seq";

/// The engine to start with and what to do before taking new input.
pub struct Opened {
    /// The engine (restored, or new).
    pub engine: Engine,
    /// The exercises running at the checkpoint (their engines restored).
    pub exercises: Exercises,
    /// The log and checkpoints; none when the pipeline has no `checkpoint` configured.
    pub durable: Option<Durable>,
    /// Log records after the checkpoint, to process again before anything new.
    pub replay: Vec<Record>,
}

/// A checkpoint taken, not yet written.
pub struct Snapshot {
    bytes: Vec<u8>,
    covers: u64,
}

/// The write-ahead log and the checkpoints of one pipeline.
pub struct Durable {
    wal: Wal,
    redelivery: Redelivery,
    checkpointer: Checkpointer,
    bodies: Vec<u8>,
    ends: Vec<usize>,
    stats: Arc<PipelineStats>,
}

/// The log's folder beside a checkpoint file: `<checkpoint>.wal/`.
pub fn wal_dir(checkpoint: &Path) -> PathBuf {
    let mut name = checkpoint.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// Restores the engine and opens the log. `redelivery_capacity` bounds how many MQTT
/// messages are remembered to recognise redeliveries.
pub fn open(
    rules: RuleSet,
    config: EngineConfig,
    checkpoint: Option<&Path>,
    redelivery_capacity: usize,
    stats: Arc<PipelineStats>,
) -> Result<Opened, WalError> {
    let Some(path) = checkpoint else {
        tracing::warn!(
            "no [engine] checkpoint configured: window and alert state is lost at every restart"
        );
        return Ok(Opened {
            engine: Engine::new(rules, config),
            exercises: Exercises::default(),
            durable: None,
            replay: Vec::new(),
        });
    };
    let (engine, positions) = start_engine(rules, config, Some(path));
    let covered: u64 = positions
        .get(WAL_SEQ)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut wal, recovered) = Wal::open_after(&wal_dir(path), covered)?;
    // The log keeps as many records before a checkpoint as are remembered here, so the
    // memory is whole again after a restart (also after a clean stop's last checkpoint).
    wal.keep_tail(redelivery_capacity as u64);
    let mut redelivery = Redelivery::new(redelivery_capacity);
    redelivery.restore_positions(&positions);
    let mut replay = Vec::new();
    for record in recovered.records {
        match LogRecord::decode(&record.body) {
            Ok(LogRecord::Input(input)) => redelivery.remember(&input),
            Ok(LogRecord::Operator(_) | LogRecord::Exercise(_)) => {}
            Err(e) => {
                tracing::error!(seq = record.seq, error = %e, "write-ahead log record skipped");
                continue;
            }
        }
        if record.seq > covered {
            replay.push(record);
        }
    }
    tracing::info!(
        wal = %wal.dir().display(),
        checkpoint_covers = covered,
        to_replay = replay.len(),
        torn_bytes_cut = recovered.truncated_bytes,
        "write-ahead log opened"
    );
    let exercises = Exercises::restore(&engine, &positions);
    Ok(Opened {
        engine,
        exercises,
        durable: Some(Durable {
            wal,
            redelivery,
            checkpointer: Checkpointer::new(path.to_path_buf()),
            bodies: Vec::new(),
            ends: Vec::new(),
            stats,
        }),
        replay,
    })
}

impl Durable {
    /// Takes a received message into the batch being logged; `false` when it is a
    /// redelivery of something already logged (acknowledge it, do not process it).
    pub fn admit(&mut self, input: &InputRecord<'_>) -> bool {
        if self.redelivery.is_redelivered(input) {
            self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        input.encode(&mut self.bodies);
        self.ends.push(self.bodies.len());
        self.redelivery.remember(input);
        true
    }

    /// Appends the admitted batch to the log; returns the sequence that must be durable
    /// before the batch is acknowledged.
    pub fn log_batch(&mut self) -> Result<u64, WalError> {
        let mut start = 0;
        let bodies = &self.bodies;
        let slices = self.ends.iter().map(|&end| {
            let slice = &bodies[start..end];
            start = end;
            slice
        });
        let last = self.wal.append(slices)?;
        self.bodies.clear();
        self.ends.clear();
        Ok(last)
    }

    /// Logs an operator's action and waits until it is durable (before it is applied and
    /// answered: an operator is never told "done" for work a crash can undo).
    pub fn log_operator(&mut self, action: &OperatorAction) -> Result<(), WalError> {
        let mut body = Vec::new();
        action.encode(&mut body);
        self.wal.append([body.as_slice()])?;
        self.wal.sync()
    }

    /// Logs an exercise command and waits until it is durable.
    pub fn log_exercise(
        &mut self,
        record: &crate::exercise::ExerciseRecord,
    ) -> Result<(), WalError> {
        let mut body = Vec::new();
        record.encode(&mut body);
        self.wal.append([body.as_slice()])?;
        self.wal.sync()
    }

    /// Notifies `wake` each time the log is durable further (from the log's writer thread).
    pub fn wake_on_durable(&self, wake: Arc<tokio::sync::Notify>) {
        self.wal.on_durable(move || wake.notify_one());
    }

    /// How far the log is durable.
    pub fn durable(&self) -> u64 {
        let durable = self.wal.durable();
        self.stats.wal_durable.store(durable, Ordering::Relaxed);
        durable
    }

    /// Is a checkpoint being written?
    pub fn checkpoint_busy(&self) -> bool {
        self.checkpointer.busy()
    }

    /// The engine's state after everything logged so far, ready to be written once every
    /// output confirmed the alerts handed to it up to now (the caller checks that).
    pub fn snapshot(&mut self, engine: &Engine, exercises: &Exercises) -> Snapshot {
        let start = Instant::now();
        let covers = self.wal.last_appended();
        let mut side = self.positions(covers);
        exercises.checkpoint_into(&mut side);
        let bytes = engine.checkpoint(&side);
        self.stats
            .checkpoint_serialize_us
            .store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        Snapshot { bytes, covers }
    }

    /// Starts writing a snapshot (on its own thread).
    pub fn write(&mut self, snapshot: Snapshot) {
        self.checkpointer.start(snapshot.bytes, snapshot.covers);
    }

    /// Takes a snapshot of `engine` and starts writing it: for callers whose outputs have
    /// confirmed everything already.
    pub fn checkpoint(&mut self, engine: &Engine, exercises: &Exercises) {
        let snapshot = self.snapshot(engine, exercises);
        self.write(snapshot);
    }

    /// Finishes a checkpoint write that completed: the log drops what it covers.
    pub fn poll(&mut self) -> Result<(), WalError> {
        if let Some(written) = self.checkpointer.poll() {
            self.written(written)?;
        }
        Ok(())
    }

    fn written(&mut self, written: checkpoint::Written) -> Result<(), WalError> {
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.stats
            .checkpoint_bytes
            .store(written.bytes as u64, Ordering::Relaxed);
        self.stats
            .checkpoint_write_us
            .store(written.took.as_micros() as u64, Ordering::Relaxed);
        tracing::debug!(
            covers = written.covers,
            bytes = written.bytes,
            ms = written.took.as_millis() as u64,
            "checkpoint written"
        );
        self.wal.checkpointed(written.covers)
    }

    /// The log synced, then a checkpoint of `engine` written before returning (a clean
    /// stop, the end of a replay).
    pub fn checkpoint_and_wait(
        &mut self,
        engine: &Engine,
        exercises: &Exercises,
    ) -> Result<(), WalError> {
        self.wal.sync()?;
        if let Some(written) = self.checkpointer.wait() {
            self.written(written)?;
        }
        self.checkpoint(engine, exercises);
        if let Some(written) = self.checkpointer.wait() {
            self.written(written)?;
        }
        self.wal.sync()
    }

    fn positions(&self, covers: u64) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = self.redelivery.positions().collect();
        map.insert(WAL_SEQ.into(), covers.to_string());
        map
    }
}

#[cfg(test)]
mod tests;
