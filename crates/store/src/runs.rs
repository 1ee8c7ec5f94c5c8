//! Playbook runs in the store (migration 0003): the versions runs pinned, each run's state
//! (JSON, with the columns screens filter on), its timeline, and the outbox of what runs
//! asked to be done.
//!
//! Invariants: [`Store::save_runs`] writes versions, runs, timeline lines and outbox
//! entries of one change in one transaction (all or nothing); a timeline line or an outbox
//! entry written twice (a change retried after a failure) stays one; an outbox entry is
//! pending until [`Store::outbox_attempt`] marks it done, so after a crash the pending ones are
//! carried out again with the same id.

use serde::Serialize;

use crate::{on_pool, Store, StoreError};

/// A playbook version a run pinned.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PlaybookVersionRow {
    /// Playbook id.
    pub playbook: String,
    /// Version (digest of the file's text).
    pub version: String,
    /// The file it came from.
    pub file: String,
    /// The file's text.
    pub text: String,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Playbook id.
    pub playbook: String,
    /// Pinned version.
    pub version: String,
    /// Its alert.
    pub alert_id: Option<String>,
    /// Its commune.
    pub zone: Option<String>,
    /// Its sectors, ` a b ` (a space each side, like alerts).
    pub sectors: String,
    /// A drill's exercise id.
    pub exercise: Option<String>,
    /// Started, epoch ms.
    pub started_at: i64,
    /// Finished, epoch ms.
    pub finished_at: Option<i64>,
    /// The earliest due time of its open steps.
    pub next_due: Option<i64>,
    /// The run as JSON.
    pub state: String,
}

/// A line of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunEventRow {
    /// Run id.
    pub run: String,
    /// Position in the run's timeline.
    pub seq: i64,
    /// When, epoch ms.
    pub at: i64,
    /// The step.
    pub step: Option<String>,
    /// What happened.
    pub event: String,
    /// Who.
    pub actor: Option<String>,
    /// A value, as JSON.
    pub value: Option<String>,
    /// A note.
    pub note: Option<String>,
}

/// Something a run asked to be done.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    /// Deterministic id (`<run>/<step>/<n>`…).
    pub id: String,
    /// Run id.
    pub run: String,
    /// The effect, as JSON.
    pub effect: String,
    /// Recorded, epoch ms.
    pub created_at: i64,
    /// Carried out, epoch ms.
    pub done_at: Option<i64>,
    /// Attempts so far.
    pub attempts: i64,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

const VERSION_INSERT: &str = "INSERT INTO playbook_versions (playbook, version, file, text) VALUES ($1, $2, $3, $4) ON CONFLICT (playbook, version) DO NOTHING";
const RUN_UPSERT: &str = "INSERT INTO playbook_runs (id, playbook, version, alert_id, zone, sectors, exercise, started_at, finished_at, next_due, state) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO UPDATE SET \
     zone = excluded.zone, sectors = excluded.sectors, finished_at = excluded.finished_at, next_due = excluded.next_due, state = excluded.state";
const EVENT_INSERT: &str = "INSERT INTO playbook_events (run, seq, at, step, event, actor, value, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run, seq) DO NOTHING";
const OUTBOX_INSERT: &str = "INSERT INTO playbook_outbox (id, run, effect, created_at, done_at, attempts, last_error) VALUES ($1, $2, $3, $4, NULL, 0, NULL) ON CONFLICT (id) DO NOTHING";
const RUNS_SINCE: &str = "SELECT id, playbook, version, alert_id, zone, sectors, exercise, started_at, finished_at, next_due, state \
     FROM playbook_runs WHERE finished_at IS NULL OR finished_at >= $1 ORDER BY started_at, id";
const RUN_BY_ID: &str = "SELECT id, playbook, version, alert_id, zone, sectors, exercise, started_at, finished_at, next_due, state \
     FROM playbook_runs WHERE id = $1";

impl Store {
    /// Writes one change of the runs in one transaction.
    pub async fn save_runs(
        &self,
        versions: &[PlaybookVersionRow],
        runs: &[RunRow],
        events: &[RunEventRow],
        outbox: &[OutboxRow],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for v in versions {
                sqlx::query(VERSION_INSERT).bind(&v.playbook).bind(&v.version).bind(&v.file).bind(&v.text)
                    .execute(&mut *tx).await?;
            }
            for r in runs {
                sqlx::query(RUN_UPSERT)
                    .bind(&r.id).bind(&r.playbook).bind(&r.version).bind(&r.alert_id).bind(&r.zone)
                    .bind(&r.sectors).bind(&r.exercise).bind(r.started_at).bind(r.finished_at)
                    .bind(r.next_due).bind(&r.state)
                    .execute(&mut *tx).await?;
            }
            for e in events {
                sqlx::query(EVENT_INSERT)
                    .bind(&e.run).bind(e.seq).bind(e.at).bind(&e.step).bind(&e.event).bind(&e.actor)
                    .bind(&e.value).bind(&e.note)
                    .execute(&mut *tx).await?;
            }
            for o in outbox {
                sqlx::query(OUTBOX_INSERT).bind(&o.id).bind(&o.run).bind(&o.effect).bind(o.created_at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every pinned playbook version.
    pub async fn playbook_versions(&self) -> Result<Vec<PlaybookVersionRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, PlaybookVersionRow>("SELECT playbook, version, file, text FROM playbook_versions")
                .fetch_all(pool).await?
        }))
    }

    /// The runs not finished, and those finished at or after `since`.
    pub async fn runs_since(&self, since: i64) -> Result<Vec<RunRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RunRow>(RUNS_SINCE).bind(since).fetch_all(pool).await?
        }))
    }

    /// One run.
    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RunRow>(RUN_BY_ID).bind(id).fetch_optional(pool).await?
        }))
    }

    /// A run's timeline, in order.
    pub async fn run_events(&self, run: &str) -> Result<Vec<RunEventRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RunEventRow>("SELECT run, seq, at, step, event, actor, value, note FROM playbook_events WHERE run = $1 ORDER BY seq")
                .bind(run).fetch_all(pool).await?
        }))
    }

    /// Every run's timeline lines between `from` and `to` (epoch ms, `to` excluded), for
    /// reports and metrics.
    pub async fn run_events_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<RunEventRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RunEventRow>("SELECT run, seq, at, step, event, actor, value, note FROM playbook_events WHERE at >= $1 AND at < $2 ORDER BY at, run, seq")
                .bind(from).bind(to).fetch_all(pool).await?
        }))
    }

    /// The outbox entries not carried out yet, oldest first.
    pub async fn outbox_pending(&self) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, OutboxRow>("SELECT id, run, effect, created_at, done_at, attempts, last_error FROM playbook_outbox WHERE done_at IS NULL ORDER BY created_at, id")
                .fetch_all(pool).await?
        }))
    }

    /// Records an attempt at an outbox entry: done at `done_at`, or failed with `error`.
    pub async fn outbox_attempt(
        &self,
        id: &str,
        done_at: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE playbook_outbox SET attempts = attempts + 1, done_at = $2, last_error = $3 WHERE id = $1")
                .bind(id).bind(done_at).bind(error).execute(pool).await?;
        });
        Ok(())
    }
}
