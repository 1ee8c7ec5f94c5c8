//! Engine checkpoints on disk: read at start (an unreadable one set aside, loudly), written
//! atomically (temporary file, fsync, rename, folder fsync) on a thread of their own so the
//! engine goes on while the bytes reach the disk.
//!
//! Invariant: a checkpoint is only ever reported written ([`Checkpointer::poll`]) once it
//! is durable under its final name; only then may the write-ahead log drop what it covers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use watchfloor_engine::{Engine, EngineConfig, RuleSet};

/// The engine, resumed from the checkpoint at `path` when there is a readable one (an
/// unreadable one is set aside as `<path>.unreadable` and the engine starts empty), with the
/// source positions the checkpoint covered.
pub fn start_engine(
    rules: RuleSet,
    config: EngineConfig,
    path: Option<&Path>,
) -> (Engine, BTreeMap<String, String>) {
    let Some(path) = path.filter(|p| p.exists()) else {
        return (Engine::new(rules, config), BTreeMap::new());
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the checkpoint; starting empty");
            return (Engine::new(rules, config), BTreeMap::new());
        }
    };
    match Engine::restore(rules.clone(), config.clone(), &bytes) {
        Ok((engine, restored)) => {
            tracing::info!(
                path = %path.display(),
                rules_resumed = restored.kept.len(),
                rules_dropped = ?restored.dropped,
                positions = ?restored.positions,
                "engine state restored from the checkpoint"
            );
            (engine, restored.positions)
        }
        Err(e) => {
            let aside = path.with_extension("unreadable");
            let _ = std::fs::rename(path, &aside);
            tracing::error!(path = %path.display(), error = %e, kept_as = %aside.display(), "checkpoint unreadable; starting empty");
            (Engine::new(rules, config), BTreeMap::new())
        }
    }
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// A checkpoint that finished writing.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The write-ahead log sequence it covers.
    pub covers: u64,
    /// Its size.
    pub bytes: usize,
    /// How long the write (with fsyncs) took.
    pub took: Duration,
}

/// Writes checkpoints in the background, one at a time.
pub struct Checkpointer {
    path: PathBuf,
    writing: Option<mpsc::Receiver<std::io::Result<Written>>>,
}

impl Checkpointer {
    /// Checkpoints go to `path`.
    pub fn new(path: PathBuf) -> Checkpointer {
        Checkpointer {
            path,
            writing: None,
        }
    }

    /// Is a write still running?
    pub fn busy(&self) -> bool {
        self.writing.is_some()
    }

    /// Starts writing `bytes` (covering log sequence `covers`) on a thread.
    pub fn start(&mut self, bytes: Vec<u8>, covers: u64) {
        debug_assert!(!self.busy());
        let (tx, rx) = mpsc::channel();
        let path = self.path.clone();
        let spawned = std::thread::Builder::new()
            .name("watchfloor-checkpoint".into())
            .spawn(move || {
                let start = Instant::now();
                let result = write_atomically(&path, &bytes).map(|()| Written {
                    covers,
                    bytes: bytes.len(),
                    took: start.elapsed(),
                });
                let _ = tx.send(result);
            });
        match spawned {
            Ok(_) => self.writing = Some(rx),
            Err(e) => {
                tracing::error!(error = %e, "checkpoint thread not started; the next one will try again")
            }
        }
    }

    /// The write that finished since the last call, if any (a failed one is logged and
    /// forgotten: the previous checkpoint and the log still cover everything).
    pub fn poll(&mut self) -> Option<Written> {
        let rx = self.writing.as_ref()?;
        let result = match rx.try_recv() {
            Ok(result) => result,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(std::io::Error::other("checkpoint thread ended"))
            }
        };
        self.writing = None;
        match result {
            Ok(written) => Some(written),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "checkpoint not written; the previous one and the write-ahead log still cover the state");
                None
            }
        }
    }

    /// Waits for a running write (a clean shutdown).
    pub fn wait(&mut self) -> Option<Written> {
        let rx = self.writing.take()?;
        match rx.recv() {
            Ok(Ok(written)) => Some(written),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "checkpoint not written");
                None
            }
            Err(_) => None,
        }
    }
}
