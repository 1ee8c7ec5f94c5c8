//! The command centre: a pipeline with a `[server]` section runs with the server beside it
//! — the incident store opened (and migrated), the hub rebuilt from it, the pipeline
//! started, the hub reconciled with the engine once the engine restored its checkpoint,
//! the API, WebSocket and dashboard served, old history pruned every hour. `watchfloor
//! run` and `watchfloor demo` both come here: one wiring.
//!
//! Shutdown: the future given stops the pipeline (which writes its checkpoint), then the
//! server, then the store writer drains its queue.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use watchfloor_server::playbooks::Channels;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot, watch};
use watchfloor_city::City;
use watchfloor_connectors::PipelineConfig;
use watchfloor_pipeline::{run_pipeline_linked, EngineCommand, PipelineLink, PipelineStats};
use watchfloor_server::{Accounts, AppState, Hub};
use watchfloor_store::{Store, StoreWriter};

/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a running centre tells its caller (the demo starts its simulator then).
pub struct Centre {
    /// Where the server listens.
    pub addr: std::net::SocketAddr,
}

/// Runs the pipeline and its command centre until `shutdown` resolves; `started` is called
/// once everything listens.
pub async fn run(
    config: PipelineConfig,
    path: &Path,
    stats: Arc<PipelineStats>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    started: impl FnOnce(&Centre),
) -> Result<()> {
    let server = config
        .server
        .clone()
        .context("the pipeline has no [server] section")?;
    let store_url = config
        .store
        .as_ref()
        .map(|s| s.url.clone())
        .context("no [store]")?;
    let retention_ms = config
        .retention_ms(path)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let city = City::load(&config.rules)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map(Arc::new);
    let accounts = Arc::new(Accounts::load(&server.accounts)?);
    if let Some(city) = &city {
        let unknown = accounts.unknown_sectors(|s| city.sectors.knows(s));
        anyhow::ensure!(
            unknown.is_empty(),
            "server.accounts: unknown sectors (city/sectors.csv): {}",
            unknown.join(", ")
        );
    }
    let indicators =
        watchfloor_server::indicators::load(server.indicators.as_deref(), city.as_deref())
            .map_err(|e| anyhow::anyhow!("indicators:\n{e}"))?;
    let store = Store::open(&store_url)
        .await
        .with_context(|| format!("opening the incident store {}", redact(&store_url)))?;
    tracing::info!(backend = store.backend(), url = %redact(&store_url), "incident store open");
    let (writer, writer_task) = StoreWriter::start(store.clone());
    let hub = Hub::new(city, None);
    hub.set_indicators(indicators);
    hub.set_sector_views(accounts.sector_views());
    hub.attach_store(writer);
    let restored = hub
        .restore_from_store()
        .await
        .context("reading the incident store")?;
    tracing::info!(open_alerts = restored, "alerts restored from the store");
    let quality_days = hub
        .restore_quality()
        .await
        .context("reading the data-quality counts from the store")?;
    tracing::info!(
        station_days = quality_days,
        "data-quality counts restored from the store"
    );

    let rules_dir = config.rules.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let playbooks = match &server.playbooks {
        Some(dir) => Some(
            start_playbooks(
                &hub,
                &config,
                &server.webhooks,
                dir,
                &store,
                commands_tx.clone(),
            )
            .await
            .context("starting the playbooks")?,
        ),
        None => None,
    };
    let drills = start_drills(&hub, &config, &server, &store, commands_tx.clone())
        .await
        .context("starting the drills")?;
    start_webhooks(&hub, &server.webhooks, &store)
        .await
        .context("starting the webhook outbox")?;
    watchfloor_server::privacy::configure(
        watchfloor_server::privacy::Policy::from_settings(
            server.privacy.paths.as_deref(),
            server.privacy.detectors.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("server.privacy: {e}"))?,
    );
    let cap_sender = watchfloor_server::feeds::cap::Sender {
        sender: server.cap.sender.clone(),
        sender_name: server.cap.sender_name.clone(),
    };
    watchfloor_server::feeds::cap::configure(watchfloor_server::feeds::cap::CapConfig {
        sender: cap_sender.clone(),
        public: server.cap.public,
    });
    let cap_outputs = start_cap_outputs(&hub, &config, &store, &cap_sender)
        .await
        .context("starting the CAP outputs")?;
    let pipeline = tokio::spawn({
        let (hub, stats, path) = (hub.clone(), stats.clone(), path.to_path_buf());
        let mut stop = stop_rx.clone();
        async move {
            let link = PipelineLink {
                observer: hub,
                commands: commands_rx,
            };
            run_pipeline_linked(config, &path, stats, Some(link), async move {
                let _ = stop.changed().await;
            })
            .await
        }
    });
    // The engine takes commands once it has restored its checkpoint and replayed its log;
    // the screen is reconciled with it on the engine's task, before any new input.
    let (done, reconciled) = oneshot::channel();
    let reconcile = {
        let hub = hub.clone();
        move |active: Vec<watchfloor_engine::ActiveAlertView>| {
            let (resolved, added) = hub.reconcile(&active, now_ms());
            tracing::info!(
                firing = active.len(),
                resolved,
                added,
                "screen and store reconciled with the engine"
            );
            let _ = done.send(());
        }
    };
    commands_tx
        .send(EngineCommand::WithActiveAlerts {
            with: Box::new(reconcile),
        })
        .await
        .map_err(|_| anyhow::anyhow!("the pipeline stopped at start"))?;
    if reconciled.await.is_err() {
        // The pipeline dropped the request: it stopped; say why.
        return match pipeline.await.context("pipeline task")? {
            Ok(()) => Err(anyhow::anyhow!("the pipeline stopped at start")),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
    }

    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", server.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState {
        hub: hub.clone(),
        accounts,
        commands: commands_tx,
        rules_dir,
        indicators_dir: server.indicators.clone(),
        stats,
    };
    if let Some(address) = server.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("server.metrics_listen: cannot listen on {address}"))?;
        hub.set_metrics_access(watchfloor_server::hub::MetricsAccess::Elsewhere);
        let mut stop = stop_rx.clone();
        tokio::spawn(watchfloor_server::serve_metrics(
            state.clone(),
            metrics,
            async move {
                let _ = stop.changed().await;
            },
        ));
        tracing::info!(%address, "/metrics listening");
    } else if let Some(hash) = &server.metrics_token_sha256 {
        hub.set_metrics_access(watchfloor_server::hub::MetricsAccess::Token(
            hash.trim().to_ascii_lowercase(),
        ));
    }
    let serving = tokio::spawn({
        let mut stop = stop_rx.clone();
        watchfloor_server::serve_with(state, listener, server.dashboard, async move {
            let _ = stop.changed().await;
        })
    });
    let pruning = tokio::spawn(prune_forever(store.clone(), retention_ms));
    tracing::info!(%addr, dashboard = server.dashboard, "command centre listening");
    started(&Centre { addr });

    shutdown.await;
    let _ = stop_tx.send(true);
    let result = pipeline.await.context("pipeline task")?;
    let _ = serving.await;
    pruning.abort();
    if let Some(task) = playbooks {
        task.abort();
    }
    drills.abort();
    for task in cap_outputs {
        task.abort();
    }
    drop(hub);
    // The writer stops once its queue is written and every handle is gone.
    let _ = tokio::time::timeout(Duration::from_secs(10), writer_task).await;
    store.close().await;
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Starts the CAP outputs (`[[output]] type = "cap"`), each from its cursor in the store.
async fn start_cap_outputs(
    hub: &Arc<Hub>,
    config: &PipelineConfig,
    store: &Store,
    sender: &watchfloor_server::feeds::cap::Sender,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for output in &config.outputs {
        let watchfloor_connectors::config::OutputConfig::Cap {
            name,
            to,
            exercises,
        } = output
        else {
            continue;
        };
        let task = watchfloor_server::feeds::cap::spawn_output(
            store.clone(),
            hub.city(),
            sender.clone(),
            watchfloor_server::feeds::cap::CapOutputConfig {
                name: name.clone(),
                to: (**to).clone(),
                exercises: *exercises,
                max_payload: config.limits.max_payload_bytes,
            },
        )
        .await
        .map_err(anyhow::Error::msg)?;
        tasks.push(task);
    }
    Ok(tasks)
}

