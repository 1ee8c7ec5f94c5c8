//! The write-ahead log of accepted input: a record is durable (written and fsynced) before
//! the input it holds is acknowledged to its broker, so a crash at any instant loses nothing
//! that a broker will not send again.
//!
//! Invariants:
//! - Records get consecutive sequence numbers from 1; a record with sequence `n` is durable
//!   once [`Wal::durable`] is `>= n`.
//! - Appends are written and fsynced by one writer thread in groups (group commit): every
//!   record appended while the previous fsync ran goes out with the next one, at once (no
//!   timer: the delay before an acknowledgement is one fsync, or two under load).
//! - The log is a folder of segments `<first sequence>.wal`. After a checkpoint covering
//!   sequence `P` ([`Wal::checkpointed`]) a new segment is started and the segments no
//!   longer needed are deleted: the log always holds every record after the last
//!   checkpoint, plus a tail before it (the records a broker may redeliver, which the
//!   reader recognises): the newest segment wholly at or below `P`, and every segment
//!   holding one of the last [`Wal::keep_tail`] records up to `P`. Two checkpoints in
//!   quick succession (a clean stop) therefore never shrink the tail to a handful.
//! - Each record carries a CRC-32 of its sequence and body. At open, a record that is cut
//!   off or fails its checksum ends the last segment (a torn write at a crash) and is cut
//!   off; the same in an older segment is corruption and refused.
//!
//! Record frame: `len: u32 LE` (of the body) · `crc: u32 LE` · `seq: u64 LE` · `body`.

mod segment;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use thiserror::Error;

pub use segment::Record;

/// Why the log could not be opened or written.
#[derive(Debug, Error)]
pub enum WalError {
    /// The folder or a segment could not be read or written (retry after fixing the disk).
    #[error("write-ahead log {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A segment other than the last one is damaged: records after the damage cannot be
    /// trusted (fatal: needs an operator).
    #[error("write-ahead log segment {path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The writer thread is gone (it failed to write or sync; see the log).
    #[error("write-ahead log writer stopped: {0}")]
    WriterStopped(String),
}

/// What was found at open: every readable record, oldest first, and what was cut off.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The records, in sequence order.
    pub records: Vec<Record>,
    /// Bytes cut off the end of the last segment (a torn write).
    pub truncated_bytes: u64,
}

/// Counters of the log, readable from other threads.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Records made durable.
    pub records: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// fsync calls (one per group commit).
    pub syncs: AtomicU64,
    /// Segments deleted after checkpoints.
    pub segments_deleted: AtomicU64,
}

/// Called on the writer thread each time [`Wal::durable`] advances.
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// An open write-ahead log.
pub struct Wal {
    dir: PathBuf,
    next_seq: u64,
    durable: Arc<AtomicU64>,
    stats: Arc<WalStats>,
    writer: writer::Handle,
    tail: u64,
    waker: Arc<OnceLock<Waker>>,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, returning what it holds.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        Wal::open_after(dir, 0)
    }

    /// Opens the log knowing that a checkpoint covers every sequence up to `covered`: new
    /// records are numbered after it even when the log holds less (it was deleted or
    /// lost), so they are never mistaken for covered ones. A log wholly below `covered` is
    /// emptied.
    pub fn open_after(dir: &Path, covered: u64) -> Result<(Wal, Recovered), WalError> {
        std::fs::create_dir_all(dir).map_err(|source| WalError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let (mut segments, mut recovered) = segment::recover(dir)?;
        let mut last_seq = recovered.records.last().map_or(0, |r| r.seq);
        let newest_start = segments.last().map_or(1, |s| s.first_seq);
        if last_seq.max(newest_start.saturating_sub(1)) < covered {
            tracing::warn!(dir = %dir.display(), log_ends_at = last_seq, checkpoint_covers = covered, "write-ahead log behind the checkpoint: started afresh after it");
            for old in segments.drain(..) {
                std::fs::remove_file(&old.path).map_err(|source| WalError::Io {
                    path: old.path.clone(),
                    source,
                })?;
            }
            recovered.records.clear();
            last_seq = covered;
        }
        // Sequences continue after the last record, or after the newest segment's start
        // when it is empty (its name says where it begins).
        let next_seq = segments.last().map_or(1, |s| s.first_seq).max(last_seq + 1);
        let durable = Arc::new(AtomicU64::new(next_seq - 1));
        let stats = Arc::new(WalStats::default());
        let waker = Arc::new(OnceLock::new());
        let writer = writer::Handle::start(
            dir.to_path_buf(),
            segments,
            next_seq,
            durable.clone(),
            stats.clone(),
            waker.clone(),
        )?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                next_seq,
                durable,
                stats,
                writer,
                tail: 0,
                waker,
            },
            recovered,
        ))
    }

    /// Appends records (their bodies) and returns the sequence of the last one (or of the
    /// last record before, when `bodies` is empty). They are durable once
    /// [`Wal::durable`] reaches it.
    pub fn append<'a>(
        &mut self,
        bodies: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<u64, WalError> {
        let mut frames = Vec::new();
        for body in bodies {
            segment::encode(self.next_seq, body, &mut frames);
            self.next_seq += 1;
        }
        let last = self.next_seq - 1;
        if !frames.is_empty() {
            self.writer.append(frames, last)?;
        }
        Ok(last)
    }

    /// Sequence of the last record appended (0 before any).
    pub fn last_appended(&self) -> u64 {
        self.next_seq - 1
    }

    /// Every record up to this sequence is on disk and synced.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// A shared view of [`Wal::durable`], for waiting elsewhere.
    pub fn durable_handle(&self) -> Arc<AtomicU64> {
        self.durable.clone()
    }

    /// Sets what to call (on the writer thread) each time [`Wal::durable`] advances, so a
    /// caller waiting to acknowledge need not poll. Once per log: a second call is ignored.
    pub fn on_durable(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.waker.set(Box::new(wake));
    }

    /// Blocks until every record appended so far is durable (a clean shutdown, tests).
    pub fn sync(&self) -> Result<(), WalError> {
        self.writer.sync(self.last_appended())
    }

    /// Keeps at least the last `records` records before each checkpoint (the segments
    /// holding them) besides the newest segment it wholly covers: as many as a broker
    /// can redeliver. 0 (the default) keeps that newest segment only.
    pub fn keep_tail(&mut self, records: u64) {
        self.tail = records;
    }

    /// A checkpoint covering every record up to `seq` is durable: start a new segment and
    /// delete the segments no longer needed (all before the newest one wholly at or below
    /// `seq` and before the [`Wal::keep_tail`] records up to `seq`).
    pub fn checkpointed(&mut self, seq: u64) -> Result<(), WalError> {
        self.writer.checkpointed(seq, self.tail)
    }

    /// The log's counters.
    pub fn stats(&self) -> Arc<WalStats> {
        self.stats.clone()
    }

    /// The folder of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;
