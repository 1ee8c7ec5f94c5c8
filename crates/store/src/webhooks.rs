//! Webhook subscriptions and their durable outbox in the store (migration 0005).
//!
//! Invariants: deliveries are recorded with the outbox's new cursor in one transaction
//! ([`Store::webhook_enqueue`]), so a crash neither loses a transition nor records it twice
//! (a delivery written again keeps its row: same id, same payload); a delivery's attempt and
//! its new state are written together ([`Store::webhook_attempts`]); a subscription's pending
//! deliveries are read in the order of the transitions they carry.

use serde::Serialize;

use crate::{on_pool, Store, StoreError};

/// A subscription.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SubscriptionRow {
    /// Its id.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The signing secrets (JSON array of `whsec_…`).
    pub secrets: String,
    /// Which alerts (JSON).
    pub filter: String,
    /// `standard` or `alertmanager`.
    pub format: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Why disabled.
    pub reason: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When, epoch ms.
    pub created_at: i64,
    /// Transitions after this timeline line are delivered.
    pub start_seq: i64,
}

/// One delivery of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    /// The webhook-id.
    pub id: String,
    /// Its subscription.
    pub subscription: String,
    /// The alert.
    pub alert_id: String,
    /// The timeline line (changes feed cursor) it carries.
    pub change_seq: i64,
    /// The transition (`fired`, `escalated`, `resolved`…).
    pub event: String,
    /// The body, as sent on every attempt.
    pub payload: String,
    /// Recorded, epoch ms.
    pub created_at: i64,
    /// Not before, epoch ms.
    pub next_attempt_at: i64,
    /// Attempts so far.
    pub attempts: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// When it was delivered.
    pub delivered_at: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    /// The delivery.
    pub delivery: String,
    /// 1, 2, …
    pub n: i64,
    /// When, epoch ms.
    pub at: i64,
    /// The answer's status (none: no answer).
    pub status_code: Option<i64>,
    /// How long it took, ms.
    pub latency_ms: i64,
    /// What went wrong.
    pub error: Option<String>,
}

const SUB_COLUMNS: &str =
    "SELECT id, url, secrets, filter, format, status, reason, created_by, created_at, start_seq FROM webhook_subscriptions";
const DELIVERY_COLUMNS: &str = "SELECT id, subscription, alert_id, change_seq, event, payload, created_at, next_attempt_at, attempts, status, delivered_at, last_error FROM webhook_deliveries";
const CURSOR: &str = "outbox";

