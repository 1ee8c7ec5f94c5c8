//! The webhook outbox's tasks. The recorder reads the incident store's timeline (the
//! changes feed) after the outbox's cursor and records, in one transaction with the new
//! cursor, one delivery per engine transition and matching active subscription. A worker
//! per active subscription sends that subscription's pending deliveries (a disabled one's
//! are recorded all the same and wait for it to be enabled again) one at a time, in
//! transition order, each attempt and its outcome stored: 2xx delivered; 410 Gone disables
//! the subscription (and says so); anything else — 429, 5xx, no answer, a refused
//! address — is tried again after `Retry-After` when the receiver gave one, else after the
//! backoff (doubling from `backoff` up to `backoff_max`), until `give_up` after the delivery
//! was recorded.
//!
//! Invariants: a delivery is recorded before it is attempted and keeps its id
//! (`msg_<subscription>_<line>`) and body on every attempt and after a restart, so a
//! receiver can drop a repeat; a subscription never gets a delivery before the one ahead
//! of it (per alert, and overall); exercise alerts go only to subscriptions that opt in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use watchfloor_store::{AlertQuery, AttemptRow, DeliveryRow, Store, SubscriptionRow};

use super::filter::Filter;
use super::policy::{parse_url, Policy};
use crate::hub::now_ms;

/// How often the recorder looks at the timeline when nothing woke it.
const POLL: Duration = Duration::from_millis(250);
/// Timeline lines read per round.
const READ: usize = 1000;
/// Deliveries a worker takes from the outbox at once (sent one at a time, in order; their
/// attempts stored in one transaction).
const BATCH: usize = 64;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER_MS: i64 = 24 * 3_600_000;

/// The outbox's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where the outbox is.
    pub store: Store,
    /// Where deliveries may go.
    pub policy: Policy,
    /// Whom `https://` receivers' certificates must be signed by.
    pub tls: super::tls::Tls,
    /// First retry's wait, ms.
    pub backoff_ms: i64,
    /// Longest wait, ms.
    pub backoff_max_ms: i64,
    /// Give up this long after recording, ms.
    pub give_up_ms: i64,
    /// One attempt's limit.
    pub timeout: Duration,
}

/// What the API shares with the outbox's tasks.
pub struct Link {
    pub(crate) config: WebhookConfig,
    /// The subscriptions, as stored.
    pub(crate) subscriptions: Mutex<BTreeMap<String, SubscriptionRow>>,
    workers: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// Wakes the workers (a resend, a new delivery).
    pub(crate) wake: Notify,
}

impl Link {
    /// Starts the worker of an active subscription (nothing if it runs).
    pub(crate) fn start_worker(self: &Arc<Self>, id: &str) {
        let mut workers = self.workers.lock().expect("workers lock");
        if workers.get(id).is_some_and(|w| !w.is_finished()) {
            return;
        }
        let link = self.clone();
        let id = id.to_string();
        workers.insert(id.clone(), tokio::spawn(async move { link.work(id).await }));
    }

