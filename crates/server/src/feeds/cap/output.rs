//! The CAP output (`[[output]] type = "cap"`): every engine transition in the incident
//! store's timeline after the output's cursor becomes a CAP 1.2 message — the same
//! identifier, references and XML as `GET /cap/alerts/{identifier}.xml` — written through
//! the pipeline's own sinks to a file (one message per line), an MQTT topic or a Kafka topic
//! (keyed by the alert id). Drills' messages (status `Exercise`) go only with
//! `exercises = true`, and only to the destination's exercise twin.
//!
//! Invariants: the cursor (`cap:<name>` in the store) moves only after the sinks confirmed
//! every message up to it (file synced, MQTT acknowledged, Kafka delivery reports), so a
//! crash or a broker outage loses nothing; what is written again after a crash has the same
//! identifier and XML (a CAP receiver drops the repeat); a new output starts at the end of
//! the timeline (no flood of history); a message that cannot be built is counted and
//! logged, never retried for ever.

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
/// The wait before trying again after a sink or the store failed.
const RETRY: Duration = Duration::from_secs(2);

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

impl Task {
    async fn run(&mut self, mut cursor: i64) {
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
            let Some(last) = lines.last().map(|l| l.seq) else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            match self.write(&lines).await {
                Ok(sent) => {
                    if let Err(e) = self.store.set_feed_cursor(&self.key, last).await {
                        // Written and confirmed but not recorded: written again next time
                        // (same identifiers).
                        tracing::warn!(output = %self.key, error = %e, "CAP output: cursor not stored");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                    self.counters.sent.fetch_add(sent, Ordering::Relaxed);
                    cursor = last;
                }
                Err(e) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(output = %self.key, error = %e, "CAP output: not confirmed; written again from the cursor");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Writes the messages of `lines`' engine transitions and waits until the sinks
    /// confirmed them; how many.
    async fn write(&mut self, lines: &[ChangeRow]) -> Result<u64, String> {
        let mut sent = 0;
        for line in lines.iter().filter(|l| l.by.is_none()) {
            let a = &line.alert;
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
                    tracing::error!(output = %self.key, line = line.seq, error = %e, "CAP output: no message for this transition");
                    continue;
                }
            };
            // One message per line in a file; XML keeps its meaning without the breaks
            // between elements.
            let xml = xml.replace('\n', "");
            let exercise = a.labels.contains_key(watchfloor_model::EXERCISE_LABEL);
            let sink = match (exercise, self.twin.as_mut()) {
                (false, _) => &mut self.real,
                (true, Some(twin)) => twin,
                (true, None) => continue,
            };
            let severity = line.as_of().severity;
            let vars = [("severity", severity.as_str()), ("rule", a.rule.as_str())];
            sink.send_payload(&a.alert_id, &vars, xml.into_bytes())
                .await
                .map_err(|e| e.to_string())?;
            sent += 1;
        }
        for sink in std::iter::once(&mut self.real).chain(self.twin.as_mut()) {
            sink.flush().await.map_err(|e| e.to_string())?;
            if sink.take_lost() {
                return Err("the broker lost unacknowledged messages".into());
            }
        }
        Ok(sent)
    }
}
