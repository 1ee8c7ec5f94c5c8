//! Writing: a batch of alert changes and audit lines in one transaction. A transition
//! writes the engine's columns (inserting the alert when new, keeping an acknowledged
//! alert acknowledged); an action writes only its own columns.
//!
//! Speed: consecutive transitions of distinct alerts go in one multi-row upsert (up to
//! [`ROWS`] rows; PostgreSQL refuses to update one row twice in a statement, so a repeated
//! alert starts a new one), the timeline lines and audit lines in multi-row inserts in
//! their order (no foreign key ties them to the rows). A statement is one round trip to
//! PostgreSQL: per-change statements capped a storm at about 2,500 transitions/s.

use std::collections::HashSet;

use crate::rows::{rank, Action, AlertRow, AuditRow, Change};
use crate::{on_pool, Store, StoreError};

/// Rows in one multi-row statement (18 parameters each: within both backends' limits).
const ROWS: usize = 500;

const UPSERT_HEAD: &str = "INSERT INTO alerts (alert_id, rule, key, state, severity, severity_rank, fired_at, updated_at, resolved_at, value, message, labels, ward, district, kind, lat, lon, sectors) ";
const UPSERT_TAIL: &str = " ON CONFLICT (alert_id) DO UPDATE SET \
     state = CASE WHEN excluded.state = 'resolved' OR alerts.state = 'resolved' THEN 'resolved' ELSE alerts.state END, \
     severity = excluded.severity, severity_rank = excluded.severity_rank, \
     updated_at = CASE WHEN excluded.updated_at > alerts.updated_at THEN excluded.updated_at ELSE alerts.updated_at END, \
     resolved_at = COALESCE(alerts.resolved_at, excluded.resolved_at), \
     value = COALESCE(excluded.value, alerts.value), message = excluded.message, labels = excluded.labels, \
     ward = excluded.ward, district = excluded.district, kind = excluded.kind, lat = excluded.lat, lon = excluded.lon, sectors = excluded.sectors";

const REOPEN: &str = "UPDATE alerts SET state = CASE WHEN ack_by IS NULL THEN 'firing' ELSE 'acknowledged' END, \
     resolved_at = NULL, updated_at = CASE WHEN $1 > updated_at THEN $1 ELSE updated_at END WHERE alert_id = $2";
const ACKNOWLEDGE: &str = "UPDATE alerts SET ack_by = $1, ack_at = $2, ack_note = $3, \
     state = CASE WHEN state = 'resolved' THEN state ELSE 'acknowledged' END, \
     updated_at = CASE WHEN $2 > updated_at THEN $2 ELSE updated_at END WHERE alert_id = $4";
const ASSIGN: &str = "UPDATE alerts SET assignee = $1, updated_at = CASE WHEN $2 > updated_at THEN $2 ELSE updated_at END WHERE alert_id = $3";
const RESOLVE: &str =
    "UPDATE alerts SET state = 'resolved', resolved_at = COALESCE(resolved_at, $1), \
     updated_at = CASE WHEN $1 > updated_at THEN $1 ELSE updated_at END WHERE alert_id = $2";
const TOUCH: &str = "UPDATE alerts SET updated_at = CASE WHEN $1 > updated_at THEN $1 ELSE updated_at END WHERE alert_id = $2";

const ENTRY_HEAD: &str =
    "INSERT INTO alert_events (alert_id, at, event, by_account, detail, dedup) ";
const ENTRY_TAIL: &str = " ON CONFLICT (dedup) DO NOTHING";

const AUDIT_HEAD: &str = "INSERT INTO audit (at, by_account, action, target, detail) ";

/// Inserts or updates alerts' engine columns from `$rows` (`&AlertRow`s, distinct alerts)
/// in `$tx`, in one statement.
macro_rules! upsert_many {
    ($tx:expr, $rows:expr) => {
        if !$rows.is_empty() {
            let mut qb = sqlx::QueryBuilder::new(UPSERT_HEAD);
            qb.push_values($rows.iter(), |mut b, r| {
                b.push_bind(r.alert_id.clone())
                    .push_bind(r.rule.clone())
                    .push_bind(r.key.clone())
                    .push_bind(r.state.clone())
                    .push_bind(r.severity.as_str())
                    .push_bind(rank(r.severity))
                    .push_bind(r.fired_at)
                    .push_bind(r.updated_at)
                    .push_bind(r.resolved_at)
                    .push_bind(r.value.filter(|v| v.is_finite()))
                    .push_bind(clean(&r.message))
                    .push_bind(serde_json::to_string(&r.labels).expect("labels serialise"))
                    .push_bind(r.ward.clone())
                    .push_bind(r.district.clone())
                    .push_bind(r.kind.clone())
                    .push_bind(r.location.map(|l| l[0]))
                    .push_bind(r.location.map(|l| l[1]))
                    .push_bind(crate::rows::sectors_column(&r.sectors));
            });
            qb.push(UPSERT_TAIL);
            qb.build().execute(&mut *$tx).await?;
            $rows.clear();
        }
    };
}

