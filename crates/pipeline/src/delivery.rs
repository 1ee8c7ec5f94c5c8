//! Delivery: every sink runs in a task of its own, fed through a channel, so a sink that
//! is slow or down never holds the engine task (operators' commands keep being served).
//!
//! Invariants:
//! - Items reach a sink in the order the engine handed them over; an item counts as
//!   confirmed ([`Delivery::confirmed`]) only once the sink says it is safe at the
//!   destination, or once it is in the sink's undelivered file after the sink gave up.
//!   The engine acknowledges input only past confirmed items, so nothing is lost silently.
//! - A failing operation (or one taking over 10 s) is retried with a capped exponential
//!   backoff (100 ms doubling to 30 s) while `/healthz` and `/metrics` show the output
//!   stuck, with its reason; so does an output whose destination confirms nothing for
//!   5 s (an MQTT broker that went away). The give-up point: an error that cannot pass (a permission refused, an output this build
//!   lacks) at once, any other after `[limits] output_give_up` of failing. Then the sink
//!   is parked: what it holds and everything after goes to
//!   `<undelivered_dir>/<output>.ndjson` (synced), counted in
//!   `watchfloor_output_undelivered_total`, and the centre stays live. Only a failure to
//!   write that file stops the pipeline ([`Delivery::failed`]).
//! - The engine is woken (the `wake` given to [`Delivery::start`]) whenever the confirmed
//!   mark advances or the output fails, so acknowledgements leave without polling.
//! - Memory: the engine stops taking input while a sink's backlog is over
//!   [`Delivery::backlog`]'s bound (the runner checks), so a channel holds at most that
//!   plus what operators' commands cause.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use watchfloor_connectors::{AlertSink, OutputError, PipelineStats};
use watchfloor_model::AlertTransition;

/// How long items may wait for the destination's confirmation before the output is
/// reported stuck.
const CONFIRM_WAIT: Duration = Duration::from_secs(5);
/// How long one operation of a sink may take before it counts as failed (and is tried
/// again).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; doubled up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The backoff's cap.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Items a sink task takes from its channel at once.
const TAKE: usize = 512;

/// What the engine hands a sink.
#[derive(Clone)]
pub(crate) enum Item {
    /// An alert transition (shared by every output).
    Alert(Arc<AlertTransition>),
    /// A dead-letter record.
    Record(Arc<serde_json::Value>),
}

impl Item {
    fn to_line(&self) -> Vec<u8> {
        let mut line = match self {
            Item::Alert(t) => serde_json::to_vec(t.as_ref()),
            Item::Record(r) => serde_json::to_vec(r.as_ref()),
        }
        .expect("items serialise");
        line.push(b'\n');
        line
    }
}

/// When to stop retrying and where undelivered items go.
#[derive(Clone, Debug)]
pub(crate) struct RetryPolicy {
    /// Give up after failing this long (`None`: never).
    pub give_up: Option<Duration>,
    /// Folder of the undelivered files.
    pub undelivered_dir: PathBuf,
}

/// The engine's side of a sink task.
pub(crate) struct Delivery {
    name: String,
    tx: Option<mpsc::UnboundedSender<Item>>,
    sent: u64,
    confirmed: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Delivery {
    /// Starts the task of `sink`, named `name` in logs and health reports; `wake` is
    /// notified each time more is confirmed (or the output failed).
    pub(crate) fn start(
        name: String,
        sink: Box<dyn AlertSink>,
        policy: RetryPolicy,
        stats: Arc<PipelineStats>,
        wake: Arc<Notify>,
    ) -> Delivery {
        let (tx, rx) = mpsc::unbounded_channel();
        let confirmed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(None));
        let driver = Driver {
            name: name.clone(),
            sink,
            rx,
            received: 0,
            unconfirmed: VecDeque::new(),
            confirmed: confirmed.clone(),
            failed: failed.clone(),
            stats,
            policy,
            parked: None,
            waiting_reported: false,
            wake,
        };
        Delivery {
            name,
            tx: Some(tx),
            sent: 0,
            confirmed,
            failed,
            task: Some(tokio::spawn(driver.run())),
        }
    }

