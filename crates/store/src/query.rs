//! Reading: the open alerts with their timelines (what a restarted server shows), one
//! alert's timeline, and the stored history in pages (newest first, cursor pagination:
//! a page never repeats or skips an alert however many are added meanwhile).

use watchfloor_model::Severity;

use crate::rows::{alert_from_row, rank, AlertRow, AuditRow, Entry};
use crate::{on_pool, Store, StoreError};

/// Most alerts in one page.
pub const MAX_PAGE: usize = 1000;

/// A history search. Scope fields (`wards`, `district`) come from the caller's account and
/// narrow whatever the filters say.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    /// Fired at or after, epoch ms.
    pub from: Option<i64>,
    /// Fired before, epoch ms.
    pub to: Option<i64>,
    /// Only these wards (empty: any).
    pub wards: Vec<String>,
    /// Only this district.
    pub district: Option<String>,
    /// Only alerts of one of these sectors (`None`: any, including none).
    pub sectors: Option<Vec<String>>,
    /// A ward or district id (a filter the caller chose).
    pub zone: Option<String>,
    /// Rule id.
    pub rule: Option<String>,
    /// Station kind.
    pub kind: Option<String>,
    /// Lowest severity.
    pub min_severity: Option<Severity>,
    /// `firing`, `acknowledged`, `resolved`, or `open` (firing or acknowledged).
    pub state: Option<String>,
    /// Page size (at most [`MAX_PAGE`]).
    pub limit: usize,
    /// Where the previous page ended (its `next`).
    pub cursor: Option<String>,
}

/// One page of history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    /// Alerts, newest fired first.
    pub alerts: Vec<AlertRow>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// A bound parameter of a query built at run time.
pub(crate) enum Bind {
    I(i64),
    S(String),
}

/// Appends `clause` with its `?` numbered as the next placeholder, and its value.
pub(crate) fn push(sql: &mut String, binds: &mut Vec<Bind>, clause: &str, b: Bind) {
    binds.push(b);
    sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
}

/// The caller's scope (`wards`, `district`, `sectors` of `q`) as conditions on the alerts
/// columns (prefixed `prefix`, e.g. `a.`).
pub(crate) fn scope_sql(q: &AlertQuery, prefix: &str, sql: &mut String, binds: &mut Vec<Bind>) {
    if !q.wards.is_empty() {
        sql.push_str(&format!(" AND {prefix}ward IN ("));
        for (i, w) in q.wards.iter().enumerate() {
            push(
                sql,
                binds,
                if i == 0 { "?" } else { ", ?" },
                Bind::S(w.clone()),
            );
        }
        sql.push(')');
    }
    if let Some(d) = &q.district {
        push(
            sql,
            binds,
            &format!(" AND {prefix}district = ?"),
            Bind::S(d.clone()),
        );
    }
    if let Some(sectors) = &q.sectors {
        sql.push_str(" AND (1 = 0");
        for s in sectors {
            // `_` and `%` in an id are literal (`_` would match the space between two ids
            // otherwise).
            let literal = s
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            push(
                sql,
                binds,
                &format!(" OR {prefix}sectors LIKE ? ESCAPE '\\'"),
                Bind::S(format!("% {literal} %")),
            );
        }
        sql.push(')');
    }
}

fn parse_cursor(c: &str) -> Result<(i64, String), StoreError> {
    c.split_once(':')
        .and_then(|(t, id)| Some((t.parse().ok()?, id.to_string())))
        .ok_or_else(|| StoreError::Fatal(format!("bad cursor `{c}`")))
}

impl Store {
    /// Alerts not resolved, with their timelines (oldest line first).
    pub async fn open_alerts(&self) -> Result<Vec<(AlertRow, Vec<Entry>)>, StoreError> {
        self.working_set(0).await
    }

