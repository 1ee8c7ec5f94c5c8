//! The store writer: one task that takes changes from the engine's path without ever
//! making it wait, and writes them in batches (one transaction per batch), in the order
//! they were queued. Operator actions have a lane of their own, written at the head of the
//! next batch whatever the backlog (they change only their own columns and carry the
//! alert's row in case its firing is still queued), and their caller waits for the commit
//! ([`StoreWriter::commit`]), so "answered 200" means "in the database" even during a storm.
//!
//! Failure: a batch the database cannot take now (unreachable, full) is retried with a
//! capped backoff while the writer reports itself degraded ([`WriterHealth`]); changes keep
//! queueing (counted in `backlog`) up to a bound ([`DEFAULT_MAX_QUEUED`]). Past it the
//! engine's changes are shed, not queued (memory stays bounded through a long outage):
//! counted in `shed`, and the jobs finished from the first shed one on never count as
//! durable ([`WriterHealth::durable_jobs`]), so the pipeline writes no checkpoint that
//! covers them; its write-ahead log keeps their input, and a restart once the database is
//! back replays them into the store. A batch the database refuses for good (a value it
//! cannot hold) is written change by change and the refused ones are logged and counted,
//! never retried forever. A waiting caller that gave up (timed out) has its change dropped
//! unwritten if the writer had not reached it yet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::rows::{AuditRow, Change};
use crate::{Store, StoreError};

/// Most changes written in one transaction.
const MAX_BATCH: usize = 4096;
/// Longest pause between retries of a failing batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Changes that may wait for the database before the engine's are shed.
pub const DEFAULT_MAX_QUEUED: u64 = 250_000;

/// The writer's state, for `/healthz` and `/metrics`.
#[derive(Debug, Default)]
pub struct WriterHealth {
    /// Changes queued and not yet committed.
    pub backlog: AtomicU64,
    /// Changes committed.
    pub written: AtomicU64,
    /// The number of the last job queued (every `enqueue` and `commit` is one).
    pub queued_jobs: AtomicU64,
    /// Every job up to this number is finished (committed, or refused for good, or given
    /// up by its caller): jobs finish in the order they were queued.
    pub finished_jobs: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Failed attempts (each retried or, if refused for good, skipped).
    pub failures: AtomicU64,
    /// Changes the database refused for good (logged, not stored).
    pub refused: AtomicU64,
    /// Changes from the engine's path not queued because the backlog was full.
    pub shed: AtomicU64,
    /// The number of the first job shed (0: none).
    pub first_shed_job: AtomicU64,
    /// Whether the last attempt failed.
    pub degraded: AtomicBool,
    /// The last failure.
    pub last_error: Mutex<Option<String>>,
}

impl WriterHealth {
    /// Every job up to this number is durable in the database: the finished ones, but
    /// never one at or after the first shed job (its changes were not written).
    pub fn durable_jobs(&self) -> u64 {
        let finished = self.finished_jobs.load(Ordering::SeqCst);
        match self.first_shed_job.load(Ordering::SeqCst) {
            0 => finished,
            first => finished.min(first - 1),
        }
    }
}

struct Job {
    seq: u64,
    changes: Vec<Change>,
    audit: Vec<AuditRow>,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// A handle on the writer task (cheap to clone).
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::UnboundedSender<Job>,
    /// Operators' actions: written before whatever transitions are queued (an action
    /// changes only its own columns, and carries the alert's row for when its transition
    /// is still queued), so an acknowledgement never waits behind an alert storm.
    prio_tx: mpsc::UnboundedSender<Job>,
    /// Numbers jobs and queues them as one step, so jobs queue in number order.
    order: Arc<Mutex<()>>,
    health: Arc<WriterHealth>,
    store: Store,
    max_queued: u64,
}

impl StoreWriter {
    /// Starts the writer task on the current tokio runtime; it stops once every handle is
    /// dropped and the queue is written.
    pub fn start(store: Store) -> (StoreWriter, tokio::task::JoinHandle<()>) {
        StoreWriter::start_bounded(store, DEFAULT_MAX_QUEUED)
    }

    /// [`StoreWriter::start`] with another bound on the changes waiting for the database.
    pub fn start_bounded(
        store: Store,
        max_queued: u64,
    ) -> (StoreWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (prio_tx, prio_rx) = mpsc::unbounded_channel();
        let health = Arc::new(WriterHealth::default());
        let task = tokio::spawn(run(store.clone(), prio_rx, rx, health.clone()));
        (
            StoreWriter {
                tx,
                prio_tx,
                order: Arc::new(Mutex::new(())),
                health,
                store,
                max_queued,
            },
            task,
        )
    }

    /// The store written to (for reads).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The writer's health.
    pub fn health(&self) -> &Arc<WriterHealth> {
        &self.health
    }

