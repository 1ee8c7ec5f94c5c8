//! The CAP output (`[[output]] type = "cap"`): every engine transition in the incident
//! store's timeline after the output's cursor becomes a CAP 1.2 message — the same
//! identifier, references and XML as `GET /cap/alerts/{identifier}.xml` — written through
//! the pipeline's own sinks to a file (one message per line), an MQTT topic or a Kafka topic
//! (keyed by the alert id). Drills' messages (status `Exercise`) go only with
//! `exercises = true`, and only to the destination's exercise twin.
//!
//! Invariants: the cursor (`cap:<name>` in the store, `name` required and unique) moves
//! only after the sinks confirmed every message up to it (file synced, MQTT acknowledged,
//! Kafka delivery reports), so a crash or a broker outage loses nothing; while a sink
//! cannot confirm, nothing more is handed to it (it keeps and re-sends what it holds), and
//! messages are handed a second time only when a broker lost them or the process
//! restarted — with the same identifier and XML (a CAP receiver drops the repeat); a new
//! output starts at the end of the timeline (no flood of history); a message that can never
//! be written is counted and logged, never retried for ever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use watchfloor_city::City;
use watchfloor_connectors::config::OutputConfig;
use watchfloor_connectors::AlertSink;
use watchfloor_store::{AlertQuery, ChangeRow, Store};

use super::{message, to_xml, Sender};

/// Timeline lines read per round.
const READ: usize = 200;
/// How often the timeline is looked at when it had nothing new.
const POLL: Duration = Duration::from_millis(250);
/// The wait before trying again after a sink or the store failed (doubling to
/// [`MAX_BACKOFF`]).
const RETRY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One CAP output's settings.
#[derive(Debug, Clone)]
pub struct CapOutputConfig {
    /// Its name (its cursor is `cap:<name>`).
    pub name: String,
    /// Where the XML goes (file, MQTT or Kafka).
    pub to: OutputConfig,
    /// Drills' messages too, on `to`'s exercise twin.
    pub exercises: bool,
    /// MQTT packet size.
    pub max_payload: usize,
}

/// One output's counters, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    name: String,
    sent: AtomicU64,
    failed: AtomicU64,
}

static COUNTERS: Mutex<Vec<Arc<Counters>>> = Mutex::new(Vec::new());