/// Starts the webhook outbox (its recorder and a worker per active subscription).
async fn start_webhooks(
    hub: &Arc<Hub>,
    settings: &watchfloor_connectors::config::WebhookSettings,
    store: &Store,
) -> Result<()> {
    let (backoff_ms, backoff_max_ms, give_up_ms, timeout_ms) =
        settings.durations().map_err(anyhow::Error::msg)?;
    let policy = watchfloor_server::feeds::webhooks::Policy::new(&settings.allow)
        .map_err(anyhow::Error::msg)?;
    let tls = watchfloor_server::feeds::webhooks::Tls::new(settings.ca_file.as_deref())
        .map_err(|e| anyhow::anyhow!("server.webhooks.{e}"))?;
    let link = watchfloor_server::feeds::webhooks::spawn(
        watchfloor_server::feeds::webhooks::WebhookConfig {
            store: store.clone(),
            policy,
            tls,
            backoff_ms,
            backoff_max_ms,
            give_up_ms,
            timeout: Duration::from_millis(timeout_ms.max(1) as u64),
        },
    )
    .await?;
    hub.attach_webhooks(link);
    Ok(())
}

/// Starts the drill task: scripts checked against the city, rules and playbooks; the
/// drills left open by the last run resumed.
async fn start_drills(
    hub: &Arc<Hub>,
    config: &PipelineConfig,
    server: &watchfloor_connectors::config::ServerSettings,
    store: &Store,
    commands: mpsc::Sender<watchfloor_pipeline::EngineCommand>,
) -> Result<tokio::task::JoinHandle<()>> {
    let known = crate::drills::known(&config.rules, server.playbooks.as_deref())
        .map_err(|e| anyhow::anyhow!("drills:\n{e}"))?;
    let scripts = match &server.drills {
        Some(dir) => {
            crate::drills::scripts(dir, &known).map_err(|e| anyhow::anyhow!("drills:\n{e}"))?
        }
        None => Vec::new(),
    };
    let kinds = hub
        .city()
        .map(|c| c.stations.iter().map(|s| (s.id.clone(), s.kind)).collect())
        .unwrap_or_default();
    let task = watchfloor_server::drills::spawn(
        hub.clone(),
        watchfloor_server::drills::DrillConfig {
            known,
            kinds,
            store: Some(store.clone()),
            commands,
            scripts,
        },
    )
    .await?;
    Ok(task)
}

