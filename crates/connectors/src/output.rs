//! Destinations for alert transitions and dead letters: NDJSON files and MQTT topics.
//! `flush` returns only once what was sent is safe (written to the file, or acknowledged by
//! the broker), so sources may acknowledge their input after it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use watchfloor_model::AlertTransition;

use crate::config::OutputConfig;

/// An output failure. Every variant is worth retrying: the input stays unacknowledged.
#[derive(Debug, Error)]
pub enum OutputError {
    /// File I/O failed.
    #[error("file output: {0}")]
    Io(#[from] std::io::Error),
    /// The MQTT client refused the request (its queue is closed).
    #[error("mqtt output: {0}")]
    Mqtt(#[from] rumqttc::ClientError),
    /// Kafka refused or did not confirm a record (or this build has no Kafka support).
    #[error("kafka: {0}")]
    Kafka(String),
    /// The broker did not acknowledge in time.
    #[error("mqtt output: broker did not acknowledge {0} message(s) within {1:?}")]
    Unacknowledged(u64, Duration),
}

/// A place records are written to.
pub enum Output {
    /// Appends NDJSON lines.
    File(tokio::io::BufWriter<tokio::fs::File>),
    /// Publishes at QoS 1.
    Mqtt(MqttOutput),
    /// Produces to a Kafka topic.
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaOutput),
}

/// An MQTT publisher whose acknowledgements are counted by its event-loop task.
pub struct MqttOutput {
    client: AsyncClient,
    topic: String,
    published: u64,
    acked: Arc<AtomicU64>,
    acked_signal: Arc<Notify>,
}

/// How long `flush` waits for broker acknowledgements before reporting a retryable error.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

impl Output {
    /// Opens an output.
    pub async fn open(config: &OutputConfig, max_payload: usize) -> Result<Output, OutputError> {
        match config {
            OutputConfig::File { path } => {
                if let Some(dir) = Path::new(path).parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?;
                Ok(Output::File(tokio::io::BufWriter::new(file)))
            }
            OutputConfig::Mqtt {
                host,
                port,
                client_id,
                topic,
            } => {
                let mut options = MqttOptions::new(client_id.clone(), host.clone(), *port);
                options.set_keep_alive(Duration::from_secs(15));
                options.set_clean_session(false);
                options.set_max_packet_size(max_payload + 64 * 1024, max_payload * 2 + 64 * 1024);
                options.set_inflight(1000);
                let (client, mut event_loop) = crate::mqtt::mqtt_client(options, 1024);
                let acked = Arc::new(AtomicU64::new(0));
                let acked_signal = Arc::new(Notify::new());
                let (counter, signal) = (acked.clone(), acked_signal.clone());
                tokio::spawn(async move {
                    loop {
                        match event_loop.poll().await {
                            Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                                counter.fetch_add(1, Ordering::Release);
                                signal.notify_waiters();
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "mqtt output connection lost, reconnecting");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                });
                Ok(Output::Mqtt(MqttOutput {
                    client,
                    topic: topic.clone(),
                    published: 0,
                    acked,
                    acked_signal,
                }))
            }
            #[cfg(feature = "kafka")]
            OutputConfig::Kafka {
                brokers,
                topic,
                options,
            } => Ok(Output::Kafka(crate::kafka::KafkaOutput::open(
                brokers, topic, options,
            )?)),
            #[cfg(not(feature = "kafka"))]
            OutputConfig::Kafka { .. } => Err(OutputError::Kafka(
                "this build has no Kafka support (feature `kafka`)".into(),
            )),
        }
    }

    /// Writes one alert transition (the topic template may use `{severity}` and `{rule}`).
    pub async fn send_alert(&mut self, transition: &AlertTransition) -> Result<(), OutputError> {
        let line = serde_json::to_vec(transition).expect("transitions serialise");
        match self {
            Output::File(w) => {
                w.write_all(&line).await?;
                w.write_all(b"\n").await?;
            }
            Output::Mqtt(m) => {
                let topic = m
                    .topic
                    .replace("{severity}", transition.severity.as_str())
                    .replace("{rule}", &transition.rule);
                m.client
                    .publish(topic, QoS::AtLeastOnce, false, line)
                    .await?;
                m.published += 1;
            }
            #[cfg(feature = "kafka")]
            Output::Kafka(k) => k.send(&transition.alert_id, line)?,
        }
        Ok(())
    }

    /// Writes one raw record (a dead letter).
    pub async fn send_record(&mut self, record: &serde_json::Value) -> Result<(), OutputError> {
        let line = serde_json::to_vec(record).expect("records serialise");
        match self {
            Output::File(w) => {
                w.write_all(&line).await?;
                w.write_all(b"\n").await?;
            }
            Output::Mqtt(m) => {
                let reason = record["reason"].as_str().unwrap_or("unknown");
                let topic = m.topic.replace("{reason}", reason);
                m.client
                    .publish(topic, QoS::AtLeastOnce, false, line)
                    .await?;
                m.published += 1;
            }
            #[cfg(feature = "kafka")]
            Output::Kafka(k) => {
                let reason = record["reason"].as_str().unwrap_or("unknown").to_string();
                k.send(&reason, line)?;
            }
        }
        Ok(())
    }

    /// A mark of what was handed over so far (MQTT: publishes); see [`Output::confirmed`].
    pub fn handed_over(&self) -> u64 {
        match self {
            Output::Mqtt(m) => m.published,
            _ => 0,
        }
    }

    /// Whether everything up to `mark` is durable at the destination (outputs that confirm
    /// in [`Output::flush_local`] are always confirmed).
    pub fn confirmed(&self, mark: u64) -> bool {
        match self {
            Output::Mqtt(m) => m.acked.load(Ordering::Acquire) >= mark,
            _ => true,
        }
    }

    /// Makes what was sent durable where that is local and quick (file flush, Kafka
    /// delivery reports); MQTT acknowledgements are counted as they arrive instead, so the
    /// engine does not wait a broker round trip per batch.
    pub async fn flush_local(&mut self) -> Result<(), OutputError> {
        match self {
            Output::Mqtt(_) => Ok(()),
            _ => self.flush().await,
        }
    }

    /// Returns once everything sent so far is durable at the destination.
    pub async fn flush(&mut self) -> Result<(), OutputError> {
        match self {
            Output::File(w) => {
                w.flush().await?;
                Ok(())
            }
            Output::Mqtt(m) => {
                let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
                loop {
                    let notified = m.acked_signal.notified();
                    let acked = m.acked.load(Ordering::Acquire);
                    if acked >= m.published {
                        return Ok(());
                    }
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(OutputError::Unacknowledged(
                            m.published - acked,
                            ACK_TIMEOUT,
                        ));
                    }
                }
            }
            #[cfg(feature = "kafka")]
            Output::Kafka(k) => k.flush().await,
        }
    }
}
