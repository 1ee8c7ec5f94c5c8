//! Drills in the store (migration 0004): each exercise's pinned script, status, progress
//! (JSON) and after-action report (JSON).
//!
//! Invariants: [`Store::save_drill`] writes the whole row at once (an upsert by exercise
//! id), so a crash leaves the last saved progress; the script's text is written with the
//! first save and never changed, so a restart resumes the drill as it was started.

use serde::Serialize;

use crate::{on_pool, Store, StoreError};

/// A drill run.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DrillRow {
    /// The exercise id.
    pub id: String,
    /// The drill's id in its script.
    pub drill: String,
    /// The script's file.
    pub file: String,
    /// The script's text.
    pub text: String,
    /// `running`, `paused`, `finished` or `aborted`.
    pub status: String,
    /// Who started it.
    pub started_by: String,
    /// Started, epoch ms.
    pub started_at: i64,
    /// Ended, epoch ms.
    pub ended_at: Option<i64>,
    /// Progress as JSON.
    pub progress: String,
    /// The after-action report as JSON, once ended.
    pub report: Option<String>,
}

const UPSERT: &str = "INSERT INTO drills (id, drill, file, text, status, started_by, started_at, ended_at, progress, report) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
     status = excluded.status, ended_at = excluded.ended_at, progress = excluded.progress, report = excluded.report";
const BY_ID: &str = "SELECT id, drill, file, text, status, started_by, started_at, ended_at, progress, report FROM drills WHERE id = $1";
const ALL: &str = "SELECT id, drill, file, text, status, started_by, started_at, ended_at, progress, report FROM drills ORDER BY started_at DESC, id";
const OPEN: &str = "SELECT id, drill, file, text, status, started_by, started_at, ended_at, progress, report FROM drills WHERE status IN ('running', 'paused') ORDER BY started_at, id";

impl Store {
    /// Writes a drill's row (its script only the first time).
    pub async fn save_drill(&self, d: &DrillRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(UPSERT)
                .bind(&d.id).bind(&d.drill).bind(&d.file).bind(&d.text).bind(&d.status)
                .bind(&d.started_by).bind(d.started_at).bind(d.ended_at).bind(&d.progress)
                .bind(&d.report)
                .execute(pool).await?;
        });
        Ok(())
    }

    /// One drill.
    pub async fn drill(&self, id: &str) -> Result<Option<DrillRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DrillRow>(BY_ID).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Every drill, newest first.
    pub async fn drills(&self) -> Result<Vec<DrillRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DrillRow>(ALL).fetch_all(pool).await?
        }))
    }

    /// The drills not ended (running or paused), to resume after a restart.
    pub async fn open_drills(&self) -> Result<Vec<DrillRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DrillRow>(OPEN).fetch_all(pool).await?
        }))
    }
}