impl Store {
    /// Adds a subscription.
    pub async fn create_subscription(&self, s: &SubscriptionRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO webhook_subscriptions (id, url, secrets, filter, format, status, reason, created_by, created_at, start_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(&s.id).bind(&s.url).bind(&s.secrets).bind(&s.filter).bind(&s.format)
                .bind(&s.status).bind(&s.reason).bind(&s.created_by).bind(s.created_at).bind(s.start_seq)
                .execute(pool).await?;
        });
        Ok(())
    }

    /// Every subscription, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let sql = const_format(SUB_COLUMNS, " ORDER BY created_at, id");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SubscriptionRow>(sqlx::AssertSqlSafe(sql.clone())).fetch_all(pool).await?
        }))
    }

    /// Marks a subscription `active` or `disabled` (with why).
    pub async fn set_subscription_status(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query("UPDATE webhook_subscriptions SET status = $2, reason = $3 WHERE id = $1")
                .bind(id).bind(status).bind(reason).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Replaces a subscription's signing secrets (a rotation: old and new side by side).
    pub async fn set_subscription_secrets(
        &self,
        id: &str,
        secrets: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query("UPDATE webhook_subscriptions SET secrets = $2 WHERE id = $1")
                .bind(id).bind(secrets).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// How far the outbox has read the timeline.
    pub async fn webhook_cursor(&self) -> Result<i64, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq FROM webhook_cursor WHERE name = $1").bind(CURSOR).fetch_optional(pool).await?
        });
        Ok(row.map_or(0, |r| r.0))
    }

    /// How far the feed `name` (e.g. a CAP output, `cap:<name>`) has read the timeline;
    /// `None` before it first said.
    pub async fn feed_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq FROM webhook_cursor WHERE name = $1").bind(name).fetch_optional(pool).await?
        });
        Ok(row.map(|r| r.0))
    }

    /// Moves the feed `name`'s cursor to `seq`.
    pub async fn set_feed_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO webhook_cursor (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq")
                .bind(name).bind(seq).execute(pool).await?;
        });
        Ok(())
    }

    /// Records `deliveries` and moves the outbox's cursor to `cursor`, in one transaction.
    pub async fn webhook_enqueue(
        &self,
        cursor: i64,
        deliveries: &[DeliveryRow],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for d in deliveries {
                sqlx::query("INSERT INTO webhook_deliveries (id, subscription, alert_id, change_seq, event, payload, created_at, next_attempt_at, attempts, status, delivered_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 'pending', NULL, NULL) ON CONFLICT (id) DO NOTHING")
                    .bind(&d.id).bind(&d.subscription).bind(&d.alert_id).bind(d.change_seq)
                    .bind(&d.event).bind(&d.payload).bind(d.created_at).bind(d.next_attempt_at)
                    .execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO webhook_cursor (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq")
                .bind(CURSOR).bind(cursor).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The oldest `limit` pending deliveries of a subscription (by the transitions they
    /// carry).
    pub async fn next_deliveries(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = const_format(
            DELIVERY_COLUMNS,
            " WHERE subscription = $1 AND status = 'pending' ORDER BY change_seq, id LIMIT $2",
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql.clone())).bind(subscription).bind(limit.clamp(1, 1000) as i64).fetch_all(pool).await?
        }))
    }

    /// Records attempts, each with its delivery's new state: `delivered` at its time, or
    /// still `pending` until its retry time, or `failed` for good (neither) — all in one
    /// transaction.
    pub async fn webhook_attempts(
        &self,
        attempts: &[(AttemptRow, bool, Option<i64>)],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (attempt, delivered, retry_at) in attempts {
                let status = if *delivered {
                    "delivered"
                } else if retry_at.is_some() {
                    "pending"
                } else {
                    "failed"
                };
                sqlx::query("INSERT INTO webhook_attempts (delivery, n, at, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery, n) DO NOTHING")
                    .bind(&attempt.delivery).bind(attempt.n).bind(attempt.at).bind(attempt.status_code)
                    .bind(attempt.latency_ms).bind(&attempt.error)
                    .execute(&mut *tx).await?;
                sqlx::query("UPDATE webhook_deliveries SET attempts = $2, status = $3, delivered_at = $4, next_attempt_at = $5, last_error = $6 WHERE id = $1")
                    .bind(&attempt.delivery).bind(attempt.n).bind(status)
                    .bind(delivered.then_some(attempt.at)).bind(retry_at.unwrap_or(attempt.at))
                    .bind(&attempt.error)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A subscription's deliveries, newest first, at most `limit`.
    pub async fn deliveries(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = const_format(
            DELIVERY_COLUMNS,
            " WHERE subscription = $1 ORDER BY change_seq DESC, id DESC LIMIT $2",
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql.clone())).bind(subscription).bind(limit.min(1000) as i64).fetch_all(pool).await?
        }))
    }

    /// One delivery.
    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let sql = const_format(DELIVERY_COLUMNS, " WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_optional(pool).await?
        }))
    }

    /// A delivery's attempts, in order.
    pub async fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AttemptRow>("SELECT delivery, n, at, status_code, latency_ms, error FROM webhook_attempts WHERE delivery = $1 ORDER BY n")
                .bind(delivery).fetch_all(pool).await?
        }))
    }

    /// Sends a delivery again (same id, same body): pending from `now`, its give-up time
    /// counted from `now` again.
    pub async fn resend_delivery(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, created_at = $2 WHERE id = $1")
                .bind(id).bind(now).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }
}

/// A fixed query with a fixed tail (no value in it: every value is bound).
fn const_format(head: &str, tail: &str) -> String {
    format!("{head}{tail}")
}