/// The CAP outputs' counters, Prometheus text.
pub(crate) fn metrics(out: &mut String) {
    use std::fmt::Write;
    let all = COUNTERS.lock().expect("counters lock").clone();
    if all.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP watchfloor_cap_output_messages_total CAP messages confirmed by an output.\n# TYPE watchfloor_cap_output_messages_total counter");
    for c in &all {
        let _ = writeln!(
            out,
            "watchfloor_cap_output_messages_total{{output=\"{}\"}} {}",
            c.name,
            c.sent.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP watchfloor_cap_output_failures_total Rounds a CAP output had to try again, and messages it could not build.\n# TYPE watchfloor_cap_output_failures_total counter");
    for c in &all {
        let _ = writeln!(
            out,
            "watchfloor_cap_output_failures_total{{output=\"{}\"}} {}",
            c.name,
            c.failed.load(Ordering::Relaxed)
        );
    }
}

/// Opens the output's sinks and starts its task.
pub async fn spawn(
    store: Store,
    city: Option<Arc<City>>,
    sender: Sender,
    config: CapOutputConfig,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let real = config
        .to
        .build(config.max_payload)
        .await
        .map_err(|e| format!("CAP output {}: {e}", config.name))?;
    let twin = match config
        .to
        .forced_exercise_twin()
        .filter(|_| config.exercises)
    {
        Some(t) => Some(
            t.build(config.max_payload)
                .await
                .map_err(|e| format!("CAP output {} (exercises): {e}", config.name))?,
        ),
        None => None,
    };
    let key = format!("cap:{}", config.name);
    let cursor = match store.feed_cursor(&key).await.map_err(|e| e.to_string())? {
        Some(c) => c,
        None => {
            let end = store.last_change().await.map_err(|e| e.to_string())?;
            store
                .set_feed_cursor(&key, end)
                .await
                .map_err(|e| e.to_string())?;
            end
        }
    };
    let counters = Arc::new(Counters {
        name: config.name.clone(),
        ..Counters::default()
    });
    COUNTERS
        .lock()
        .expect("counters lock")
        .push(counters.clone());
    let mut task = Task {
        store,
        city,
        sender,
        key,
        exercises: config.exercises,
        real,
        twin,
        counters,
    };
    Ok(tokio::spawn(async move { task.run(cursor).await }))
}

struct Task {
    store: Store,
    city: Option<Arc<City>>,
    sender: Sender,
    key: String,
    exercises: bool,
    real: Box<dyn AlertSink>,
    twin: Option<Box<dyn AlertSink>>,
    counters: Arc<Counters>,
}

/// How a round ended.
struct Handed {
    /// The last line whose message is in a sink (or that needed none); `None`: nothing.
    upto: Option<i64>,
    /// Messages handed over.
    sent: u64,
    /// Why the round stopped early (a sink refused for now).
    stopped: Option<String>,
}

impl Task {
    async fn run(&mut self, mut cursor: i64) {
        let mut backoff = RETRY;
        loop {
            let lines = match self
                .store
                .changes(cursor, READ, &AlertQuery::default(), self.exercises)
                .await
            {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::warn!(output = %self.key, error = %e, "CAP output: the timeline is not readable; trying again");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if lines.is_empty() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let handed = self.hand_over(&lines).await;
            // What the sinks hold is confirmed before anything is handed again: a sink
            // keeps (and re-sends) what it has not confirmed, so a failed confirmation is
            // waited out, not answered by handing the same messages over a second time.
            if self.confirm().await {
                // The broker dropped what it had not acknowledged: from the cursor again.
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            if let Some(upto) = handed.upto {
                while let Err(e) = self.store.set_feed_cursor(&self.key, upto).await {
                    tracing::warn!(output = %self.key, error = %e, "CAP output: cursor not stored; trying again");
                    tokio::time::sleep(RETRY).await;
                }
                self.counters.sent.fetch_add(handed.sent, Ordering::Relaxed);
                cursor = upto;
            }
            match handed.stopped {
                Some(why) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(output = %self.key, error = %why, "CAP output: a message was not taken; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                None => backoff = RETRY,
            }
        }
    }

    /// Hands the messages of `lines`' engine transitions to the sinks, in order, until one
    /// refuses for now. A message that can never be written (it cannot be built, or the
    /// sink refuses it for good, e.g. too large) is logged, counted and passed over.
    async fn hand_over(&mut self, lines: &[ChangeRow]) -> Handed {
        let mut handed = Handed {
            upto: None,
            sent: 0,
            stopped: None,
        };
        for line in lines {
            if line.by.is_none() {
                match self.hand_one(line).await {
                    Ok(n) => handed.sent += n,
                    Err(why) => {
                        handed.stopped = Some(why);
                        return handed;
                    }
                }
            }
            handed.upto = Some(line.seq);
        }
        handed
    }

    /// One transition's message to its sink; how many were handed (0 or 1); `Err` when
    /// it should be tried again.
    async fn hand_one(&mut self, line: &ChangeRow) -> Result<u64, String> {
        let a = &line.alert;
        let exercise = a.labels.contains_key(watchfloor_model::EXERCISE_LABEL);
        if exercise && self.twin.is_none() {
            return Ok(0);
        }
        let earlier: Vec<ChangeRow> = self
            .store
            .alert_transitions(&a.alert_id)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|e| e.seq < line.seq)
            .collect();
        let xml = match message(&self.sender, self.city.as_deref(), line, &earlier) {
            Ok(m) => to_xml(m),
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(output = %self.key, line = line.seq, error = %e, "CAP output: no message for this transition; passed over");
                return Ok(0);
            }
        };
        let sink = match self.twin.as_mut() {
            Some(twin) if exercise => twin,
            _ => &mut self.real,
        };
        let severity = line.as_of().severity;
        let vars = [("severity", severity.as_str()), ("rule", a.rule.as_str())];
        match sink
            .send_payload(&a.alert_id, &vars, xml.into_bytes())
            .await
        {
            Ok(()) => Ok(1),
            Err(e) if !e.retryable() => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(output = %self.key, line = line.seq, error = %e, "CAP output: the destination refuses this message for good; passed over");
                Ok(0)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits until the sinks confirmed everything handed to them (trying their flush
    /// again, with a growing wait, while it fails); `true` when a broker lost what it had
    /// not acknowledged (it must be handed again).
    async fn confirm(&mut self) -> bool {
        let mut backoff = RETRY;
        for sink in std::iter::once(&mut self.real).chain(self.twin.as_mut()) {
            loop {
                let flushed = sink.flush().await;
                if sink.take_lost() {
                    return true;
                }
                match flushed {
                    Ok(()) => break,
                    Err(e) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(output = %self.key, error = %e, "CAP output: not confirmed yet; waiting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        false
    }
}