    /// Stores a subscription's new state and starts or leaves its worker.
    pub(crate) async fn set_status(
        self: &Arc<Self>,
        id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<bool, watchfloor_store::StoreError> {
        if !self
            .config
            .store
            .set_subscription_status(id, status, reason)
            .await?
        {
            return Ok(false);
        }
        if let Some(s) = self.subscriptions.lock().expect("subs lock").get_mut(id) {
            s.status = status.into();
            s.reason = reason.map(str::to_string);
        }
        if status == "active" {
            self.start_worker(id);
        }
        self.wake.notify_waiters();
        Ok(true)
    }

    fn subscription(&self, id: &str) -> Option<SubscriptionRow> {
        self.subscriptions
            .lock()
            .expect("subs lock")
            .get(id)
            .cloned()
    }

    /// One subscription's deliveries, one at a time in order, until it is disabled.
    async fn work(self: Arc<Self>, id: String) {
        let mut client = super::http::Client::new(self.config.tls.clone());
        loop {
            let Some(sub) = self.subscription(&id).filter(|s| s.status == "active") else {
                return;
            };
            let due = match self.config.store.next_deliveries(&id, BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(subscription = %id, error = %e, "webhook outbox unreadable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let now = now_ms();
            match due.first() {
                None => {
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Some(d) if d.next_attempt_at > now => {
                    let wait = Duration::from_millis((d.next_attempt_at - now) as u64);
                    let _ = tokio::time::timeout(
                        wait.min(Duration::from_secs(5)),
                        self.wake.notified(),
                    )
                    .await;
                }
                Some(_) => self.attempt_batch(&sub, due, &mut client).await,
            }
        }
    }

    /// Attempts `due` in order until one is not delivered (nothing overtakes it), then
    /// stores every attempt with its outcome in one transaction.
    async fn attempt_batch(
        self: &Arc<Self>,
        sub: &SubscriptionRow,
        due: Vec<DeliveryRow>,
        client: &mut super::http::Client,
    ) {
        let secrets: Vec<String> = serde_json::from_str(&sub.secrets).unwrap_or_default();
        let mut done = Vec::new();
        let mut gone = false;
        for d in due {
            if d.next_attempt_at > now_ms() {
                break;
            }
            let (attempt, delivered, retry_at, is_gone) =
                self.attempt(sub, &d, &secrets, client).await;
            done.push((attempt, delivered, retry_at));
            if !delivered {
                gone = is_gone;
                break;
            }
        }
        if let Err(e) = self.config.store.webhook_attempts(&done).await {
            tracing::warn!(subscription = %sub.id, error = %e, "webhook attempts not stored; tried again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        if gone {
            let why = format!(
                "{} answered 410 Gone at {}",
                sub.url,
                watchfloor_model::format_rfc3339(now_ms())
            );
            tracing::warn!(subscription = %sub.id, %why, "webhook subscription disabled");
            if let Err(e) = self.set_status(&sub.id, "disabled", Some(&why)).await {
                tracing::warn!(subscription = %sub.id, error = %e, "webhook subscription not disabled in the store");
            }
        }
    }

    /// One attempt at `d`: the attempt's record, whether delivered, when to retry (none:
    /// delivered, or given up), whether the receiver said 410 Gone.
    async fn attempt(
        &self,
        sub: &SubscriptionRow,
        d: &DeliveryRow,
        secrets: &[String],
        client: &mut super::http::Client,
    ) -> (AttemptRow, bool, Option<i64>, bool) {
        let started = now_ms();
        let result = if started - d.created_at > self.config.give_up_ms {
            Err((
                None,
                format!(
                    "gave up: not delivered within {} ms of being recorded",
                    self.config.give_up_ms
                ),
            ))
        } else {
            let sent = async {
                if secrets.is_empty() {
                    // A subscription's deliveries are always signed: never one without.
                    return Err("the subscription has no usable signing secret".to_string());
                }
                let target = parse_url(&sub.url)?;
                let address = self.config.policy.resolve(&target).await?;
                client
                    .post(
                        &target,
                        address,
                        &d.id,
                        secrets,
                        &d.payload,
                        self.config.timeout,
                    )
                    .await
            };
            match sent.await {
                Ok(answer) if (200..300).contains(&answer.status) => Ok(answer.status),
                Ok(answer) => {
                    let why = format!("HTTP {}", answer.status);
                    Err((Some(answer), why))
                }
                Err(e) => Err((None, e)),
            }
        };
        let mut attempt = AttemptRow {
            delivery: d.id.clone(),
            n: d.attempts + 1,
            at: started,
            status_code: None,
            latency_ms: now_ms() - started,
            error: None,
        };
        match result {
            Ok(status) => {
                attempt.status_code = Some(i64::from(status));
                (attempt, true, None, false)
            }
            Err((answer, why)) => {
                let gave_up = why.starts_with("gave up");
                let gone = answer.as_ref().is_some_and(|a| a.status == 410);
                // `Retry-After` when the receiver gave one (never sooner than the first
                // backoff, never later than a day), else the backoff.
                let wait = match answer.as_ref().and_then(|a| a.retry_after_s) {
                    Some(s) => (s.min(86_400) as i64 * 1000)
                        .clamp(self.config.backoff_ms, MAX_RETRY_AFTER_MS),
                    None => self.backoff(attempt.n),
                };
                attempt.status_code = answer.as_ref().map(|a| i64::from(a.status));
                tracing::debug!(delivery = %d.id, attempt = attempt.n, error = %why, "webhook attempt failed; retried");
                attempt.error = Some(why);
                (attempt, false, (!gave_up).then_some(started + wait), gone)
            }
        }
    }

    /// The wait after failed attempt `n` (1, 2, …) without a `Retry-After`.
    fn backoff(&self, n: i64) -> i64 {
        let doubled = self
            .config
            .backoff_ms
            .saturating_mul(1i64 << (n - 1).clamp(0, 30));
        doubled.min(self.config.backoff_max_ms)
    }
}

/// Reads the subscriptions, starts the recorder and a worker per active subscription.
pub async fn spawn(config: WebhookConfig) -> Result<Arc<Link>, watchfloor_store::StoreError> {
    let subscriptions = config
        .store
        .subscriptions()
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let link = Arc::new(Link {
        config,
        subscriptions: Mutex::new(subscriptions),
        workers: Mutex::new(BTreeMap::new()),
        wake: Notify::new(),
    });
    let active: Vec<String> = link
        .subscriptions
        .lock()
        .expect("subs lock")
        .values()
        .filter(|s| s.status == "active")
        .map(|s| s.id.clone())
        .collect();
    for id in active {
        link.start_worker(&id);
    }
    let recorder = link.clone();
    tokio::spawn(async move { recorder.record_forever().await });
    Ok(link)
}

impl Link {
    async fn record_forever(self: Arc<Self>) {
        loop {
            match self.record_once().await {
                Ok(true) => continue, // more to read
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox: the timeline or the outbox unreachable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Records the deliveries of the next timeline lines; whether there may be more.
    async fn record_once(&self) -> Result<bool, watchfloor_store::StoreError> {
        let store = &self.config.store;
        let cursor = store.webhook_cursor().await?;
        let lines = store
            .changes(cursor, READ, &AlertQuery::default(), true)
            .await?;
        let Some(last) = lines.last().map(|l| l.seq) else {
            return Ok(false);
        };
        let subs: Vec<(SubscriptionRow, Filter)> = self
            .subscriptions
            .lock()
            .expect("subs lock")
            .values()
            // Disabled ones too: their deliveries wait for them to be enabled again.
            .map(|s| {
                (
                    s.clone(),
                    serde_json::from_str(&s.filter).unwrap_or_default(),
                )
            })
            .collect();
        let now = now_ms();
        let mut deliveries = Vec::new();
        // Engine transitions only (operators' actions have an author).
        for line in lines.iter().filter(|l| l.by.is_none()) {
            for (sub, filter) in &subs {
                if line.seq > sub.start_seq && filter.matches(&line.as_of()) {
                    deliveries.push(DeliveryRow {
                        id: format!("msg_{}_{}", sub.id, line.seq),
                        subscription: sub.id.clone(),
                        alert_id: line.alert.alert_id.clone(),
                        change_seq: line.seq,
                        event: line.event.clone(),
                        payload: super::payload::body(&sub.format, &sub.id, line),
                        created_at: now,
                        next_attempt_at: now,
                        attempts: 0,
                        status: "pending".into(),
                        delivered_at: None,
                        last_error: None,
                    });
                }
            }
        }
        store.webhook_enqueue(last, &deliveries).await?;
        if !deliveries.is_empty() {
            self.wake.notify_waiters();
        }
        Ok(lines.len() == READ)
    }
}
