//! Where telemetry comes from, behind one trait: MQTT ([`mqtt`]) and Kafka (`kafka`,
//! cargo feature) sources, each built from its config ([`SourceConfig::build`]) and started
//! with the pipeline's queue ([`SourceContext`]).
//!
//! Backpressure: the queue to the engine is bounded; a source waits on it
//! ([`enqueue`]), stops reading its connection, and its broker stops sending. A message
//! carries its acknowledgement ([`Ack`]), which the pipeline sends only once the message's
//! effects are safe.

#[cfg(feature = "kafka")]
pub mod kafka;
mod mqtt;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rumqttc::Publish;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::SourceConfig;
use crate::stats::PipelineStats;

/// Largest MQTT packet accepted from the broker: the protocol maximum, so that an oversize
/// message is received and dead-lettered instead of breaking the connection (and being
/// redelivered forever).
pub(crate) const MQTT_MAX_PACKET: usize = 268_435_455;

/// Why a source could not start (fatal: the pipeline file or the build is wrong).
#[derive(Debug, Error)]
pub enum SourceError {
    /// The Kafka client refused its settings or subscription.
    #[error("kafka source: {0}")]
    Kafka(String),
    /// This build cannot read from it.
    #[error("{0}")]
    Unsupported(String),
    /// Its settings cannot be used (a password variable not set).
    #[error("{0}")]
    Config(String),
}

/// A received message and how to acknowledge it.
pub struct Inbound {
    /// Index of the source in the pipeline.
    pub source: usize,
    /// Topic it arrived on.
    pub topic: String,
    /// Its bytes.
    pub payload: Bytes,
    /// Acknowledgement, sent once its effects are safe.
    pub ack: Ack,
}

/// How to acknowledge a message.
pub enum Ack {
    /// MQTT QoS 1: handed to the source's ack task, which sends the PUBACK. The engine never
    /// waits on the MQTT client itself: its request channel is drained by the polling task,
    /// which may be waiting on the engine's queue (the rumqttc deadlock).
    /// The number is the connection of the session it came on.
    Mqtt(mpsc::UnboundedSender<Publish>, Box<Publish>, u32),
    /// Kafka: store the offset for the next commit.
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaAck),
    /// Nothing to acknowledge (QoS 0).
    None,
}

impl Ack {
    /// Acknowledges processed input (Kafka offsets stored once per batch).
    pub fn release_all(acks: Vec<Ack>) {
        #[cfg(feature = "kafka")]
        let mut kafka = Vec::new();
        for ack in acks {
            match ack {
                // Fails only if the source task is gone; the broker then redelivers.
                Ack::Mqtt(acker, publish, _) => {
                    let _ = acker.send(*publish);
                }
                #[cfg(feature = "kafka")]
                Ack::Kafka(ack) => kafka.push(ack),
                Ack::None => {}
            }
        }
        #[cfg(feature = "kafka")]
        kafka::KafkaAck::ack_all(kafka);
    }
}

/// A source's input channel opened or closed (a Kafka partition assigned or revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelEvent {
    /// Index of the source.
    pub source: usize,
    /// The partition.
    pub partition: i32,
    /// Assigned (true) or revoked.
    pub open: bool,
}

/// What a started source feeds.
pub struct SourceContext {
    /// Index of the source in the pipeline.
    pub index: usize,
    /// The engine's bounded queue.
    pub queue: mpsc::Sender<Inbound>,
    /// Partitions assigned and revoked.
    pub channels: mpsc::UnboundedSender<ChannelEvent>,
    /// Counters.
    pub stats: Arc<PipelineStats>,
}

/// A telemetry source, ready to start.
pub trait Source: Send {
    /// Starts the source's tasks; they run until the queue closes.
    fn start(self: Box<Self>, context: SourceContext) -> Result<(), SourceError>;
}

impl SourceConfig {
    /// The source this config describes; `inflight` bounds an MQTT session's
    /// unacknowledged messages.
    pub fn build(&self, inflight: u16) -> Result<Box<dyn Source>, SourceError> {
        match self {
            SourceConfig::Mqtt {
                host,
                port,
                client_id,
                topics,
                username,
                password_env,
                tls,
                ca_file,
                ..
            } => Ok(Box::new(mqtt::MqttSource {
                host: host.clone(),
                port: *port,
                client_id: client_id.clone(),
                topics: topics.clone(),
                inflight,
                login: crate::mqtt::MqttLogin::from_config(
                    username.as_deref(),
                    password_env.as_deref(),
                    *tls,
                    ca_file.as_deref(),
                )
                .map_err(SourceError::Config)?,
            })),
            #[cfg(feature = "kafka")]
            SourceConfig::Kafka {
                brokers,
                group_id,
                topics,
                options,
                ..
            } => Ok(Box::new(kafka::KafkaSource {
                brokers: brokers.clone(),
                group_id: group_id.clone(),
                topics: topics.clone(),
                options: options.clone(),
            })),
            #[cfg(not(feature = "kafka"))]
            SourceConfig::Kafka { .. } => Err(SourceError::Unsupported(
                "this build has no Kafka support (feature `kafka`)".into(),
            )),
        }
    }
}

/// Hands a received message to the engine, counting it in the queue depth. Waits while
/// the queue is full: that is the backpressure. `false` once the engine is gone.
pub(crate) async fn enqueue(
    tx: &mpsc::Sender<Inbound>,
    stats: &PipelineStats,
    inbound: Inbound,
) -> bool {
    stats.queue_depth.fetch_add(1, Ordering::Relaxed);
    if tx.send(inbound).await.is_err() {
        stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    true
}
