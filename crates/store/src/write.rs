//! Writing: a batch of alert changes and audit lines in one transaction. A transition
//! writes the engine's columns (inserting the alert when new, keeping an acknowledged
//! alert acknowledged); an action writes only its own columns.

use crate::rows::{rank, Action, AuditRow, Change};
use crate::{on_pool, Store, StoreError};

const UPSERT_ALERT: &str = "INSERT INTO alerts (alert_id, rule, key, state, severity, severity_rank, fired_at, updated_at, resolved_at, value, message, labels, ward, district, kind, lat, lon) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT (alert_id) DO UPDATE SET \
     state = CASE WHEN excluded.state = 'resolved' OR alerts.state = 'resolved' THEN 'resolved' ELSE alerts.state END, \
     severity = excluded.severity, severity_rank = excluded.severity_rank, \
     updated_at = CASE WHEN excluded.updated_at > alerts.updated_at THEN excluded.updated_at ELSE alerts.updated_at END, \
     resolved_at = COALESCE(alerts.resolved_at, excluded.resolved_at), \
     value = COALESCE(excluded.value, alerts.value), message = excluded.message, labels = excluded.labels, \
     ward = excluded.ward, district = excluded.district, kind = excluded.kind, lat = excluded.lat, lon = excluded.lon";

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

const INSERT_ENTRY: &str = "INSERT INTO alert_events (alert_id, at, event, by_account, detail, dedup) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedup) DO NOTHING";

const INSERT_AUDIT: &str =
    "INSERT INTO audit (at, by_account, action, target, detail) VALUES ($1, $2, $3, $4, $5)";

/// Inserts or updates an alert's engine columns from `$r` (an `AlertRow`) in `$tx`.
macro_rules! upsert {
    ($tx:expr, $r:expr) => {
        sqlx::query(UPSERT_ALERT)
            .bind(&$r.alert_id)
            .bind(&$r.rule)
            .bind(&$r.key)
            .bind(&$r.state)
            .bind($r.severity.as_str())
            .bind(rank($r.severity))
            .bind($r.fired_at)
            .bind($r.updated_at)
            .bind($r.resolved_at)
            .bind($r.value.filter(|v| v.is_finite()))
            .bind(clean(&$r.message))
            .bind(serde_json::to_string(&$r.labels).expect("labels serialise"))
            .bind(&$r.ward)
            .bind(&$r.district)
            .bind(&$r.kind)
            .bind($r.location.map(|l| l[0]))
            .bind($r.location.map(|l| l[1]))
            .execute(&mut *$tx)
            .await?;
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
            for c in changes {
                let dedup = match c {
                    Change::Transition { row: r, dedup, reopen: true, .. } => {
                        sqlx::query(REOPEN).bind(r.updated_at).bind(&r.alert_id).execute(&mut *tx).await?;
                        Some(dedup.as_str())
                    }
                    Change::Transition { row: r, dedup, .. } => {
                        upsert!(tx, r);
                        Some(dedup.as_str())
                    }
                    Change::Action { alert_id, action, entry, row } => {
                        let q = action_query!(action, alert_id, entry);
                        let changed = q.execute(&mut *tx).await?.rows_affected();
                        if let (0, Some(r)) = (changed, row) {
                            // The alert's firing is still queued: store the caller's view of
                            // it, then the action (the firing, when written, keeps it).
                            upsert!(tx, r);
                            action_query!(action, alert_id, entry).execute(&mut *tx).await?;
                        }
                        None
                    }
                };
                let e = c.entry();
                sqlx::query(INSERT_ENTRY)
                    .bind(c.alert_id())
                    .bind(e.at)
                    .bind(&e.event)
                    .bind(e.by.as_deref().map(clean))
                    .bind(clean(&e.detail))
                    .bind(dedup)
                    .execute(&mut *tx)
                    .await?;
            }
            for a in audit {
                sqlx::query(INSERT_AUDIT)
                    .bind(a.at)
                    .bind(clean(&a.by))
                    .bind(clean(&a.action))
                    .bind(clean(&a.target))
                    .bind(a.detail.to_string())
                    .execute(&mut *tx)
                    .await?;
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