    /// What a restarted server holds: the alerts not resolved (oldest first) and the
    /// `resolved` most recently resolved ones, each with its timeline — two queries
    /// whatever the count.
    pub async fn working_set(
        &self,
        resolved: usize,
    ) -> Result<Vec<(AlertRow, Vec<Entry>)>, StoreError> {
        const SET: &str = "SELECT alert_id FROM alerts WHERE state <> 'resolved' \
             UNION ALL SELECT alert_id FROM (SELECT alert_id FROM alerts WHERE state = 'resolved' ORDER BY updated_at DESC LIMIT $1) AS recent";
        let limit = resolved as i64;
        let (rows, entries) = on_pool!(self, pool => {
            let mut rows = Vec::new();
            let sql = format!("SELECT * FROM alerts WHERE alert_id IN ({SET}) ORDER BY fired_at, alert_id");
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await? {
                rows.push(alert_from_row!(&r));
            }
            let sql = format!("SELECT alert_id, at, event, by_account, detail FROM alert_events WHERE alert_id IN ({SET}) ORDER BY seq");
            let entries: Vec<(String, i64, String, Option<String>, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await?;
            (rows, entries)
        });
        let mut timelines: std::collections::HashMap<String, Vec<Entry>> =
            std::collections::HashMap::new();
        for (id, at, event, by, detail) in entries {
            timelines.entry(id).or_default().push(Entry {
                at,
                event,
                by,
                detail,
            });
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let timeline = timelines.remove(&r.alert_id).unwrap_or_default();
                (r, timeline)
            })
            .collect())
    }

    /// One alert, if stored.
    pub async fn alert(&self, id: &str) -> Result<Option<AlertRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            match sqlx::query("SELECT * FROM alerts WHERE alert_id = $1").bind(id).fetch_optional(pool).await? {
                Some(r) => Some(alert_from_row!(&r)),
                None => None,
            }
        }))
    }

    /// An alert's timeline, oldest line first.
    pub async fn timeline(&self, id: &str) -> Result<Vec<Entry>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT at, event, by_account, detail FROM alert_events WHERE alert_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(at, event, by, detail)| Entry {
                at,
                event,
                by,
                detail,
            })
            .collect())
    }

    /// A page of stored alerts matching `q`, newest fired first.
    pub async fn query(&self, q: &AlertQuery) -> Result<Page, StoreError> {
        let mut sql = String::from("SELECT * FROM alerts WHERE 1 = 1");
        let mut binds = Vec::new();
        scope_sql(q, "", &mut sql, &mut binds);
        let mut push = |sql: &mut String, clause: &str, b: Bind| push(sql, &mut binds, clause, b);
        if let Some(from) = q.from {
            push(&mut sql, " AND fired_at >= ?", Bind::I(from));
        }
        if let Some(to) = q.to {
            push(&mut sql, " AND fired_at < ?", Bind::I(to));
        }
        if let Some(z) = &q.zone {
            push(&mut sql, " AND (ward = ?", Bind::S(z.clone()));
            push(&mut sql, " OR district = ?)", Bind::S(z.clone()));
        }
        if let Some(r) = &q.rule {
            push(&mut sql, " AND rule = ?", Bind::S(r.clone()));
        }
        if let Some(k) = &q.kind {
            push(&mut sql, " AND kind = ?", Bind::S(k.clone()));
        }
        if let Some(s) = q.min_severity {
            push(&mut sql, " AND severity_rank >= ?", Bind::I(rank(s)));
        }
        match q.state.as_deref() {
            None => {}
            Some("open") => sql.push_str(" AND state <> 'resolved'"),
            Some(s) => push(&mut sql, " AND state = ?", Bind::S(s.to_string())),
        }
        if let Some(c) = &q.cursor {
            let (t, id) = parse_cursor(c)?;
            push(&mut sql, " AND (fired_at < ?", Bind::I(t));
            push(&mut sql, " OR (fired_at = ?", Bind::I(t));
            push(&mut sql, " AND alert_id < ?))", Bind::S(id));
        }
        let limit = q.limit.clamp(1, MAX_PAGE);
        sql.push_str(&format!(
            " ORDER BY fired_at DESC, alert_id DESC LIMIT {}",
            limit + 1
        ));
        let mut alerts = on_pool!(self, pool => {
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
                out.push(alert_from_row!(&r));
            }
            out
        });
        let next = (alerts.len() > limit).then(|| {
            alerts.truncate(limit);
            let last = alerts.last().expect("a full page");
            format!("{}:{}", last.fired_at, last.alert_id)
        });
        Ok(Page { alerts, next })
    }

    /// Audit lines at or after `since`, oldest first, at most `limit`.
    pub async fn audit(&self, since: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT at, by_account, action, target, detail FROM audit WHERE at >= $1 ORDER BY seq LIMIT $2")
                .bind(since)
                .bind(limit.min(100_000) as i64)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(at, by, action, target, detail)| AuditRow {
                at,
                by,
                action,
                target,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            })
            .collect())
    }
}