/// Loads the playbooks (checked against the rules), and starts their task with the runs
/// the store holds; notifications go to the broker of the first MQTT alert output, the
/// cluster of the first Kafka one, and webhooks under `[server.webhooks]`'s address policy
/// and trust.
async fn start_playbooks(
    hub: &Arc<Hub>,
    config: &PipelineConfig,
    webhooks: &watchfloor_connectors::config::WebhookSettings,
    dir: &Path,
    store: &Store,
    commands: mpsc::Sender<watchfloor_pipeline::EngineCommand>,
) -> Result<tokio::task::JoinHandle<()>> {
    let library = crate::playbooks::load(dir, &config.rules)
        .map_err(|e| anyhow::anyhow!("playbooks:\n{e}"))?;
    let mqtt = config.outputs.iter().find_map(|o| match o {
        watchfloor_connectors::config::OutputConfig::Mqtt { host, port, .. } => {
            Some((host.clone(), *port))
        }
        _ => None,
    });
    let notifier = watchfloor_server::playbooks::Notifier::new(Channels {
        mqtt,
        kafka: kafka_publisher(config)?,
        policy: watchfloor_server::feeds::webhooks::Policy::new(&webhooks.allow)
            .map_err(anyhow::Error::msg)?,
        tls: watchfloor_server::feeds::webhooks::Tls::new(webhooks.ca_file.as_deref())
            .map_err(|e| anyhow::anyhow!("server.webhooks.{e}"))?,
    });
    let task = watchfloor_server::playbooks::spawn(
        hub.clone(),
        watchfloor_server::playbooks::PlaybookConfig {
            library,
            store: store.clone(),
            commands,
            notifier,
        },
    )
    .await?;
    Ok(task)
}

/// A producer on the cluster of the first Kafka alert output (its settings), if any.
#[cfg(feature = "kafka")]
fn kafka_publisher(
    config: &PipelineConfig,
) -> Result<Option<Arc<dyn watchfloor_connectors::RecordPublisher>>> {
    for output in &config.outputs {
        if let watchfloor_connectors::config::OutputConfig::Kafka {
            brokers, options, ..
        } = output
        {
            let publisher = watchfloor_connectors::publish::KafkaPublisher::open(brokers, options)
                .map_err(anyhow::Error::msg)?;
            return Ok(Some(Arc::new(publisher)));
        }
    }
    Ok(None)
}

/// Without Kafka in the build there is no cluster to send to.
#[cfg(not(feature = "kafka"))]
fn kafka_publisher(
    _config: &PipelineConfig,
) -> Result<Option<Arc<dyn watchfloor_connectors::RecordPublisher>>> {
    Ok(None)
}

async fn prune_forever(store: Store, retention_ms: i64) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        match store.prune(now_ms() - retention_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(alerts = n, "old history pruned"),
            Err(e) => {
                tracing::warn!(error = %e, "pruning the incident store failed; next try in an hour")
            }
        }
    }
}

/// A store URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let user = url[scheme + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
