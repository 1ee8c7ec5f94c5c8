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

impl ChangeRow {
    /// The alert as this line left it: for an engine transition, its state (`resolved`
    /// for `resolved`/`resolved at restart`, else `firing`), severity and message (from
    /// the line's `<severity>: <message>` detail) and time; the alert's later changes
    /// (an escalation, an acknowledgement after it) are not in it.
    pub fn as_of(&self) -> AlertRow {
        let mut a = self.alert.clone();
        if self.by.is_some() {
            return a;
        }
        let resolved = self.event == "resolved" || self.event == "resolved at restart";
        a.state = if resolved { "resolved" } else { "firing" }.into();
        a.resolved_at = resolved.then_some(self.at);
        a.updated_at = self.at;
        if let Some((severity, message)) = self.detail.split_once(": ") {
            if let Some(s) = watchfloor_model::Severity::parse(severity) {
                a.severity = s;
                a.message = message.to_string();
            }
        }
        if a.ack.as_ref().is_some_and(|(_, at, _)| *at > self.at) {
            a.ack = None;
        }
        a
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use watchfloor_model::Severity;

    fn line(event: &str, by: Option<&str>, detail: &str, at: i64) -> ChangeRow {
        ChangeRow {
            seq: 1,
            at,
            event: event.into(),
            by: by.map(str::to_string),
            detail: detail.into(),
            alert: AlertRow {
                alert_id: "a".into(),
                rule: "r".into(),
                key: "k".into(),
                state: "resolved".into(),
                severity: Severity::Critical,
                fired_at: 10,
                updated_at: 90,
                resolved_at: Some(90),
                value: None,
                message: "now: worse".into(),
                labels: Default::default(),
                ward: None,
                district: None,
                sectors: Vec::new(),
                kind: None,
                location: None,
                ack: Some(("op".into(), 50, None)),
                assignee: None,
            },
        }
    }

    #[test]
    fn a_transition_shows_the_alert_as_it_left_it() {
        let fired = line("fired", None, "major: PM2.5 high: 80", 10).as_of();
        assert_eq!(
            (
                fired.state.as_str(),
                fired.severity,
                fired.message.as_str(),
                fired.resolved_at
            ),
            ("firing", Severity::Major, "PM2.5 high: 80", None)
        );
        assert_eq!(fired.ack, None, "acknowledged after this transition");
        let resolved = line("resolved", None, "critical: over", 90).as_of();
        assert_eq!(
            (resolved.state.as_str(), resolved.resolved_at),
            ("resolved", Some(90))
        );
        assert!(resolved.ack.is_some());
        // An operator's line leaves the alert as it is now.
        let comment = line("commented", Some("op"), "note", 60).as_of();
        assert_eq!(comment.state, "resolved");
    }
}
