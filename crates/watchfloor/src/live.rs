//! `watchfloor run` (a live pipeline) and `watchfloor broker` (the embedded MQTT broker).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use watchfloor_connectors::{start_embedded_broker, EmbeddedBrokerConfig, PipelineConfig};
use watchfloor_pipeline::{run_pipeline, PipelineStats};

/// Options of `watchfloor run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline file, e.g. pipelines/city.toml.
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Validate the pipeline and its rules, then exit.
    #[arg(long)]
    pub check: bool,
}

/// Options of `watchfloor broker`.
#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Users file (`[[user]] name, password_sha256`, and topic rights in `[acl]` and per
    /// user `publish`/`subscribe`): only those may connect, each to its topics. Without it
    /// the broker takes anyone, so it then listens on loopback only.
    #[arg(long)]
    pub users: Option<std::path::PathBuf>,
    /// TLS on the port: the broker's certificate chain (PEM), with --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Logs to standard error; colours only on a terminal (and never with `NO_COLOR` set), so a
/// log written to a file or read by a program holds plain text.
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn"));
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs (or checks) a pipeline until SIGINT/SIGTERM.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    init_logging();
    let config = match PipelineConfig::load(&args.pipeline) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(errors) = watchfloor_city::load_rules(&config.rules) {
        eprintln!("{errors}");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(server) = &config.server {
        let accounts = match watchfloor_server::Accounts::load(&server.accounts) {
            Ok(accounts) => accounts,
            Err(e) => {
                eprintln!("{}: server.accounts: {e}", args.pipeline.display());
                return Ok(ExitCode::FAILURE);
            }
        };
        let city = watchfloor_city::City::load(&config.rules).ok().flatten();
        if let Some(city) = &city {
            let unknown = accounts.unknown_sectors(|s| city.sectors.knows(s));
            if !unknown.is_empty() {
                eprintln!(
                    "{}: server.accounts: unknown sectors (city/sectors.csv): {}",
                    args.pipeline.display(),
                    unknown.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        if let Err(errors) =
            watchfloor_server::indicators::load(server.indicators.as_deref(), city.as_ref())
        {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
        if let Some(dir) = &server.playbooks {
            match crate::playbooks::load(dir, &config.rules) {
                Err(errors) => {
                    eprintln!("{errors}");
                    return Ok(ExitCode::FAILURE);
                }
                Ok(library) => {
                    // Said, not refused: such messages are kept on the runs' record and tried
                    // again (a pipeline may add the output later).
                    for line in crate::playbooks::unreachable(&library, &config.outputs) {
                        eprintln!("warning: {line}");
                    }
                }
            }
        }
        if let Err(e) = watchfloor_server::privacy::Policy::from_settings(
            server.privacy.paths.as_deref(),
            server.privacy.detectors.as_deref(),
        ) {
            eprintln!("{}: server.privacy: {e}", args.pipeline.display());
            return Ok(ExitCode::FAILURE);
        }
        let webhooks = server.webhooks.durations().and_then(|_| {
            watchfloor_server::feeds::webhooks::Policy::new(&server.webhooks.allow)?;
            watchfloor_server::feeds::webhooks::Tls::new(server.webhooks.ca_file.as_deref())
                .map(|_| ())
                .map_err(|e| format!("server.webhooks.{e}"))
        });
        let cap_sender = &server.cap.sender;
        let webhooks = webhooks.and_then(|_| {
            if cap_sender.is_empty()
                || cap_sender
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&'))
            {
                Err(format!(
                    "server.cap.sender `{cap_sender}`: no spaces, commas, `<` or `&` (CAP 1.2)"
                ))
            } else {
                Ok(())
            }
        });
        if let Err(why) = webhooks {
            eprintln!("{}: {why}", args.pipeline.display());
            return Ok(ExitCode::FAILURE);
        }
        if let Some(dir) = &server.drills {
            let checked = crate::drills::load(dir, &config.rules, server.playbooks.as_deref());
            if let Err(errors) = checked {
                eprintln!("{errors}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    if args.check {
        let centre = match (&config.server, &config.store) {
            (Some(server), Some(store)) => format!(
                "; command centre on {}{}, store {}",
                server.listen,
                if server.dashboard {
                    " with the dashboard"
                } else {
                    ""
                },
                store
                    .url
                    .split("://")
                    .next()
                    .unwrap_or("sqlite")
                    .split(':')
                    .next()
                    .unwrap_or("sqlite")
            ),
            _ => "; headless".into(),
        };
        println!(
            "ok: pipeline `{}` ({} sources, {} outputs{centre})",
            config.name,
            config.sources.len(),
            config.outputs.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if config.server.is_some() {
        return run_centre(config, &args.pipeline);
    }
    // MQTT-only pipelines run on one thread: the source, the engine and the outputs hand
    // messages to each other through channels, and a cross-thread wake-up per message cost
    // more CPU than the engine itself (benches/loadgen, docs/performance.md). A Kafka source
    // needs a second thread: librdkafka's rebalance callback blocks the task polling the
    // consumer until the engine has drained the revoked partitions.
    let has_kafka = config
        .sources
        .iter()
        .any(|s| matches!(s, watchfloor_connectors::config::SourceConfig::Kafka { .. }));
    let runtime = if has_kafka {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    let stats = Arc::new(PipelineStats::default());
    let path = args.pipeline.clone();
    runtime.block_on(async { run_pipeline(config, &path, stats.clone(), stop_signal()).await })?;
    eprintln!(
        "pipeline stopped: {} received, {} accepted, {} rejected, {} alert transitions",
        stats.received.load(Ordering::Relaxed),
        stats.accepted.load(Ordering::Relaxed),
        stats.rejected_total(),
        stats.transitions.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
pub(crate) async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs a pipeline with its command centre (`[server]`) until SIGINT/SIGTERM.
fn run_centre(config: PipelineConfig, path: &std::path::Path) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stats = Arc::new(PipelineStats::default());
    runtime.block_on(crate::centre::run(
        config,
        path,
        stats.clone(),
        stop_signal(),
        |c| {
            eprintln!("command centre: http://{}/", c.addr);
        },
    ))?;
    eprintln!(
        "pipeline stopped: {} received, {} accepted, {} rejected, {} alert transitions",
        stats.received.load(Ordering::Relaxed),
        stats.accepted.load(Ordering::Relaxed),
        stats.rejected_total(),
        stats.transitions.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the embedded broker until the process is stopped.
pub fn broker(args: &BrokerArgs) -> Result<ExitCode> {
    init_logging();
    let listen = SocketAddr::new(args.bind, args.port);
    let users = match &args.users {
        Some(path) => Some(watchfloor_connectors::broker::load_users(path)?),
        None if !args.bind.is_loopback() => anyhow::bail!(
            "an MQTT broker on {} without --users would take anyone: give a users file",
            args.bind
        ),
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(watchfloor_connectors::broker::BrokerTls {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let rules = users.as_ref().is_some_and(|u| u.acl.is_some());
    let scheme = if tls.is_some() { "TLS" } else { "TCP" };
    let handle = start_embedded_broker(&EmbeddedBrokerConfig {
        listen,
        max_payload_size: 16 * 1024 * 1024,
        max_inflight: 1000,
        users,
        tls,
    })
    .context("starting the broker")?;
    eprintln!(
        "MQTT broker listening on {listen} ({scheme}{})",
        if rules { ", topic rules" } else { "" }
    );
    let _ = handle.join();
    Ok(ExitCode::SUCCESS)
}