/// The statement applying an operator's action to its alert's row.
macro_rules! action_query {
    ($action:expr, $alert_id:expr, $entry:expr) => {
        match $action {
            Action::Acknowledge { by, at, note } => sqlx::query(ACKNOWLEDGE)
                .bind(clean(by))
                .bind(*at)
                .bind(note.as_deref().map(clean))
                .bind($alert_id),
            Action::Assign { to } => sqlx::query(ASSIGN)
                .bind(clean(to))
                .bind($entry.at)
                .bind($alert_id),
            Action::Resolve { at } => sqlx::query(RESOLVE).bind(*at).bind($alert_id),
            Action::Comment => sqlx::query(TOUCH).bind($entry.at).bind($alert_id),
        }
    };
}

impl Store {
    /// Stores `changes` and `audit` lines, all in one transaction.
    pub async fn write(&self, changes: &[Change], audit: &[AuditRow]) -> Result<(), StoreError> {
        if changes.is_empty() && audit.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            let result: Result<(), sqlx::Error> = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let mut run: Vec<&AlertRow> = Vec::new();
            let mut in_run: HashSet<&str> = HashSet::new();
            for c in changes {
                match c {
                    Change::Transition { row: r, reopen: false, .. } => {
                        if run.len() >= ROWS || !in_run.insert(&r.alert_id) {
                            upsert_many!(tx, run);
                            in_run.clear();
                            in_run.insert(&r.alert_id);
                        }
                        run.push(r);
                    }
                    Change::Transition { row: r, .. } => {
                        upsert_many!(tx, run);
                        in_run.clear();
                        sqlx::query(REOPEN).bind(r.updated_at).bind(&r.alert_id).execute(&mut *tx).await?;
                    }
                    Change::Action { alert_id, action, entry, row } => {
                        upsert_many!(tx, run);
                        in_run.clear();
                        let q = action_query!(action, alert_id, entry);
                        let changed = q.execute(&mut *tx).await?.rows_affected();
                        if let (0, Some(r)) = (changed, row) {
                            // The alert's firing is still queued: store the caller's view of
                            // it, then the action (the firing, when written, keeps it).
                            let mut one = vec![&**r];
                            upsert_many!(tx, one);
                            action_query!(action, alert_id, entry).execute(&mut *tx).await?;
                        }
                    }
                }
            }
            upsert_many!(tx, run);
            for chunk in changes.chunks(ROWS) {
                let mut qb = sqlx::QueryBuilder::new(ENTRY_HEAD);
                qb.push_values(chunk, |mut b, c| {
                    let e = c.entry();
                    let dedup = match c {
                        Change::Transition { dedup, .. } => Some(dedup.clone()),
                        Change::Action { .. } => None,
                    };
                    b.push_bind(c.alert_id().to_string())
                        .push_bind(e.at)
                        .push_bind(e.event.clone())
                        .push_bind(e.by.as_deref().map(clean))
                        .push_bind(clean(&e.detail))
                        .push_bind(dedup);
                });
                qb.push(ENTRY_TAIL);
                qb.build().execute(&mut *tx).await?;
            }
            for chunk in audit.chunks(ROWS) {
                let mut qb = sqlx::QueryBuilder::new(AUDIT_HEAD);
                qb.push_values(chunk, |mut b, a| {
                    b.push_bind(a.at)
                        .push_bind(clean(&a.by))
                        .push_bind(clean(&a.action))
                        .push_bind(clean(&a.target))
                        .push_bind(a.detail.to_string());
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
            }
            .await;
            if let Err(e) = result {
                // A connection whose transaction failed midway is not used again: SQLite
                // rolls back by itself on a full disk, and a pooled connection that still
                // thought itself inside that transaction made the next batch a savepoint
                // that was never committed (seen on a full tmpfs: a whole batch "written"
                // and invisible, and "database is locked" for every other connection).
                conn.close_on_drop();
                return Err(e.into());
            }
        });
        Ok(())
    }
}

/// Free text as stored: NUL characters, which PostgreSQL's text type refuses, replaced (so
/// that an operator's note can never make a batch fail on one backend and not the other).
fn clean(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}
