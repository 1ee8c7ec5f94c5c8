//! The live pipeline: sources → bounded queue → engine → sinks, with dead letters; a
//! message is acknowledged only once it is durable in the write-ahead log (with a
//! checkpoint configured) and the alerts it caused are confirmed by every output
//! (`crate::durable` says how state survives a crash, `crate::delivery` how outputs
//! fail).
//!
//! Backpressure: the queue between sources and the engine is bounded; when it is full a
//! source stops polling its connection, its in-flight window fills, and the broker stops
//! sending. The engine stops taking from the queue while outputs are behind, but keeps
//! serving commands. Memory stays bounded by `queue_capacity`, `mqtt_inflight` and the
//! outputs' backlog bound.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::sync::{mpsc, Notify};
use watchfloor_connectors::config::{ConfigError, PipelineConfig};
use watchfloor_connectors::decode::Decoder;
use watchfloor_connectors::{
    ChannelEvent, Inbound, OutputError, PipelineStats, SourceContext, SourceError,
};

use crate::control::{EngineCommand, PipelineLink};
use crate::delivery::{Delivery, RetryPolicy};
use crate::{runner, step};

/// Why a pipeline could not start or had to stop.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The pipeline file is wrong (fatal).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rules do not load (fatal).
    #[error("rules: {0}")]
    Rules(#[from] watchfloor_engine::RuleErrors),
    /// An output could not be opened (fatal at start: fix the file or the destination).
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A source could not be started (fatal).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An output gave up and could not even keep what it did not deliver (fatal: its
    /// input stays unacknowledged, the broker keeps it).
    #[error("output failed: {0}")]
    OutputFailed(String),
    /// The write-ahead log cannot be opened or written (fatal: input could no longer be
    /// made durable).
    #[error(transparent)]
    Wal(#[from] watchfloor_wal::WalError),
}

/// Batches whose acknowledgements may wait for output confirmation at once.
pub(crate) const MAX_PENDING_BATCHES: usize = 64;
/// Messages taken from the queue per engine step.
pub(crate) const BATCH: usize = 512;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
    // Woken when the log is durable further or an output confirmed more: acknowledgements
    // leave as soon as they may (a broker keeps only so many unacknowledged, so their
    // delay bounds the input rate).
    let wake = Arc::new(Notify::new());
    if let Some(durable) = &opened.durable {
        durable.wake_on_durable(wake.clone());
    }
    let tick = Duration::from_millis(config.tick_ms(config_path)?.max(1) as u64);
    let max_payload = config.limits.max_payload_bytes;
    let policy = RetryPolicy {
        give_up: config
            .output_give_up_ms(config_path)?
            .map(|ms| Duration::from_millis(ms as u64)),
        undelivered_dir: config.undelivered_dir(),
    };
    let mut outputs = Vec::new();
    let twins = config.outputs.iter().filter_map(|o| o.exercise_twin());
    // CAP outputs are the centre's (built from the incident store's timeline).
    let all = config
        .outputs
        .iter()
        .filter(|o| !o.is_cap())
        .cloned()
        .map(|o| (o, false));
    for (output, twin) in all.chain(twins.map(|o| (o, true))) {
        let sink = output.build(max_payload).await?;
        let delivery = Delivery::start(
            output.label(),
            sink,
            policy.clone(),
            stats.clone(),
            wake.clone(),
        );
        outputs.push((delivery, twin));
    }
    let dead_letters = Delivery::start(
        format!("dead-letter {}", config.dead_letter.label()),
        config.dead_letter.build(max_payload).await?,
        policy,
        stats.clone(),
        wake.clone(),
    );
    let decoders: Vec<(String, Decoder)> = config
        .sources
        .iter()
        .map(|s| (s.name().to_string(), Decoder::from_format(s.format())))
        .collect();
    let mut processor = step::Processor::new(
        opened.engine,
        city,
        decoders,
        config.decode_limits(),
        observer,
        stats.clone(),
    );
    processor.exercises = opened.exercises;
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
    for (index, source) in config.sources.iter().enumerate() {
        source
            .build(config.limits.mqtt_inflight)?
            .start(SourceContext {
                index,
                queue: tx.clone(),
                channels: channel_tx.clone(),
                stats: stats.clone(),
            })?;
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
            first = rx.recv(), if runner.accepting() => {
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
            // The log or an output got further: acknowledgements may be due.
            _ = wake.notified() => {}
            // A safety net only (every advance wakes the loop).
            _ = tokio::time::sleep(Duration::from_millis(20)), if runner.has_pending() || !runner.accepting() => {}
            _ = ticker.tick() => {
                runner.processor.tick(now_ms());
                runner.hand_over();
            }
            Some(event) = channel_rx.recv() => runner.on_channel(event),
            command = recv_command(&mut commands) => {
                runner.on_command(command);
                runner.hand_over();
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
