//! The live pipeline: sources → bounded queue → engine → outputs, with dead letters; a
//! message is acknowledged only once it is durable in the write-ahead log (with a
//! checkpoint configured) and the alerts it caused are confirmed by every output
//! (`crate::durable` says how state survives a crash).
//!
//! Backpressure: the queue between sources and the engine is bounded; when it is full a
//! source stops polling its connection, its in-flight window fills, and the broker stops
//! sending. Memory stays bounded by `queue_capacity` and `mqtt_inflight`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rumqttc::Publish;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::{ConfigError, PipelineConfig, SourceConfig};
use crate::control::{EngineCommand, PipelineLink};
use crate::decode::Decoder;
use crate::output::{Output, OutputError};

mod mqtt_source;
mod runner;
pub(crate) mod step;

pub use step::dead_letter_record;

/// Why a pipeline could not start or had to stop.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The pipeline file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rules do not load.
    #[error("rules: {0}")]
    Rules(#[from] watchfloor_engine::RuleErrors),
    /// An output could not be opened.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The write-ahead log cannot be opened or written (fatal: input could no longer be
    /// made durable).
    #[error(transparent)]
    Wal(#[from] watchfloor_wal::WalError),
}

/// Largest MQTT packet accepted from the broker: the protocol maximum, so that an oversize
/// message is received and dead-lettered instead of breaking the connection (and being
/// redelivered forever).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// Batches whose acknowledgements may wait for output confirmation at once.
const MAX_PENDING_BATCHES: usize = 64;
/// Messages taken from the queue per engine step.
const BATCH: usize = 512;

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
    Kafka(crate::kafka::KafkaAck),
    /// Nothing to acknowledge (QoS 0).
    None,
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

/// Counters of a running pipeline, readable from other tasks.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Messages received from sources.
    pub received: AtomicU64,
    /// Events accepted by the engine.
    pub accepted: AtomicU64,
    /// Alert transitions written to the outputs.
    pub transitions: AtomicU64,
    /// Messages waiting in the queue for the engine.
    pub queue_depth: AtomicU64,
    /// An output that keeps failing (its name, for how long, the last error); `None` while
    /// every output works.
    pub output_stuck: std::sync::Mutex<Option<String>>,
    /// Rejections by reason code.
    pub rejected: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// Messages a broker sent again that were already in the write-ahead log: acknowledged,
    /// not processed twice.
    pub redelivered: AtomicU64,
    /// Write-ahead log: the last sequence known durable.
    pub wal_durable: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// Size of the last checkpoint, bytes.
    pub checkpoint_bytes: AtomicU64,
    /// Time the engine stopped to serialise the last checkpoint, microseconds.
    pub checkpoint_serialize_us: AtomicU64,
    /// Time the last checkpoint took to reach the disk (write, fsync, rename; in the
    /// background), microseconds.
    pub checkpoint_write_us: AtomicU64,
}

impl PipelineStats {
    /// Records that an output is stuck (`Some(why)`) or works again (`None`).
    pub fn set_output_stuck(&self, reason: Option<String>) {
        *self.output_stuck.lock().expect("stats lock") = reason;
    }

    /// Why an output is stuck, if one is.
    pub fn output_stuck(&self) -> Option<String> {
        self.output_stuck.lock().expect("stats lock").clone()
    }

