//! The live pipeline: sources → bounded queue → engine → outputs, with dead letters and
//! acknowledgements sent only after the alerts a message caused are safe at every output.
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
use rumqttc::{Event as MqttEvent, MqttOptions, Packet, Publish, QoS};
use serde_json::json;
use thiserror::Error;
use tokio::sync::mpsc;
use watchfloor_engine::{Emitted, Engine};
use watchfloor_model::{format_rfc3339, Rejection};

use crate::config::{ConfigError, PipelineConfig, SourceConfig};
use crate::control::{EngineCommand, PipelineLink};
use crate::decode::Decoder;
use crate::output::{Output, OutputError};

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
}

/// Largest MQTT packet accepted from the broker: the protocol maximum, so that an oversize
/// message is received and dead-lettered instead of breaking the connection (and being
/// redelivered forever).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// How often progress (rates, queue depth) is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);
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
    Mqtt(mpsc::UnboundedSender<Publish>, Box<Publish>),
    /// Kafka: store the offset for the next commit.
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaAck),
    /// Nothing to acknowledge (QoS 0).
    None,
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
    /// Rejections by reason code.
    pub rejected: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

impl PipelineStats {
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
    stats: Arc<PipelineStats>,
) -> Result<(), PipelineError> {
    match config {
        SourceConfig::Mqtt {
            host,
            port,
            client_id,
            topics,
            ..
        } => {
            spawn_mqtt_source(
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
            crate::kafka::spawn_kafka_source(index, brokers, group_id, topics, options, tx, stats)?;
            Ok(())
        }
        #[cfg(not(feature = "kafka"))]
        SourceConfig::Kafka { .. } => Err(OutputError::Kafka(
            "this build has no Kafka support (feature `kafka`)".into(),
        )
        .into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_mqtt_source(
    index: usize,
    host: String,
    port: u16,
    client_id: String,
    topics: Vec<String>,
    inflight: u16,
    tx: mpsc::Sender<Inbound>,
    stats: Arc<PipelineStats>,
) {
    tokio::spawn(async move {
        let mut options = MqttOptions::new(client_id.clone(), host, port);
        options.set_keep_alive(Duration::from_secs(15));
        // A persistent session: the broker keeps our subscription and queues QoS 1
        // messages while we are away; we acknowledge only after processing.
        options.set_clean_session(false);
        options.set_manual_acks(true);
        options.set_inflight(inflight);
        options.set_max_packet_size(MQTT_MAX_PACKET, 1024 * 1024);
        let (client, mut event_loop) = crate::mqtt::mqtt_client(options, 256);
        // Acks go through their own task; their number is bounded by the messages in
        // flight (queue capacity + one batch).
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Publish>();
        let acker = client.clone();
        tokio::spawn(async move {
            while let Some(publish) = ack_rx.recv().await {
                if let Err(e) = acker.ack(&publish).await {
                    tracing::warn!(error = %e, "ack failed; the broker will redeliver");
                }
            }
        });
        loop {
            match event_loop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(source = %client_id, "mqtt source connected");
                    // Never issue requests from the polling task: it could wait on a full
                    // request channel that only this task drains.
                    let (subscriber, topics) = (client.clone(), topics.clone());
                    tokio::spawn(async move {
                        for topic in topics {
                            if let Err(e) = subscriber.subscribe(topic, QoS::AtLeastOnce).await {
                                tracing::warn!(error = %e, "subscribe failed");
                            }
                        }
                    });
                }
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                    tracing::info!(source = %client_id, "mqtt source subscribed");
                }
                Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let topic = publish.topic.clone();
                    let payload = publish.payload.clone();
                    let ack = if publish.qos == QoS::AtMostOnce {
                        Ack::None
                    } else {
                        Ack::Mqtt(ack_tx.clone(), Box::new(publish))
                    };
                    let inbound = Inbound {
                        source: index,
                        topic,
                        payload,
                        ack,
                    };
                    if !enqueue(&tx, &stats, inbound).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(source = %client_id, error = %e, "mqtt source disconnected, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
}

/// A dead-letter record: the original bytes, the reason, and where the message came from.
pub fn dead_letter_record(
    message: &Inbound,
    source_name: &str,
    reason: &Rejection,
) -> serde_json::Value {
    let (transport, partition, offset): (&str, Option<i32>, Option<i64>) = match &message.ack {
        #[cfg(feature = "kafka")]
        Ack::Kafka(ack) => ("kafka", Some(ack.position().0), Some(ack.position().1)),
        _ => ("mqtt", None, None),
    };
    let (raw, raw_hex) = match std::str::from_utf8(&message.payload) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (
            None,
            Some(
                message
                    .payload
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ),
        ),
    };
    json!({
        "reason": reason.code(),
        "error": reason.to_string(),
        "source": source_name,
        "transport": transport,
        "topic": message.topic,
        "partition": partition,
        "offset": offset,
        "received_at": format_rfc3339(now_ms()),
        "raw": raw,
        "raw_hex": raw_hex,
        "raw_bytes": message.payload.len(),
    })
}

/// Retries an output operation until it succeeds: input is never acknowledged past a
/// failed output, and never dropped.
macro_rules! retry {
    ($what:expr, $op:expr) => {{
        let mut delay = Duration::from_millis(100);
        loop {
            match $op.await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "{} failed; retrying", $what);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }};
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
    let (rules, mut city) = watchfloor_city::load_rules(&config.rules)?;
    let engine_config = config.engine_config(config_path)?;
    let checkpoint_every =
        Duration::from_millis(config.checkpoint_ms(config_path)?.max(100) as u64);
    let checkpoint_path = config
        .engine
        .checkpoint
        .as_ref()
        .map(std::path::PathBuf::from);
    let (mut engine, restored_positions) =
        start_engine(rules, engine_config, checkpoint_path.as_deref());
    let mut positions = Positions::from_map(&restored_positions);
    let mut last_checkpoint = std::time::Instant::now();
    let tick = Duration::from_millis(config.tick_ms(config_path)?.max(1) as u64);
    let limits = config.decode_limits();
    let max_payload = config.limits.max_payload_bytes;
    let mut outputs = Vec::new();
    for output in &config.outputs {
        outputs.push(Output::open(output, max_payload).await?);
    }
    let mut dead_letters = Output::open(&config.dead_letter, max_payload).await?;
    let decoders: Vec<(String, Decoder)> = config
        .sources
        .iter()
        .map(|s| (s.name().to_string(), Decoder::from_format(s.format())))
        .collect();

    let (tx, mut rx) = mpsc::channel::<Inbound>(config.limits.queue_capacity);
    for (i, source) in config.sources.iter().enumerate() {
        spawn_source(
            i,
            source,
            config.limits.mqtt_inflight,
            tx.clone(),
            stats.clone(),
        )?;
    }
    drop(tx);

    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut emitted = Emitted::default();
    let mut batch: Vec<Inbound> = Vec::with_capacity(BATCH);
    let mut records: Vec<serde_json::Value> = Vec::new();
    tokio::pin!(shutdown);
    let mut last_report = std::time::Instant::now();
    let mut pending: std::collections::VecDeque<PendingBatch> = std::collections::VecDeque::new();
    let mut last_received = 0u64;
    tracing::info!(pipeline = %config.name, sources = decoders.len(), "pipeline running");
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
                let now = now_ms();
                engine.tick(now, &mut emitted);
                for message in &batch {
                    let (name, decoder) = &decoders[message.source];
                    for decoded in decoder.decode(&message.topic, &message.payload, Some(now), &limits) {
                        let placed = decoded.and_then(|mut event| {
                            if let Some(city) = &city {
                                city.place(&mut event)?;
                            }
                            Ok(event)
                        });
                        match placed.and_then(|event| {
                            engine.process(&event, &mut emitted)?;
                            if let Some(observer) = &observer {
                                observer.on_event(&event);
                            }
                            Ok(())
                        }) {
                            Ok(()) => {
                                stats.accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(reason) => {
                                if let Ok(mut counts) = stats.rejected.lock() {
                                    *counts.entry(reason.code()).or_insert(0) += 1;
                                }
                                records.push(dead_letter_record(message, name, &reason));
                            }
                        }
                    }
                }
            }
            // Re-check output confirmations while input waits for them.
            _ = tokio::time::sleep(Duration::from_millis(5)), if !pending.is_empty() => {}
            _ = ticker.tick() => {
                engine.tick(now_ms(), &mut emitted);
            }
            command = recv_command(&mut commands) => match command {
                EngineCommand::Acknowledge { id, ack, reply } => {
                    let _ = reply.send(engine.acknowledge(&id, ack));
                }
                EngineCommand::Resolve { id, at, reply } => {
                    let _ = reply.send(engine.resolve_manually(&id, at, &mut emitted));
                }
                EngineCommand::Reload { rules, city: new_city, reply } => {
                    let summary = engine.reload(rules, &mut emitted);
                    city = new_city;
                    tracing::info!(kept = summary.kept.len(), changed = summary.changed.len(), added = summary.added.len(), removed = summary.removed.len(), "rules reloaded");
                    let _ = reply.send(summary);
                }
                EngineCommand::ActiveAlerts { reply } => {
                    let _ = reply.send(engine.active_alerts());
                }
            },
        }
        if let (Some(observer), false) = (&observer, emitted.transitions.is_empty()) {
            observer.on_transitions(&emitted.transitions);
        }
        // Hand alerts and dead letters over, wait until they are safe, then acknowledge.
        for transition in &emitted.transitions {
            for output in outputs.iter_mut() {
                retry!("alert output", output.send_alert(transition));
            }
        }
        stats
            .transitions
            .fetch_add(emitted.transitions.len() as u64, Ordering::Relaxed);
        emitted.transitions.clear();
        for record in &records {
            retry!("dead-letter output", dead_letters.send_record(record));
        }
        records.clear();
        for output in outputs.iter_mut() {
            retry!("alert output flush", output.flush_local());
        }
        retry!("dead-letter flush", dead_letters.flush_local());
        // The batch's input is acknowledged once every output confirms what was handed over
        // up to now; meanwhile the engine goes on with the next batch.
        if !batch.is_empty() {
            pending.push_back(PendingBatch {
                marks: outputs.iter().map(Output::handed_over).collect(),
                dead_letter_mark: dead_letters.handed_over(),
                acks: batch.drain(..).map(|m| m.ack).collect(),
            });
        }
        // A checkpoint must cover exactly the input the sources will not send again: every
        // processed message safe at the outputs and acknowledged.
        let checkpoint_due =
            checkpoint_path.is_some() && last_checkpoint.elapsed() >= checkpoint_every;
        if pending.len() > MAX_PENDING_BATCHES || checkpoint_due {
            // Outputs fell behind (bounded memory, backpressure), or a checkpoint is due:
            // wait for them, so every pending batch below is confirmed and released.
            for output in outputs.iter_mut() {
                retry!("alert output flush", output.flush());
            }
            retry!("dead-letter flush", dead_letters.flush());
        }
        while pending.front().is_some_and(|p| {
            outputs
                .iter()
                .zip(&p.marks)
                .all(|(o, mark)| o.confirmed(*mark))
                && dead_letters.confirmed(p.dead_letter_mark)
        }) {
            let done = pending.pop_front().expect("checked");
            release_and_track(done.acks, &mut positions);
        }
        if let (true, Some(path)) = (checkpoint_due, &checkpoint_path) {
            debug_assert!(pending.is_empty(), "flushed outputs confirm every batch");
            write_checkpoint(path, &engine, &positions);
            last_checkpoint = std::time::Instant::now();
        }
        // Progress, also under full load (the ticker branch above can starve then).
        if last_report.elapsed() >= REPORT_EVERY {
            let received = stats.received.load(Ordering::Relaxed);
            let accepted = stats.accepted.load(Ordering::Relaxed);
            tracing::info!(
                received,
                accepted,
                rejected = stats.rejected_total(),
                transitions = stats.transitions.load(Ordering::Relaxed),
                queue_depth = stats.queue_depth.load(Ordering::Relaxed),
                rate_per_s =
                    (received - last_received) as f64 / last_report.elapsed().as_secs_f64(),
                "pipeline progress"
            );
            last_received = received;
            last_report = std::time::Instant::now();
        }
    }
    // Shutting down: wait for the outputs, then acknowledge what they hold.
    for output in outputs.iter_mut() {
        if let Err(e) = output.flush().await {
            tracing::warn!(error = %e, "output not confirmed at shutdown; its input will be redelivered");
            return Ok(());
        }
    }
    if dead_letters.flush().await.is_ok() {
        for done in pending.drain(..) {
            release_and_track(done.acks, &mut positions);
        }
        if let Some(path) = &checkpoint_path {
            write_checkpoint(path, &engine, &positions);
        }
    }
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

/// Input whose alerts were handed to the outputs, waiting for them to confirm.
struct PendingBatch {
    marks: Vec<u64>,
    dead_letter_mark: u64,
    acks: Vec<Ack>,
}

/// The engine, resumed from the checkpoint at `path` when there is a readable one (an
/// unreadable one is set aside as `<path>.unreadable` and the engine starts empty), with the
/// source positions the checkpoint covered.
fn start_engine(
    rules: watchfloor_engine::RuleSet,
    config: watchfloor_engine::EngineConfig,
    path: Option<&Path>,
) -> (Engine, BTreeMap<String, String>) {
    let Some(path) = path.filter(|p| p.exists()) else {
        return (Engine::new(rules, config), BTreeMap::new());
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the checkpoint; starting empty");
            return (Engine::new(rules, config), BTreeMap::new());
        }
    };
    match Engine::restore(rules.clone(), config.clone(), &bytes) {
        Ok((engine, restored)) => {
            tracing::info!(
                path = %path.display(),
                rules_resumed = restored.kept.len(),
                rules_dropped = ?restored.dropped,
                positions = ?restored.positions,
                "engine state restored from the checkpoint"
            );
            (engine, restored.positions)
        }
        Err(e) => {
            let aside = path.with_extension("unreadable");
            let _ = std::fs::rename(path, &aside);
            tracing::error!(path = %path.display(), error = %e, kept_as = %aside.display(), "checkpoint unreadable; starting empty");
            (Engine::new(rules, config), BTreeMap::new())
        }
    }
}

/// Writes the checkpoint atomically (a temporary file, synced, then renamed over the old
/// one), so a crash while writing leaves the previous checkpoint intact.
fn write_checkpoint(path: &Path, engine: &Engine, positions: &Positions) {
    let bytes = engine.checkpoint(&positions.to_map());
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    match result {
        Ok(()) => {
            tracing::debug!(path = %path.display(), bytes = bytes.len(), "checkpoint written")
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "checkpoint not written; the previous one stays")
        }
    }
}

/// How far the sources got, as acknowledged: MQTT, the number of messages (MQTT has no
/// offsets: the broker redelivers what was not acknowledged); Kafka, the next offset of
/// each partition. Counted per acknowledgement, written out only with a checkpoint.
#[derive(Debug, Default)]
struct Positions {
    mqtt_acknowledged: u64,
    kafka_next: BTreeMap<i32, i64>,
}

impl Positions {
    fn from_map(map: &BTreeMap<String, String>) -> Positions {
        let mut p = Positions::default();
        for (k, v) in map {
            if k == "mqtt:acknowledged" {
                p.mqtt_acknowledged = v.parse().unwrap_or(0);
            } else if let (Some(partition), Ok(offset)) = (
                k.strip_prefix("kafka:partition-")
                    .and_then(|n| n.parse().ok()),
                v.parse(),
            ) {
                p.kafka_next.insert(partition, offset);
            }
        }
        p
    }

    fn to_map(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        if self.mqtt_acknowledged > 0 {
            map.insert(
                "mqtt:acknowledged".into(),
                self.mqtt_acknowledged.to_string(),
            );
        }
        for (partition, offset) in &self.kafka_next {
            map.insert(format!("kafka:partition-{partition}"), offset.to_string());
        }
        map
    }
}

/// Acknowledges processed input and counts how far the sources got.
fn release_and_track(acks: Vec<Ack>, positions: &mut Positions) {
    for ack in &acks {
        match ack {
            Ack::Mqtt(..) => positions.mqtt_acknowledged += 1,
            #[cfg(feature = "kafka")]
            Ack::Kafka(ack) => {
                let (partition, offset) = ack.position();
                let next = positions.kafka_next.entry(partition).or_insert(0);
                *next = (*next).max(offset + 1);
            }
            Ack::None => {}
        }
    }
    release(acks);
}

/// Acknowledges processed input (Kafka offsets stored once per batch).
fn release(acks: Vec<Ack>) {
    #[cfg(feature = "kafka")]
    let mut kafka = Vec::new();
    for ack in acks {
        match ack {
            // Fails only if the source task is gone; the broker then redelivers.
            Ack::Mqtt(acker, publish) => {
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

#[cfg(test)]
mod positions_tests {
    use super::*;

    #[test]
    fn positions_survive_the_checkpoint_map() {
        let mut p = Positions {
            mqtt_acknowledged: 42,
            ..Positions::default()
        };
        p.kafka_next.insert(3, 1007);
        p.kafka_next.insert(0, 12);
        let map = p.to_map();
        assert_eq!(map["mqtt:acknowledged"], "42");
        assert_eq!(map["kafka:partition-3"], "1007");
        let back = Positions::from_map(&map);
        assert_eq!(back.mqtt_acknowledged, 42);
        assert_eq!(back.kafka_next, p.kafka_next);
        assert!(
            Positions::from_map(&BTreeMap::from([("junk".into(), "x".into())]))
                .kafka_next
                .is_empty()
        );
    }
}