    /// Hands one item over (never waits).
    pub(crate) fn send(&mut self, item: Item) {
        if let Some(tx) = &self.tx {
            self.sent += 1;
            // The task ends only after the channel closes, or when its undelivered file
            // failed, which `failed` reports.
            let _ = tx.send(item);
        }
    }

    /// A mark of everything handed over so far.
    pub(crate) fn mark(&self) -> u64 {
        self.sent
    }

    /// Is everything up to `mark` confirmed?
    pub(crate) fn confirmed(&self, mark: u64) -> bool {
        self.confirmed.load(Ordering::Acquire) >= mark
    }

    /// Items handed over and not yet confirmed.
    pub(crate) fn backlog(&self) -> u64 {
        self.sent
            .saturating_sub(self.confirmed.load(Ordering::Acquire))
    }

    /// Why the sink can deliver nothing more, not even to its undelivered file.
    pub(crate) fn failed(&self) -> Option<String> {
        self.failed
            .lock()
            .expect("delivery lock")
            .clone()
            .map(|why| format!("{}: {why}", self.name))
    }

    /// Closes the channel and waits (at most `within`) for the task to deliver and
    /// confirm what it holds; whether everything was confirmed.
    pub(crate) async fn close(&mut self, within: Duration) -> bool {
        self.tx = None;
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(within, task).await.is_err() {
                tracing::warn!(output = %self.name, "output still delivering at the stop");
            }
        }
        self.confirmed(self.sent)
    }
}

/// A sink that gave up: its undelivered file.
struct Parked {
    path: PathBuf,
    file: Arc<std::fs::File>,
}

/// The sink's task.
struct Driver {
    name: String,
    sink: Box<dyn AlertSink>,
    rx: mpsc::UnboundedReceiver<Item>,
    /// Items taken from the channel so far.
    received: u64,
    /// Batches handed to the sink and not yet confirmed: (items up to, the sink's mark,
    /// the items, when).
    unconfirmed: VecDeque<(u64, u64, Vec<Item>, Instant)>,
    confirmed: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
    stats: Arc<PipelineStats>,
    policy: RetryPolicy,
    parked: Option<Parked>,
    /// The output is reported stuck for waiting on confirmations.
    waiting_reported: bool,
    /// The engine's wake-up: more confirmed, or failed.
    wake: Arc<Notify>,
}

/// Retries `$op` (an expression giving the sink's future) with the policy's backoff;
/// evaluates to `Err(why)` at the give-up point.
macro_rules! attempt {
    ($driver:ident, $what:expr, $op:expr) => {{
        let mut delay = FIRST_DELAY;
        let mut failing_since: Option<Instant> = None;
        loop {
            let result = match tokio::time::timeout(OP_TIMEOUT, $op).await {
                Ok(result) => result,
                Err(_) => Err(OutputError::TimedOut(OP_TIMEOUT)),
            };
            match result {
                Ok(()) => {
                    if failing_since.is_some() {
                        tracing::info!(output = %$driver.name, "{} works again", $what);
                        // (Still stuck if its destination confirms nothing.)
                        if !$driver.waiting_reported {
                            $driver.stats.set_output_stuck(&$driver.name, None);
                        }
                    }
                    break Ok(());
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if let Some(why) = $driver.give_up_now(&e, since) {
                        break Err(why);
                    }
                    tracing::error!(output = %$driver.name, error = %e, retry_in_ms = delay.as_millis() as u64, "{} failed; retrying", $what);
                    $driver.stats.set_output_stuck(
                        &$driver.name,
                        Some(format!("{} failing for {} s: {e}", $what, since.elapsed().as_secs())),
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_DELAY);
                }
            }
        }
    }};
}

