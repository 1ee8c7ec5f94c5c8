//! The incident store: every alert as operators see it (its latest state), its timeline
//! (engine transitions and operator actions), and the audit log, in SQLite (embedded, the
//! default: one file, WAL mode, nothing to install) or PostgreSQL (production), behind one
//! [`Store`]. Later capabilities (playbook runs, drills, feeds) add their own tables through
//! new migrations here.
//!
//! Invariants:
//! - The schema is the versioned migrations in `migrations/<backend>/`, embedded in the
//!   binary and applied at [`Store::open`]; a database migrated by a newer binary is refused
//!   ([`StoreError::NewerSchema`]), never written to.
//! - [`Store::write`] commits a batch of changes in one transaction: all or nothing.
//! - An engine transition stored twice (replayed after a restart) is one timeline entry: it
//!   carries a `dedup` key, unique in the table.
//! - The same SQL text runs on both backends (`$n` parameters, numbered in order of first
//!   use, which SQLite maps to the same positions).

mod changes;
mod daily;
mod drills;
pub mod query;
mod rows;
mod runs;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;
mod write;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

pub use changes::{ChangeRow, MAX_CHANGES};
pub use daily::{IndicatorDayRow, QualityRow};
pub use drills::DrillRow;
pub use query::{AlertQuery, Page};
pub use rows::{Action, AlertRow, AuditRow, Change, Entry};
pub use runs::{OutboxRow, PlaybookVersionRow, RunEventRow, RunRow};
pub use webhooks::{AttemptRow, DeliveryRow, SubscriptionRow};
pub use writer::{StoreWriter, WriterHealth};

/// Default retention of resolved alerts and audit lines, days.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

/// A store failure, saying whether trying again can help.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database cannot be reached, is busy, or is full: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database was migrated by a newer Watchfloor (fatal: upgrade this binary).
    #[error("the store's schema is newer than this binary (migration {0} unknown here); run a Watchfloor at least as new as the one that migrated it")]
    NewerSchema(i64),
    /// The address or the schema is wrong (fatal).
    #[error("store: {0}")]
    Fatal(String),
    /// The writer task has stopped.
    #[error("the store writer has stopped")]
    Stopped,
}

impl StoreError {
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Configuration(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. } => StoreError::Fatal(e.to_string()),
            // A constraint violated or a value refused: the same batch would fail again.
            sqlx::Error::Database(d)
                if d.kind() != sqlx::error::ErrorKind::Other
                    || d.code().is_some_and(|c| c.starts_with("22")) =>
            {
                StoreError::Fatal(e.to_string())
            }
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::NewerSchema(v),
            sqlx::migrate::MigrateError::Execute(e) => StoreError::from(e),
            other => StoreError::Fatal(other.to_string()),
        }
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool: the same code, type-checked
/// once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The incident store (cheap to clone: a connection pool).
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    backend: &'static str,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend)
    }
}

impl Store {
    /// Opens `url` — `postgres://…` (or `postgresql://…`), `sqlite:<path>` or a plain file
    /// path (SQLite, created when missing) — and applies the migrations this binary knows.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            return Ok(Store {
                pool: Pool::Postgres(pool),
                backend: "postgres",
            });
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Fatal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // An action answered 200 survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            backend: "sqlite",
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The newest migration applied.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: (i64,) = on_pool!(self, pool => sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success").fetch_one(pool).await?);
        Ok(v.0)
    }

    /// Deletes resolved alerts (with their timelines) resolved before `before`, audit
    /// lines older than it, and finished webhook deliveries (with their attempts) recorded
    /// before it; returns how many alerts went.
    pub async fn prune(&self, before: i64) -> Result<u64, StoreError> {
        let gone = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM alert_events WHERE alert_id IN (SELECT alert_id FROM alerts WHERE state = 'resolved' AND resolved_at < $1)")
                .bind(before)
                .execute(&mut *tx)
                .await?;
            let gone = sqlx::query("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM audit WHERE at < $1").bind(before).execute(&mut *tx).await?;
            // The webhook outbox: finished deliveries (delivered or given up) and their log.
            sqlx::query("DELETE FROM webhook_attempts WHERE delivery IN (SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1)")
                .bind(before).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1")
                .bind(before).execute(&mut *tx).await?;
            tx.commit().await?;
            gone
        });
        Ok(gone)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
