//! `watchfloor demo`: the whole command centre in one process with no external service:
//! the embedded MQTT broker, the city simulator publishing to it (real time, scripted
//! incidents every few minutes), and `pipelines/demo.toml` run by the same runtime as
//! `watchfloor run` (`crate::centre`): pipeline, incident store (SQLite) and server with the
//! dashboard on http://127.0.0.1:8080.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tokio::sync::watch;
use watchfloor_city::City;
use watchfloor_connectors::config::{OutputConfig, SourceConfig, StoreSettings};
use watchfloor_connectors::{
    start_embedded_broker, EmbeddedBrokerConfig, PipelineConfig, PipelineStats,
};
use watchfloor_simulators::{demo_script, SimConfig, Simulator};

use crate::simulate::{publish, Sink};

/// Options of `watchfloor demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The demo's pipeline file.
    #[arg(long, default_value = "pipelines/demo.toml")]
    pub pipeline: PathBuf,
    /// HTTP port of the dashboard and APIs (overrides the pipeline's `[server] listen`).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Port of the embedded MQTT broker (the pipeline's MQTT sources and outputs use it).
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// Accounts file (overrides the pipeline's `[server] accounts`).
    #[arg(long)]
    pub accounts: Option<PathBuf>,
    /// Where the demo keeps alerts, dead letters, its checkpoint and its incident store
    /// (overrides the pipeline's paths; default: as in the pipeline file, `var/demo/`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seed of the simulated telemetry.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated seconds per wall-clock second (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

/// The demo accounts' tokens, as printed (their hashes are in `pipelines/demo-accounts.toml`).
const DEMO_TOKENS: [(&str, &str); 12] = [
    ("demo-admin", "admin, city"),
    ("demo-city-operator", "operator, city"),
    ("demo-viewer-binh-thuy", "viewer, legacy district Bình Thủy"),
    ("demo-operator-long-hoa-1", "operator, ward Long Hòa"),
    ("demo-operator-long-hoa-2", "operator, ward Long Hòa"),
    ("demo-operator-tan-an", "operator, ward Tân An"),
    ("demo-integrator", "integrator, city"),
    (
        "demo-environment-department",
        "operator, city, environment sector (a Sở centre)",
    ),
    (
        "demo-transport-department",
        "viewer, city, transport sector",
    ),
    (
        "demo-viewer-tan-an",
        "viewer, ward Tân An, every sector (a commune centre)",
    ),
    (
        "demo-wall-display",
        "viewer, city: open /?wall=1&rotate=30&token=demo-wall-display",
    ),
    (
        "demo-drill-leader",
        "drill leader, city: watchfloor drill start drills/flood.yaml --speed 10",
    ),
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The demo pipeline with the command line's ports and data directory.
fn demo_config(args: &DemoArgs) -> Result<PipelineConfig> {
    let mut config = PipelineConfig::load(&args.pipeline).map_err(|e| anyhow::anyhow!("{e}"))?;
    for source in &mut config.sources {
        if let SourceConfig::Mqtt { port, .. } = source {
            *port = args.mqtt_port;
        }
    }
    let server = config
        .server
        .as_mut()
        .context("the demo pipeline needs [server]")?;
    server.listen = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), args.http_port);
    if let Some(accounts) = &args.accounts {
        server.accounts = accounts.clone();
    }
    for output in config
        .outputs
        .iter_mut()
        .chain(std::iter::once(&mut config.dead_letter))
    {
        // A CAP output's destination moves with the others.
        let output = match output {
            OutputConfig::Cap { to, .. } => &mut **to,
            other => other,
        };
        match output {
            OutputConfig::Mqtt { port, .. } => *port = args.mqtt_port,
            OutputConfig::File { path, .. } => {
                if let Some(dir) = &args.data_dir {
                    *path = dir.join(path.file_name().unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if config.engine.checkpoint.is_some() {
            config.engine.checkpoint = Some(dir.join("engine.checkpoint").display().to_string());
        }
        config.store = Some(StoreSettings {
            url: format!("sqlite:{}", dir.join("incidents.db").display()),
        });
    }
    config
        .validate(&args.pipeline)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

/// Runs the demo until Ctrl-C.
pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    crate::live::init_logging();
    let config = demo_config(args)?;
    let city = City::load(&config.rules)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no city in {}", config.rules.display()))?;
    // The broker runs its own threads (never inside a tokio task).
    start_embedded_broker(&EmbeddedBrokerConfig {
        listen: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), args.mqtt_port),
        // Far above the pipeline's own limit ([limits] max_payload_bytes): an oversized
        // reading reaches the pipeline, which dead-letters and counts it, instead of the
        // broker dropping the device's connection (what rumqttd does above this).
        max_payload_size: 16 * 1024 * 1024,
        max_inflight: 1000,
        users: None, // the demo's broker is on loopback only
        tls: None,
    })
    .context("starting the embedded MQTT broker")?;
    let data = data_dir(&config);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let stats = Arc::new(PipelineStats::default());
        let centre = tokio::spawn({
            let mut stop = stop_rx.clone();
            let path = args.pipeline.clone();
            async move {
                crate::centre::run(
                    config,
                    &path,
                    stats,
                    async move {
                        let _ = stop.changed().await;
                    },
                    |c| {
                        let _ = started_tx.send(c.addr);
                    },
                )
                .await
            }
        });
        let addr = match started_rx.await {
            Ok(addr) => addr,
            Err(_) => return centre.await.context("centre task")?,
        };
        let start_ms = now_ms();
        let duration_ms = 7 * 24 * 3_600_000;
        let sim = Simulator::new(
            &city,
            &SimConfig {
                seed: args.seed,
                start_ms,
                duration_ms,
                incidents: demo_script(duration_ms, &city),
                extra_stations: 0,
                camera_cadence_ms: Some(10_000),
            },
        );
        let mut sink = Sink::mqtt(&format!("127.0.0.1:{}", args.mqtt_port), false)?;
        let speed = args.speed;
        let simulator = tokio::spawn({
            let stop = stop_rx.clone();
            async move { publish(sim, &mut sink, speed, start_ms, Some(stop)).await }
        });
        println!("Watchfloor demo: http://{addr}/");
        println!(
            "  {} stations and cameras in {} zones; MQTT broker on 127.0.0.1:{}; data in {data}/",
            city.stations.len(),
            city.zones.zones.len(),
            args.mqtt_port
        );
        println!("  demo accounts (token: role, scope):");
        for (token, what) in DEMO_TOKENS {
            println!("    {token:<26} {what}");
        }
        println!("  first incident (a camera fire in Long Hòa) in about 10 s; Ctrl-C stops");
        let mut centre = centre;
        let ended = tokio::select! {
            _ = crate::live::stop_signal() => None,
            r = &mut centre => Some(r),
        };
        let _ = stop_tx.send(true);
        let _ = simulator.await;
        match ended {
            Some(r) => r.context("centre task")?,
            None => centre.await.context("centre task")?,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Where the demo's files are, for the banner.
fn data_dir(config: &PipelineConfig) -> String {
    match &config.dead_letter {
        OutputConfig::File { path, .. } => path
            .parent()
            .unwrap_or(Path::new("."))
            .display()
            .to_string(),
        _ => "var/demo".into(),
    }
}
