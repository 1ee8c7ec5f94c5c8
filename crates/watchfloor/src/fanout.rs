//! `watchfloor fanout-bench`: many WebSocket clients subscribed to alerts and KPIs of a
//! running server (e.g. `watchfloor demo`), while probe readings published over MQTT turn
//! into alerts; reports the delivery lag from publish to each client (hdrhistogram
//! p50/p99/p99.9/max) and the server's CPU use. Driven by `benches/fanout/run.sh`.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rumqttc::{MqttOptions, QoS};
use tokio_tungstenite::tungstenite::Message;

/// Options of `watchfloor fanout-bench`.
#[derive(Args, Debug)]
pub struct FanoutArgs {
    /// Server HTTP port.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// MQTT broker port (probes are published there).
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// WebSocket clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Probe readings per second (each becomes one alert, `bench_probe`).
    #[arg(long, default_value_t = 20)]
    pub probe_rate: u64,
    /// Token of a city-scope account.
    #[arg(long, default_value = "demo-admin")]
    pub token: String,
    /// Process id of the server, to report its CPU use.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Runs the benchmark.
pub fn run(args: &FanoutArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: &FanoutArgs) -> Result<ExitCode> {
    let url = format!("ws://127.0.0.1:{}/ws", args.http_port);
    let lags = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let kpi_updates = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.clients);
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (url, token, lags, received, kpis, ready) = (
            url.clone(),
            args.token.clone(),
            lags.clone(),
            received.clone(),
            kpi_updates.clone(),
            ready_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                .await
                .context("connecting")?;
            ws.send(Message::Text(format!(
                r#"{{"op":"auth","token":"{token}"}}"#
            )))
            .await?;
            for channel in ["alerts", "kpis"] {
                ws.send(Message::Text(format!(
                    r#"{{"op":"subscribe","channel":"{channel}"}}"#
                )))
                .await?;
            }
            let _ = ready.send(()).await;
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                // Cheap pre-filter: only probe alerts are timed.
                if text.contains("\"kpis\"") && text.contains("\"delta\"") {
                    kpis.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                if !text.contains("bench_probe") || !text.contains("\"delta\"") {
                    continue;
                }
                let now = now_ms();
                let v: serde_json::Value = serde_json::from_str(&text)?;
                if v["data"]["state"] != "firing" {
                    continue;
                }
                let fired = v["data"]["fired_at"].as_i64().unwrap_or(now);
                local.record(((now - fired).max(0) as u64 * 1000).max(1))?;
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if local.len() % 50 == 0 {
                    lags.lock().expect("lock").add(&local)?;
                    local.reset();
                }
            }
            lags.lock().expect("lock").add(&local)?;
            anyhow::Ok(())
        }));
    }
    drop(ready_tx);
    let connect_start = Instant::now();
    let mut ready = 0;
    while ready < args.clients {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => ready += 1,
            _ => break,
        }
    }
    println!(
        "{ready} WebSocket clients subscribed in {:.1} s",
        connect_start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut options = MqttOptions::new(
        format!("fanout-probe-{}", std::process::id()),
        "127.0.0.1",
        args.mqtt_port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut event_loop) = watchfloor_connectors::mqtt_client(options, 1000);
    tokio::spawn(async move { while event_loop.poll().await.is_ok() {} });
    let cpu_before = args.server_pid.and_then(cpu_ticks);
    let started = Instant::now();
    let total = args.probe_rate * args.seconds;
    let base = now_ms();
    let mut last_ts = 0;
    for n in 0..total {
        let due = Duration::from_nanos(n * 1_000_000_000 / args.probe_rate.max(1));
        tokio::time::sleep_until(tokio::time::Instant::from_std(started + due)).await;
        // Strictly increasing stamps: two probes in one millisecond would be duplicates.
        let ts = now_ms().max(last_ts + 1);
        last_ts = ts;
        let payload = format!(
            r#"{{"source":"CT-TR-01","kind":"traffic","ts":{ts},"values":{{"speed":1000}},"attrs":{{"seq":"p{base}-{n}"}}}}"#
        );
        client
            .publish(
                "ioc/bench/CT-TR-01/telemetry",
                QoS::AtLeastOnce,
                false,
                payload.into_bytes(),
            )
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = args.server_pid.and_then(cpu_ticks);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let h = lags.lock().expect("lock").clone();
    let expected = total * ready as u64;
    let got = received.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{ready} clients × {total} probe alerts: {got} deliveries of {expected} expected ({:.2} %), {} KPI updates",
        100.0 * got as f64 / expected.max(1) as f64,
        kpi_updates.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "delivery lag publish → client: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        // Clock ticks are 1/100 s on Linux.
        let cpu = (after - before) as f64 / 100.0 / elapsed;
        println!(
            "server CPU: {:.0} % of one core over {elapsed:.0} s ({:.2} of 2 cores)",
            cpu * 100.0,
            cpu
        );
    }
    Ok(ExitCode::SUCCESS)
}