    /// Total rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.lock().map(|m| m.values().sum()).unwrap_or(0)
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn spawn_source(
    index: usize,
    config: &SourceConfig,
    inflight: u16,
    tx: mpsc::Sender<Inbound>,
    channels: mpsc::UnboundedSender<ChannelEvent>,
    stats: Arc<PipelineStats>,
) -> Result<(), PipelineError> {
    #[cfg(not(feature = "kafka"))]
    let _ = &channels;
    match config {
        SourceConfig::Mqtt {
            host,
            port,
            client_id,
            topics,
            ..
        } => {
            mqtt_source::spawn_mqtt_source(
                index,
                host.clone(),
                *port,
                client_id.clone(),
                topics.clone(),
                inflight,
                tx,
                stats,
            );
            Ok(())
        }
        #[cfg(feature = "kafka")]
        SourceConfig::Kafka {
            brokers,
            group_id,
            topics,
            options,
            ..
        } => {
            crate::kafka::spawn_kafka_source(
                index, brokers, group_id, topics, options, tx, channels, stats,
            )?;
            Ok(())
        }
        #[cfg(not(feature = "kafka"))]
        SourceConfig::Kafka { .. } => Err(OutputError::Kafka(
            "this build has no Kafka support (feature `kafka`)".into(),
        )
        .into()),
    }
}

/// Runs a pipeline until `shutdown` resolves.
pub async fn run_pipeline(
    config: PipelineConfig,
    config_path: &Path,
    stats: Arc<PipelineStats>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    run_pipeline_linked(config, config_path, stats, None, shutdown).await
}

/// Runs a pipeline until `shutdown` resolves, watched and steered through `link` (the
/// command-centre server) when there is one.
pub async fn run_pipeline_linked(
    config: PipelineConfig,
    config_path: &Path,
    stats: Arc<PipelineStats>,
    link: Option<PipelineLink>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    let (observer, mut commands) = match link {
        Some(link) => (Some(link.observer), Some(link.commands)),
        None => (None, None),
    };
    let (rules, city) = watchfloor_city::load_rules(&config.rules)?;
    let engine_config = config.engine_config(config_path)?;
    let checkpoint_every =
        Duration::from_millis(config.checkpoint_ms(config_path)?.max(100) as u64);
    let checkpoint_path = config
        .engine
        .checkpoint
        .as_ref()
        .map(std::path::PathBuf::from);
    // Every message that can be in flight at a crash, several times over.
    let redelivery_capacity = 4
        * (config.limits.queue_capacity
            + BATCH * (MAX_PENDING_BATCHES + 1)
            + config.limits.mqtt_inflight as usize * config.sources.len().max(1));
    let opened = crate::durable::open(
        rules,
        engine_config,
        checkpoint_path.as_deref(),
        redelivery_capacity,
        stats.clone(),
    )?;
    let tick = Duration::from_millis(config.tick_ms(config_path)?.max(1) as u64);
    let max_payload = config.limits.max_payload_bytes;
    let mut outputs = Vec::new();
    for output in &config.outputs {
        outputs.push(Output::open(output, max_payload).await?);
    }
    let dead_letters = Output::open(&config.dead_letter, max_payload).await?;
    let decoders: Vec<(String, Decoder)> = config
        .sources
        .iter()
        .map(|s| (s.name().to_string(), Decoder::from_format(s.format())))
        .collect();
    let processor = step::Processor::new(
        opened.engine,
        city,
        decoders,
        config.decode_limits(),
        observer,
        stats.clone(),
    );
    let mut runner = runner::Runner::new(
        processor,
        outputs,
        dead_letters,
        opened.durable,
        checkpoint_every,
        stats.clone(),
    );
    // What the log holds after the checkpoint goes first: the sources start after it.
    runner.replay(opened.replay).await?;

    let (tx, mut rx) = mpsc::channel::<Inbound>(config.limits.queue_capacity);
    let (channel_tx, mut channel_rx) = mpsc::unbounded_channel::<ChannelEvent>();
    for (i, source) in config.sources.iter().enumerate() {
        spawn_source(
            i,
            source,
            config.limits.mqtt_inflight,
            tx.clone(),
            channel_tx.clone(),
            stats.clone(),
        )?;
    }
    drop(tx);
    drop(channel_tx);

    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch: Vec<Inbound> = Vec::with_capacity(BATCH);
    tokio::pin!(shutdown);
    tracing::info!(pipeline = %config.name, sources = config.sources.len(), "pipeline running");
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            first = rx.recv() => {
                let Some(first) = first else { break };
                batch.push(first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                stats.queue_depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                // Partitions assigned before these messages were fetched open first.
                while let Ok(event) = channel_rx.try_recv() {
                    runner.on_channel(event);
                }
                runner.on_batch(&mut batch, now_ms()).await?;
            }
            // Re-check the log and the outputs while acknowledgements wait for them.
            _ = tokio::time::sleep(Duration::from_millis(2)), if runner.has_pending() => {}
            _ = ticker.tick() => {
                runner.processor.tick(now_ms());
                runner.hand_over().await;
            }
            Some(event) = channel_rx.recv() => runner.on_channel(event),
            command = recv_command(&mut commands) => {
                runner.on_command(command);
                runner.hand_over().await;
            }
        }
        runner.after_step().await?;
    }
    runner.shutdown().await?;
    tracing::info!(pipeline = %config.name, "pipeline stopped");
    Ok(())
}

/// The next command, or never when there is no command channel (or it closed).
async fn recv_command(commands: &mut Option<mpsc::Receiver<EngineCommand>>) -> EngineCommand {
    match commands {
        Some(rx) => match rx.recv().await {
            Some(command) => command,
            None => {
                *commands = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Acknowledges processed input (Kafka offsets stored once per batch).
fn release(acks: Vec<Ack>) {
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
    crate::kafka::KafkaAck::ack_all(kafka);
}
