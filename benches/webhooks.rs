//! Webhook delivery throughput and outbox lag (docs/performance.md, "Webhooks"): alert
//! transitions committed to the incident store (SQLite) at `WEBHOOK_RATE` a second
//! (default 1,000) for `WEBHOOK_SECONDS` (default 30), delivered by the real outbox
//! (`watchfloor_server::feeds::webhooks`: the recorder, a worker per subscription, signed
//! POSTs) to `WEBHOOK_RECEIVERS` (default 20) subscriptions, each its own HTTP receiver on
//! loopback answering 200. Measured: deliveries a second while the load runs and overall,
//! the lag from a transition's commit to its receipt (p50, p99, max), and how long the
//! outbox took to drain after the load stopped.
//!
//! `cargo bench -p watchfloor-benches --bench webhooks`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use hdrhistogram::Histogram;
use watchfloor_model::Severity;
use watchfloor_server::feeds::webhooks::{spawn, Policy, WebhookConfig};
use watchfloor_store::{AlertRow, Change, Entry, Store, SubscriptionRow};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What the receivers saw: (timeline line, receipt time ms).
#[derive(Clone, Default)]
struct Seen {
    lines: Arc<Mutex<Vec<(i64, i64)>>>,
    count: Arc<AtomicU64>,
}

async fn receive(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
    let at = now_ms();
    let line = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| id.rsplit('_').next())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(-1);
    seen.lines.lock().unwrap().push((line, at));
    seen.count.fetch_add(1, Ordering::Relaxed);
    "ok"
}

fn transition(i: u64, at: i64) -> Change {
    let row = AlertRow {
        alert_id: format!("{i:016x}"),
        rule: "camera_fire_smoke".into(),
        key: format!("CT-CAM-{:02}", i % 36 + 1),
        state: "firing".into(),
        severity: Severity::Major,
        fired_at: at,
        updated_at: at,
        resolved_at: None,
        value: Some(0.9),
        message: format!("Fire or smoke seen ({i})"),
        labels: [("pack".to_string(), "camera".to_string())].into(),
        ward: Some("long_hoa".into()),
        district: None,
        sectors: vec!["public_safety".into()],
        kind: Some("camera".into()),
        location: Some([10.0, 105.7]),
        ack: None,
        assignee: None,
    };
    Change::Transition {
        entry: Entry {
            at,
            event: "fired".into(),
            by: None,
            detail: format!("major: {}", row.message),
        },
        dedup: format!("{}|fired|{at}", row.alert_id),
        row: Box::new(row),
        reopen: false,
    }
}

fn main() {
    let rate = env("WEBHOOK_RATE", 1000);
    let seconds = env("WEBHOOK_SECONDS", 30);
    let receivers = env("WEBHOOK_RECEIVERS", 20) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = std::env::temp_dir().join(format!("watchfloor-webhook-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite:{}", dir.join("incidents.db").display()))
            .await
            .unwrap();
        let seen = Seen::default();
        for r in 0..receivers {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let app = Router::new().route("/hook", post(receive)).with_state(seen.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            store
                .create_subscription(&SubscriptionRow {
                    id: format!("bench{r:02}"),
                    url: format!("http://127.0.0.1:{port}/hook"),
                    secrets: r#"["whsec_d2F0Y2hmbG9vci10ZXN0LXNlY3JldC1vbmUtMDAwMQ=="]"#.into(),
                    filter: "{}".into(),
                    format: "standard".into(),
                    status: "active".into(),
                    reason: None,
                    created_by: "bench".into(),
                    created_at: now_ms(),
                    start_seq: 0,
                })
                .await
                .unwrap();
        }
        spawn(WebhookConfig {
            store: store.clone(),
            policy: Policy::new(&["127.0.0.1".into()]).unwrap(),
            tls: watchfloor_server::feeds::webhooks::Tls::new(None).unwrap(),
            backoff_ms: 1000,
            backoff_max_ms: 10_000,
            give_up_ms: 3_600_000,
            timeout: Duration::from_secs(10),
        })
        .await
        .unwrap();

        // The load: `rate` transitions a second in batches every 10 ms; commit time per line.
        let committed: Arc<Mutex<Vec<i64>>> = Arc::default(); // index: line - 1
        let total = rate * seconds;
        let per_batch = (rate / 100).max(1);
        let started = Instant::now();
        let mut i = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while i < total {
            tick.tick().await;
            let at = now_ms();
            let batch: Vec<Change> = (i..(i + per_batch).min(total)).map(|n| transition(n, at)).collect();
            i += batch.len() as u64;
            store.write(&batch, &[]).await.unwrap();
            let done = now_ms();
            committed.lock().unwrap().extend(std::iter::repeat_n(done, batch.len()));
        }
        let load_s = started.elapsed().as_secs_f64();
        let during = seen.count.load(Ordering::Relaxed);
        let want = total * receivers as u64;
        let drain_from = Instant::now();
        while seen.count.load(Ordering::Relaxed) < want && drain_from.elapsed() < Duration::from_secs(600) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drained_s = drain_from.elapsed().as_secs_f64();
        let got = seen.count.load(Ordering::Relaxed);
        let mut lag = Histogram::<u64>::new(3).unwrap();
        let committed = committed.lock().unwrap();
        for (line, at) in seen.lines.lock().unwrap().iter() {
            if let Some(c) = usize::try_from(*line - 1).ok().and_then(|n| committed.get(n)) {
                lag.record((at - c).max(0) as u64).unwrap();
            }
        }
        println!(
            "webhooks: {rate} transitions/s for {seconds} s ({total} transitions) to {receivers} receivers: {got}/{want} delivered"
        );
        println!(
            "  while loading ({load_s:.1} s): {:.0} deliveries/s; overall {:.0} deliveries/s; drained {drained_s:.1} s after the load",
            during as f64 / load_s,
            got as f64 / (load_s + drained_s)
        );
        println!(
            "  commit → receipt lag: p50 {} ms, p99 {} ms, max {} ms",
            lag.value_at_quantile(0.5),
            lag.value_at_quantile(0.99),
            lag.max()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