    /// Queues changes without waiting (the engine's path). Alert changes are shed while
    /// the backlog is at its bound (audit lines are always queued).
    pub fn enqueue(&self, changes: Vec<Change>, audit: Vec<AuditRow>) {
        let n = (changes.len() + audit.len()) as u64;
        let sent = {
            let _order = self.order.lock().expect("order lock");
            let seq = self.health.queued_jobs.fetch_add(1, Ordering::SeqCst) + 1;
            if !changes.is_empty() && self.health.backlog.load(Ordering::Relaxed) >= self.max_queued
            {
                if self
                    .health
                    .shed
                    .fetch_add(changes.len() as u64, Ordering::Relaxed)
                    == 0
                {
                    tracing::error!(
                        waiting = self.max_queued,
                        "incident store too far behind: alert changes are no longer queued; the write-ahead log keeps their input, restart once the database is back to store them"
                    );
                }
                let _ = self.health.first_shed_job.compare_exchange(
                    0,
                    seq,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                if audit.is_empty() {
                    return;
                }
                self.health
                    .backlog
                    .fetch_add(audit.len() as u64, Ordering::Relaxed);
                return self.queue_audit(seq, audit);
            }
            self.health.backlog.fetch_add(n, Ordering::Relaxed);
            self.tx.send(Job {
                seq,
                changes,
                audit,
                done: None,
            })
        };
        if sent.is_err() {
            self.health.backlog.fetch_sub(n, Ordering::Relaxed);
            tracing::error!("store writer stopped; changes not stored");
        }
    }

    /// Queues a job of audit lines only (numbered `seq` already, under the order lock).
    fn queue_audit(&self, seq: u64, audit: Vec<AuditRow>) {
        let n = audit.len() as u64;
        let job = Job {
            seq,
            changes: Vec::new(),
            audit,
            done: None,
        };
        if self.tx.send(job).is_err() {
            self.health.backlog.fetch_sub(n, Ordering::Relaxed);
            tracing::error!("store writer stopped; audit lines not stored");
        }
    }

    /// Queues changes and waits until they are committed, at most `timeout`; on a timeout
    /// the changes are dropped if not yet written and `Unavailable` is returned.
    pub async fn commit(
        &self,
        changes: Vec<Change>,
        audit: Vec<AuditRow>,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let n = (changes.len() + audit.len()) as u64;
        self.health.backlog.fetch_add(n, Ordering::Relaxed);
        // Not numbered: the numbers track the queued transitions the checkpoints wait for.
        let sent = self.prio_tx.send(Job {
            seq: 0,
            changes,
            audit,
            done: Some(done),
        });
        if sent.is_err() {
            self.health.backlog.fetch_sub(n, Ordering::Relaxed);
            return Err(StoreError::Stopped);
        }
        match tokio::time::timeout(timeout, committed).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Stopped),
            Err(_) => Err(StoreError::Unavailable(format!(
                "not committed within {timeout:?}{}",
                self.health
                    .last_error
                    .lock()
                    .expect("health lock")
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))),
        }
    }
}

async fn run(
    store: Store,
    mut prio: mpsc::UnboundedReceiver<Job>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    health: Arc<WriterHealth>,
) {
    loop {
        let first = tokio::select! {
            biased;
            Some(job) = prio.recv() => job,
            Some(job) = rx.recv() => job,
            else => return,
        };
        let mut jobs = vec![first];
        let mut size = jobs[0].changes.len() + jobs[0].audit.len();
        // Operators' actions first, then queued transitions up to a batch.
        while let Ok(job) = prio.try_recv() {
            size += job.changes.len() + job.audit.len();
            jobs.push(job);
        }
        while size < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.changes.len() + job.audit.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        write_batch(&store, jobs, &health).await;
    }
}

/// Writes the jobs in one transaction, retrying while the database is unavailable.
async fn write_batch(store: &Store, mut jobs: Vec<Job>, health: &WriterHealth) {
    let mut delay = Duration::from_millis(100);
    loop {
        // A caller that stopped waiting no longer wants its change (it was told 503).
        let (wanted, dropped): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|j| j.done.as_ref().is_none_or(|d| !d.is_closed()));
        jobs = wanted;
        for j in dropped {
            health
                .backlog
                .fetch_sub((j.changes.len() + j.audit.len()) as u64, Ordering::Relaxed);
            health.finished_jobs.fetch_max(j.seq, Ordering::SeqCst);
        }
        if jobs.is_empty() {
            return;
        }
        let changes: Vec<Change> = jobs
            .iter()
            .flat_map(|j| j.changes.iter().cloned())
            .collect();
        let audit: Vec<AuditRow> = jobs.iter().flat_map(|j| j.audit.iter().cloned()).collect();
        match store.write(&changes, &audit).await {
            Ok(()) => {
                finish(jobs, health, changes.len() + audit.len(), Ok(()));
                health.batches.fetch_add(1, Ordering::Relaxed);
                health.degraded.store(false, Ordering::Relaxed);
                return;
            }
            Err(e) if e.is_retryable() => {
                health.failures.fetch_add(1, Ordering::Relaxed);
                if !health.degraded.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, changes = changes.len(), "store write failed; retrying");
                }
                *health.last_error.lock().expect("health lock") = Some(e.to_string());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                health.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "store refused a batch; writing it change by change");
                for job in jobs {
                    let mut result = Ok(());
                    for c in &job.changes {
                        if let Err(e) = store.write(std::slice::from_ref(c), &[]).await {
                            health.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, alert = c.alert_id(), "change refused by the store; not stored");
                            result = Err(e);
                        }
                    }
                    if let Err(e) = store.write(&[], &job.audit).await {
                        health
                            .refused
                            .fetch_add(job.audit.len() as u64, Ordering::Relaxed);
                        tracing::error!(error = %e, "audit lines refused by the store; not stored");
                        result = Err(e);
                    }
                    let n = job.changes.len() + job.audit.len();
                    finish(vec![job], health, n, result);
                }
                return;
            }
        }
    }
}

fn finish(jobs: Vec<Job>, health: &WriterHealth, written: usize, result: Result<(), StoreError>) {
    health.written.fetch_add(written as u64, Ordering::Relaxed);
    for job in jobs {
        health.backlog.fetch_sub(
            (job.changes.len() + job.audit.len()) as u64,
            Ordering::Relaxed,
        );
        health.finished_jobs.fetch_max(job.seq, Ordering::SeqCst);
        if let Some(done) = job.done {
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Fatal(e.to_string())),
            });
        }
    }
}
