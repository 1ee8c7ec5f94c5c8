//! Counters of a running pipeline, shared by its sources, its sinks, the engine task and
//! the server that reports them (`/metrics`, `/healthz`). Atomic or briefly locked: never
//! held across an await.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// Counters of a running pipeline, readable from other tasks.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Messages received from sources.
    pub received: AtomicU64,
    /// Events accepted by the engine.
    pub accepted: AtomicU64,
    /// Alert transitions written to the outputs.
    pub transitions: AtomicU64,
    /// Messages waiting in the queue for the engine.
    pub queue_depth: AtomicU64,
    /// Outputs that keep failing or gave up, by name: why, and since when.
    pub output_stuck: Mutex<BTreeMap<String, String>>,
    /// Records an output that gave up did not deliver, written to its undelivered file.
    pub undelivered: AtomicU64,
    /// Rejections by reason code.
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Messages a broker sent again that were already in the write-ahead log: acknowledged,
    /// not processed twice.
    pub redelivered: AtomicU64,
    /// Write-ahead log: the last sequence known durable.
    pub wal_durable: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// Size of the last checkpoint, bytes.
    pub checkpoint_bytes: AtomicU64,
    /// Time the engine stopped to serialise the last checkpoint, microseconds.
    pub checkpoint_serialize_us: AtomicU64,
    /// Time the last checkpoint took to reach the disk (write, fsync, rename; in the
    /// background), microseconds.
    pub checkpoint_write_us: AtomicU64,
}

impl PipelineStats {
    /// Records that the output `name` is stuck (`Some(why)`) or works again (`None`).
    pub fn set_output_stuck(&self, name: &str, reason: Option<String>) {
        let mut stuck = self.output_stuck.lock().expect("stats lock");
        match reason {
            Some(why) => {
                stuck.insert(name.to_string(), why);
            }
            None => {
                stuck.remove(name);
            }
        }
    }

    /// Why outputs are stuck (`name: why`, joined by `; `), if one is.
    pub fn output_stuck(&self) -> Option<String> {
        let stuck = self.output_stuck.lock().expect("stats lock");
        (!stuck.is_empty()).then(|| {
            stuck
                .iter()
                .map(|(name, why)| format!("{name}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Total rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
}