impl Driver {
    async fn run(mut self) {
        let mut open = true;
        loop {
            let batch = if open { self.take().await } else { None };
            match batch {
                Some(items) => {
                    if let Err(why) = self.deliver(items).await {
                        if self.park(why).await.is_err() {
                            return;
                        }
                    }
                }
                None => open = false,
            }
            self.confirm();
            if self.parked.is_none() && self.sink.take_lost() {
                if let Err(why) = self.resend().await {
                    if self.park(why).await.is_err() {
                        return;
                    }
                }
            }
            if let Err(why) = self.check_waiting() {
                if self.park(why).await.is_err() {
                    return;
                }
            }
            if !open {
                if self.unconfirmed.is_empty() {
                    return; // closed, and everything confirmed
                }
                // Closing: the confirmations still due (`Delivery::close` bounds the wait).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Reports the output stuck while its oldest unconfirmed items wait longer than
    /// [`CONFIRM_WAIT`]; `Err` once they waited past the give-up point.
    fn check_waiting(&mut self) -> Result<(), String> {
        if self.parked.is_some() {
            return Ok(());
        }
        let age = self
            .unconfirmed
            .front()
            .map_or(Duration::ZERO, |(_, _, _, at)| at.elapsed());
        if age < CONFIRM_WAIT.min(self.policy.give_up.unwrap_or(Duration::MAX)) {
            if self.waiting_reported {
                self.waiting_reported = false;
                tracing::info!(output = %self.name, "output confirms again");
                self.stats.set_output_stuck(&self.name, None);
            }
            return Ok(());
        }
        let count: usize = self
            .unconfirmed
            .iter()
            .map(|(_, _, items, _)| items.len())
            .sum();
        let why = format!(
            "{count} record(s) not confirmed by the destination for {} s",
            age.as_secs()
        );
        if self.policy.give_up.is_some_and(|limit| age >= limit) {
            return Err(why);
        }
        if !self.waiting_reported {
            tracing::warn!(output = %self.name, reason = %why, "output stuck");
        }
        self.waiting_reported = true;
        self.stats.set_output_stuck(&self.name, Some(why));
        Ok(())
    }

    /// The next items from the channel; `None` once it is closed and empty. While items
    /// wait for confirmation it returns every few milliseconds to check them.
    async fn take(&mut self) -> Option<Vec<Item>> {
        let first = if self.unconfirmed.is_empty() {
            self.rx.recv().await?
        } else {
            tokio::select! {
                item = self.rx.recv() => item?,
                _ = tokio::time::sleep(Duration::from_millis(5)) => return Some(Vec::new()),
            }
        };
        let mut items = vec![first];
        while items.len() < TAKE {
            match self.rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        Some(items)
    }

    /// Writes a batch to the sink (or to the undelivered file once parked).
    async fn deliver(&mut self, items: Vec<Item>) -> Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        self.received += items.len() as u64;
        if self.parked.is_some() {
            self.unconfirmed
                .push_back((self.received, 0, items, Instant::now()));
            return Err(String::new());
        }
        let result = self.hand(&items).await;
        let mark = self.sink.handed_over();
        self.unconfirmed
            .push_back((self.received, mark, items, Instant::now()));
        result
    }

    /// Writes `items` to the sink, then makes them safe where that is local; stops at the
    /// first operation past the give-up point. (After a failure the batch is parked whole,
    /// so the mark taken after it does not matter.)
    async fn hand(&mut self, items: &[Item]) -> Result<(), String> {
        let what = format!("output {}", self.name);
        for item in items {
            match item {
                Item::Alert(t) => attempt!(self, what, self.sink.send_alert(t))?,
                Item::Record(r) => attempt!(self, what, self.sink.send_record(r))?,
            }
        }
        attempt!(self, what, self.sink.flush_local())
    }

    /// Hands every unconfirmed item to the sink again (its destination lost them), with
    /// fresh marks. On a failure everything not yet handed again stays unconfirmed.
    async fn resend(&mut self) -> Result<(), String> {
        let batches: Vec<_> = self.unconfirmed.drain(..).collect();
        let count: usize = batches.iter().map(|(_, _, items, _)| items.len()).sum();
        tracing::warn!(output = %self.name, records = count, "publishing again what the destination lost");
        let mut rest = batches.into_iter();
        while let Some((upto, _, items, _)) = rest.next() {
            let result = self.hand(&items).await;
            let mark = self.sink.handed_over();
            self.unconfirmed
                .push_back((upto, mark, items, Instant::now()));
            if let Err(why) = result {
                self.unconfirmed.extend(rest);
                return Err(why);
            }
        }
        Ok(())
    }

    /// Moves what the sink confirmed out of the unconfirmed list.
    fn confirm(&mut self) {
        while let Some((upto, mark, _, _)) = self.unconfirmed.front() {
            if self.parked.is_some() || !self.sink.confirmed(*mark) {
                break;
            }
            self.confirmed.store(*upto, Ordering::Release);
            self.unconfirmed.pop_front();
            self.wake.notify_one();
        }
    }

    /// `Some(why)` when the failure `e`, failing since `since`, is past the give-up point.
    fn give_up_now(&self, e: &OutputError, since: Instant) -> Option<String> {
        if !e.retryable() {
            return Some(format!("{e} (cannot pass by retrying)"));
        }
        let limit = self.policy.give_up?;
        (since.elapsed() >= limit).then(|| format!("{e} (failing for {} s)", limit.as_secs()))
    }

    /// Parks the sink (first time: opens its undelivered file) and writes every
    /// unconfirmed item there. `Err` when even that fails: the pipeline must stop.
    async fn park(&mut self, why: String) -> Result<(), ()> {
        if self.parked.is_none() {
            let file_name: String = self
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = self
                .policy
                .undelivered_dir
                .join(format!("{file_name}.ndjson"));
            let opened = std::fs::create_dir_all(&self.policy.undelivered_dir).and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            });
            match opened {
                Ok(file) => {
                    tracing::error!(output = %self.name, reason = %why, file = %path.display(), "output gave up; what it does not deliver goes to its undelivered file");
                    self.stats.set_output_stuck(
                        &self.name,
                        Some(format!(
                            "gave up: {why}; undelivered records go to {}",
                            path.display()
                        )),
                    );
                    self.parked = Some(Parked {
                        path,
                        file: Arc::new(file),
                    });
                }
                Err(e) => {
                    return self.fail(format!(
                        "gave up ({why}) and its undelivered file {} cannot be opened: {e}",
                        path.display()
                    ))
                }
            }
        }
        let parked = self.parked.as_mut().expect("parked above");
        let mut bytes = Vec::new();
        let mut upto = None;
        let mut count = 0u64;
        for (end, _, items, _) in self.unconfirmed.drain(..) {
            for item in &items {
                bytes.extend(item.to_line());
            }
            count += items.len() as u64;
            upto = Some(end);
        }
        // On a blocking thread: a slow disk must not stall the runtime the engine and the
        // server share.
        let file = parked.file.clone();
        let written = tokio::task::spawn_blocking(move || {
            (&*file).write_all(&bytes).and_then(|()| file.sync_data())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = written {
            let path = parked.path.display().to_string();
            return self.fail(format!(
                "its undelivered file {path} cannot be written: {e}"
            ));
        }
        self.stats.undelivered.fetch_add(count, Ordering::Relaxed);
        if let Some(upto) = upto {
            self.confirmed.store(upto, Ordering::Release);
            self.wake.notify_one();
        }
        Ok(())
    }

    fn fail(&mut self, why: String) -> Result<(), ()> {
        tracing::error!(output = %self.name, reason = %why, "output failed for good; the pipeline stops (its input stays unacknowledged)");
        self.stats.set_output_stuck(&self.name, Some(why.clone()));
        *self.failed.lock().expect("delivery lock") = Some(why);
        self.wake.notify_one();
        Err(())
    }
}
