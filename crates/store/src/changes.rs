//! The changes feed: every line of every alert's timeline (engine transitions and operator
//! actions) in commit order, after a cursor, within the caller's scope, with the alert as it
//! is now — so an integrator that was away catches up exactly.
//!
//! Invariants: the cursor is the timeline line's sequence number; lines are written by the
//! one store writer, one transaction at a time, so sequence order is commit order and a
//! reader that saw line n will never later see a line below n appear (no gaps, no
//! repeats); a transition replayed after a restart is stored once (its dedup key), so it
//! is in the feed once; exercise alerts (ids `<exercise>~…`) are left out unless asked for.

use serde::Serialize;

use crate::query::{push, scope_sql, Bind};
use crate::rows::{alert_from_row, AlertRow};
use crate::{on_pool, AlertQuery, Store, StoreError};

/// Most lines in one page of the feed.
pub const MAX_CHANGES: usize = 1000;

/// One line of the feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRow {
    /// Its sequence number: the cursor to read after it.
    pub seq: i64,
    /// When it happened, epoch ms.
    pub at: i64,
    /// fired, escalated, resolved, acknowledged, commented, assigned, resolved by hand…
    pub event: String,
    /// The operator, for actions.
    pub by: Option<String>,
    /// The line's detail (a transition's severity and message, an action's note).
    pub detail: String,
    /// The alert as it is now.
    pub alert: AlertRow,
}

/// Which timeline lines to read.
struct Lines<'a> {
    after: i64,
    limit: usize,
    scope: &'a AlertQuery,
    exercises: bool,
    /// Engine transitions only (no operator's action).
    transitions_only: bool,
    /// One alert's.
    alert: Option<&'a str>,
    newest_first: bool,
}

impl Store {
    /// Up to `limit` lines after sequence number `after`, oldest first, of alerts within
    /// `scope`'s wards, district and sectors; exercise alerts only with `exercises`.
    pub async fn changes(
        &self,
        after: i64,
        limit: usize,
        scope: &AlertQuery,
        exercises: bool,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.lines(&Lines {
            after,
            limit,
            scope,
            exercises,
            transitions_only: false,
            alert: None,
            newest_first: false,
        })
        .await
    }

    /// One alert's engine transitions, oldest first.
    pub async fn alert_transitions(&self, alert_id: &str) -> Result<Vec<ChangeRow>, StoreError> {
        self.lines(&Lines {
            after: 0,
            limit: MAX_CHANGES,
            scope: &AlertQuery::default(),
            exercises: true,
            transitions_only: true,
            alert: Some(alert_id),
            newest_first: false,
        })
        .await
    }

    /// The newest `limit` engine transitions within `scope`, newest first.
    pub async fn recent_transitions(
        &self,
        limit: usize,
        scope: &AlertQuery,
        exercises: bool,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.lines(&Lines {
            after: 0,
            limit,
            scope,
            exercises,
            transitions_only: true,
            alert: None,
            newest_first: true,
        })
        .await
    }

    async fn lines(&self, q: &Lines<'_>) -> Result<Vec<ChangeRow>, StoreError> {
        let mut sql = String::from(
            "SELECT e.seq AS change_seq, e.at AS change_at, e.event AS change_event, \
             e.by_account AS change_by, e.detail AS change_detail, a.* \
             FROM alert_events e JOIN alerts a ON a.alert_id = e.alert_id WHERE 1 = 1",
        );
        let mut binds = Vec::new();
        push(&mut sql, &mut binds, " AND e.seq > ?", Bind::I(q.after));
        scope_sql(q.scope, "a.", &mut sql, &mut binds);
        if !q.exercises {
            sql.push_str(" AND a.alert_id NOT LIKE '%~%'");
        }
        if q.transitions_only {
            sql.push_str(" AND e.by_account IS NULL");
        }
        if let Some(alert) = q.alert {
            push(
                &mut sql,
                &mut binds,
                " AND e.alert_id = ?",
                Bind::S(alert.to_string()),
            );
        }
        sql.push_str(&format!(
            " ORDER BY e.seq {} LIMIT {}",
            if q.newest_first { "DESC" } else { "ASC" },
            q.limit.clamp(1, MAX_CHANGES)
        ));
        Ok(on_pool!(self, pool => {
            // Audited: fixed fragments, `$n` placeholders and an integer limit; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for b in &binds {
                query = match b {
                    Bind::I(v) => query.bind(*v),
                    Bind::S(v) => query.bind(v.clone()),
                };
            }
            let mut out = Vec::new();
            for r in query.fetch_all(pool).await? {
                use sqlx::Row as _;
                out.push(ChangeRow {
                    seq: r.try_get("change_seq")?,
                    at: r.try_get("change_at")?,
                    event: r.try_get("change_event")?,
                    by: r.try_get("change_by")?,
                    detail: r.try_get("change_detail")?,
                    alert: alert_from_row!(&r),
                });
            }
            out
        }))
    }

    /// The sequence number of the newest timeline line (0 when there is none): a new
    /// reader that wants only what comes next starts after it.
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        let (seq,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM alert_events").fetch_one(pool).await?
        });
        Ok(seq)
    }
}
