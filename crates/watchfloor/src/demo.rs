//! `watchfloor demo`: the whole command centre in one process with no external service:
//! the embedded MQTT broker, the city simulator publishing to it (real time, scripted
//! incidents every few minutes), the pipeline with the shipped rule packs, and the server
//! with the dashboard on http://127.0.0.1:8080.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tokio::sync::{mpsc, watch};
use watchfloor_city::City;
use watchfloor_connectors::{
    run_pipeline_linked, start_embedded_broker, EmbeddedBrokerConfig, PipelineConfig, PipelineLink,
    PipelineStats,
};
use watchfloor_server::{Accounts, AppState, Hub};
use watchfloor_simulators::{demo_script, SimConfig, Simulator};

use crate::simulate::{publish, Sink};

/// Options of `watchfloor demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// HTTP port of the dashboard and APIs.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Port of the embedded MQTT broker.
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// Rule directory (rules, city, reference tables).
    #[arg(long, default_value = "alert-rules")]
    pub rules: PathBuf,
    /// Accounts file (token hashes, roles, scopes).
    #[arg(long, default_value = "pipelines/demo-accounts.toml")]
    pub accounts: PathBuf,
    /// Where the demo writes alerts, dead letters and the audit log.
    #[arg(long, default_value = "var/demo")]
    pub data_dir: PathBuf,
    /// Seed of the simulated telemetry.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated seconds per wall-clock second (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

/// The demo accounts' tokens, as printed (their hashes are in `pipelines/demo-accounts.toml`).
const DEMO_TOKENS: [(&str, &str); 7] = [
    ("demo-admin", "admin, city"),
    ("demo-city-operator", "operator, city"),
    ("demo-viewer-binh-thuy", "viewer, district Bình Thủy"),
    ("demo-operator-long-hoa-1", "operator, ward Long Hòa"),
    ("demo-operator-long-hoa-2", "operator, ward Long Hòa"),
    ("demo-operator-tan-an", "operator, ward Tân An"),
    ("demo-integrator", "integrator, city"),
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs the demo until Ctrl-C.
pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    crate::live::init_logging();
    let city = City::load(&args.rules)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no city in {}", args.rules.display()))?;
    let accounts = Arc::new(Accounts::load(&args.accounts)?);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data = args.data_dir.display().to_string();
    let pipeline_path = args.data_dir.join("pipeline.toml");
    std::fs::write(
        &pipeline_path,
        format!(
            r#"# Written by `watchfloor demo`.
name = "demo"
rules = "{rules}"

[engine]
max_out_of_orderness = "2s"
allowed_lateness = "5s"
idle_timeout = "2m"
tick_interval = "200ms"

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "watchfloor-demo-telemetry"
topics = ["ioc/+/+/telemetry"]
format = "json"

[[output]]
type = "file"
path = "{data}/alerts.ndjson"

[[output]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "watchfloor-demo-alerts"
topic = "ioc/alerts/{{severity}}/{{rule}}"

[dead_letter]
type = "file"
path = "{data}/dead-letters.ndjson"
"#,
            rules = std::fs::canonicalize(&args.rules)?.display(),
            port = args.mqtt_port,
        ),
    )?;
    let config = PipelineConfig::load(&pipeline_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The broker runs its own threads (never inside a tokio task).
    start_embedded_broker(&EmbeddedBrokerConfig {
        listen: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), args.mqtt_port),
        max_payload_size: 1024 * 1024,
        max_inflight: 1000,
    })
    .context("starting the embedded MQTT broker")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let audit = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(args.data_dir.join("audit.ndjson"))?;
        let city = Arc::new(city);
        let hub = Hub::new(Some(city.clone()), Some(audit));
        let stats = Arc::new(PipelineStats::default());
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut stopped = stop_rx.clone();
        let pipeline = tokio::spawn({
            let (hub, stats, path) = (hub.clone(), stats.clone(), pipeline_path.clone());
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
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.http_port))
            .await
            .with_context(|| format!("cannot listen on port {}", args.http_port))?;
        let state = AppState {
            hub: hub.clone(),
            accounts,
            commands: commands_tx,
            rules_dir: args.rules.clone(),
            stats,
        };
        let server = tokio::spawn(watchfloor_server::serve(state, listener, async move {
            let _ = stopped.changed().await;
        }));
        // Give the pipeline a moment to subscribe, then start the city.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
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
        println!("Watchfloor demo: http://127.0.0.1:{}/", args.http_port);
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
        tokio::signal::ctrl_c().await?;
        let _ = stop_tx.send(true);
        let _ = simulator.await;
        let _ = pipeline.await;
        let _ = server.await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
