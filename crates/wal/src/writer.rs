//! The writer thread: writes appended frames in groups, one fsync per group, and publishes
//! how far the log is durable (then calls the waker set with [`crate::Wal::on_durable`]);
//! rotates and deletes segments after checkpoints.
//!
//! Group commit without a timer: a group is everything queued when the writer gets to it,
//! so appends made while an fsync runs go out together with the next one. The writer
//! never waits for more: an acknowledgement's delay is the fsync itself, which matters
//! because a broker bounds the messages it keeps unacknowledged (rumqttd: 100 per
//! subscriber), so the input rate is that window divided by the round trip.
//!
//! A failed write or sync is retried (with backoff, the file cut back to where the group
//! began) rather than given up: nothing after it can become durable, so acknowledgements
//! stop and backpressure builds, exactly as for a failing output.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::segment::{segment_path, sync_dir, SegmentFile};
use crate::{WalError, WalStats};

enum Command {
    Append { frames: Vec<u8>, last: u64 },
    Sync { upto: u64, reply: mpsc::Sender<()> },
    Checkpointed { seq: u64, keep: u64 },
}

/// The application's side of the writer thread.
pub(crate) struct Handle {
    tx: mpsc::Sender<Command>,
}

impl Handle {
    pub(crate) fn start(
        dir: PathBuf,
        segments: Vec<SegmentFile>,
        next_seq: u64,
        durable: Arc<AtomicU64>,
        stats: Arc<WalStats>,
        waker: Arc<OnceLock<crate::Waker>>,
    ) -> Result<Handle, WalError> {
        let mut writer = Writer {
            dir,
            segments,
            file: None,
            current_has_records: false,
            written: next_seq - 1,
            durable,
            stats,
            waker,
        };
        writer.open_current(next_seq)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("watchfloor-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| WalError::Io {
                path: PathBuf::from("<wal thread>"),
                source,
            })?;
        Ok(Handle { tx })
    }

    fn send(&self, command: Command) -> Result<(), WalError> {
        self.tx
            .send(command)
            .map_err(|_| WalError::WriterStopped("the writer thread ended".into()))
    }

    pub(crate) fn append(&self, frames: Vec<u8>, last: u64) -> Result<(), WalError> {
        self.send(Command::Append { frames, last })
    }

    pub(crate) fn sync(&self, upto: u64) -> Result<(), WalError> {
        let (reply, done) = mpsc::channel();
        self.send(Command::Sync { upto, reply })?;
        done.recv()
            .map_err(|_| WalError::WriterStopped("the writer thread ended".into()))
    }

    pub(crate) fn checkpointed(&self, seq: u64, keep: u64) -> Result<(), WalError> {
        self.send(Command::Checkpointed { seq, keep })
    }
}

struct Writer {
    dir: PathBuf,
    /// Every segment on disk, oldest first; the last one is being written.
    segments: Vec<SegmentFile>,
    file: Option<std::fs::File>,
    current_has_records: bool,
    /// Sequence of the last record written (synced or not).
    written: u64,
    durable: Arc<AtomicU64>,
    stats: Arc<WalStats>,
    /// Called once a group is durable.
    waker: Arc<OnceLock<crate::Waker>>,
}

impl Writer {
    /// Opens the newest segment for appending, or creates one starting at `next_seq`.
    fn open_current(&mut self, next_seq: u64) -> Result<(), WalError> {
        if self.segments.is_empty() {
            self.segments.push(SegmentFile {
                first_seq: next_seq,
                path: segment_path(&self.dir, next_seq),
            });
        }
        let current = self.segments.last().expect("one segment at least");
        let io = |source| WalError::Io {
            path: current.path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current.path)
            .map_err(io)?;
        self.current_has_records = file.metadata().map_err(io)?.len() > 0;
        sync_dir(&self.dir).map_err(io)?;
        self.file = Some(file);
        Ok(())
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            // Everything queued meanwhile (appended during the last fsync) joins the group;
            // waiting for more would only delay the acknowledgements.
            group.extend(rx.try_iter());
            let mut frames = Vec::new();
            let mut last = self.written;
            let mut waiters = Vec::new();
            for command in group {
                match command {
                    Command::Append { frames: f, last: l } => {
                        frames.extend_from_slice(&f);
                        last = l;
                    }
                    Command::Sync { upto, reply } => waiters.push((upto, reply)),
                    Command::Checkpointed { seq, keep } => {
                        // What came before the checkpoint goes into the old segment.
                        self.write_group(&frames, last);
                        frames.clear();
                        self.rotate(seq, keep);
                    }
                }
            }
            self.write_group(&frames, last);
            for (upto, reply) in waiters {
                debug_assert!(upto <= self.written);
                let _ = reply.send(());
            }
        }
    }

    /// Writes and syncs one group, retrying until it succeeds.
    fn write_group(&mut self, frames: &[u8], last: u64) {
        if frames.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match self.try_write(frames) {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.dir.display(), "write-ahead log write failed; retrying (input stays unacknowledged)");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.stats
            .records
            .fetch_add(last - self.written, Ordering::Relaxed);
        self.written = last;
        self.current_has_records = true;
        self.durable.store(last, Ordering::Release);
        self.stats
            .bytes
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(wake) = self.waker.get() {
            wake();
        }
    }

    fn try_write(&mut self, frames: &[u8]) -> std::io::Result<()> {
        let file = self.file.as_mut().expect("a segment is open");
        let before = file.metadata()?.len();
        let result = file.write_all(frames).and_then(|()| file.sync_data());
        if result.is_err() {
            // Cut a partial group off, so the retry leaves no garbage in the middle.
            let _ = file.set_len(before);
        }
        result
    }

    /// Starts a new segment after a checkpoint at `seq` and deletes the old ones.
    fn rotate(&mut self, seq: u64, keep: u64) {
        if self.current_has_records {
            let next = self.written + 1;
            self.segments.push(SegmentFile {
                first_seq: next,
                path: segment_path(&self.dir, next),
            });
            if let Err(e) = self.open_current(next) {
                tracing::error!(error = %e, "write-ahead log: new segment not created; writing on in the old one");
                self.segments.pop();
            }
        }
        // Segment `i` holds nothing above `upto` (the next one starts at or below upto + 1).
        let wholly_at_or_below = |i: usize, upto: u64, segments: &[SegmentFile]| {
            segments
                .get(i + 1)
                .is_some_and(|next| next.first_seq.saturating_sub(1) <= upto)
        };
        // The newest segment wholly at or below `seq` is kept, and every segment holding
        // one of the last `keep` records up to `seq` (the redelivery tail); older ones go.
        let Some(newest_covered) = (0..self.segments.len())
            .rev()
            .find(|&i| wholly_at_or_below(i, seq, &self.segments))
        else {
            return;
        };
        let cutoff = seq.saturating_sub(keep);
        let keep_from = (0..newest_covered)
            .find(|&i| !wholly_at_or_below(i, cutoff, &self.segments))
            .unwrap_or(newest_covered);
        for old in self.segments.drain(..keep_from) {
            match std::fs::remove_file(&old.path) {
                Ok(()) => {
                    self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %old.path.display(), "old write-ahead log segment not deleted")
                }
            }
        }
        let _ = sync_dir(&self.dir);
    }
}
