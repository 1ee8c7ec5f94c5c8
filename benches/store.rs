//! The incident store under an alert storm and over a long history (docs/performance.md,
//! "The incident store"), on SQLite and on a private PostgreSQL server:
//! - **storm**: 10,000 alert transitions a second offered for `STORM_SECONDS` (default
//!   60) to the store writer, queued the way the hub queues them (never waiting), while an
//!   operator commits an action every 100 ms: transitions committed per second, the
//!   largest backlog, the time until the queue is empty after the storm, and the commit
//!   latency of the operator's actions (p50, p99);
//! - **history**: `HISTORY` alerts (default 1,000,000) over 30 days and 12 wards, then
//!   1,000 queries for one ward's day (what `GET /api/alerts?zone=…&since=…&until=…` runs):
//!   p50, p99, max.
//!
//! `cargo bench -p watchfloor-benches --bench store` (PostgreSQL: Debian's `postgresql`);
//! `STORE_BACKENDS=sqlite STORM_SECONDS=0` for the history alone on one backend.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use watchfloor_model::Severity;
use watchfloor_store::testing::TestPostgres;
use watchfloor_store::{Action, AlertQuery, AlertRow, Change, Entry, Store, StoreWriter};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_793_552_400_000; // 2026-11-02T00:00:00+07:00
const WARDS: usize = 12;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn alert(i: u64, fired_at: i64) -> AlertRow {
    let ward = format!("ward_{:02}", i as usize % WARDS);
    AlertRow {
        alert_id: format!("{i:016x}"),
        rule: ["discharge_cod", "air_pm25", "camera_fire", "traffic_jam"][i as usize % 4].into(),
        key: format!("ST-{:04}", i % 400),
        state: if i.is_multiple_of(10) {
            "firing"
        } else {
            "resolved"
        }
        .into(),
        severity: [Severity::Minor, Severity::Major, Severity::Critical][i as usize % 3],
        fired_at,
        updated_at: fired_at,
        resolved_at: (!i.is_multiple_of(10)).then_some(fired_at + 600_000),
        value: Some(i as f64),
        message: format!("alert {i} in {ward}"),
        labels: BTreeMap::from([("pack".to_string(), "bench".to_string())]),
        ward: Some(ward),
        district: Some(format!("district_{}", i as usize % WARDS / 4)),
        sectors: vec![["environment", "public_safety", "transport"][i as usize % 3].to_string()],
        kind: Some("discharge".into()),
        location: Some([10.0, 105.7]),
        ack: None,
        assignee: None,
    }
}

fn transition(r: AlertRow) -> Change {
    let entry = Entry {
        at: r.fired_at,
        event: "fired".into(),
        by: None,
        detail: r.message.clone(),
    };
    let dedup = format!("{}|fired|{}", r.alert_id, r.fired_at);
    Change::Transition {
        row: Box::new(r),
        entry,
        dedup,
        reopen: false,
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn storm(store: &Store, seconds: u64) {
    let (writer, _task) = StoreWriter::start(store.clone());
    let per_tick = 100u64; // every 10 ms: 10,000 a second
    let started = Instant::now();
    let operator = tokio::spawn({
        let writer = writer.clone();
        async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(seconds) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                n += 1;
                let id = format!("{:016x}", n * 1000);
                let change = Change::Action {
                    row: Some(Box::new(alert(n * 1000, T0 + n as i64 * 1000))),
                    alert_id: id,
                    action: Action::Acknowledge {
                        by: "op".into(),
                        at: T0 + n as i64,
                        note: None,
                    },
                    entry: Entry {
                        at: T0 + n as i64,
                        event: "acknowledged".into(),
                        by: Some("op".into()),
                        detail: String::new(),
                    },
                };
                let t = Instant::now();
                writer
                    .commit(vec![change], Vec::new(), Duration::from_secs(30))
                    .await
                    .unwrap();
                h.record(t.elapsed().as_micros() as u64).unwrap();
            }
            h
        }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    let mut peak = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        for _ in 0..per_tick {
            let fired = T0 + (sent as i64) * 10;
            writer.enqueue(vec![transition(alert(sent, fired))], Vec::new());
            sent += 1;
        }
        peak = peak.max(writer.health().backlog.load(Ordering::Relaxed));
    }
    let offered = started.elapsed();
    while writer.health().backlog.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = started.elapsed();
    let h = operator.await.unwrap();
    println!(
        "  storm ({}): {sent} transitions offered in {:.1} s ({:.0}/s); all committed after {:.1} s ({:.0}/s); largest backlog {peak}; {} transactions; operator commits p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        store.backend(),
        offered.as_secs_f64(),
        sent as f64 / offered.as_secs_f64(),
        drained.as_secs_f64(),
        sent as f64 / drained.as_secs_f64(),
        writer.health().batches.load(Ordering::Relaxed),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0,
    );
}

async fn history(store: &Store, alerts: u64) {
    let started = Instant::now();
    let span = 30 * DAY;
    let batch = 5000u64;
    let mut i = 0u64;
    while i < alerts {
        let changes: Vec<Change> = (i..(i + batch).min(alerts))
            .map(|n| {
                transition(alert(
                    n + 10_000_000,
                    T0 + (n as i64 * span / alerts as i64),
                ))
            })
            .collect();
        store.write(&changes, &[]).await.unwrap();
        i += batch;
    }
    let load = started.elapsed();
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut rows = 0usize;
    for q in 0..1000u64 {
        let day = T0 + (q % 30) as i64 * DAY;
        let query = AlertQuery {
            from: Some(day),
            to: Some(day + DAY),
            wards: vec![format!("ward_{:02}", q as usize % WARDS)],
            limit: 500,
            ..AlertQuery::default()
        };
        let t = Instant::now();
        rows += store.query(&query).await.unwrap().alerts.len();
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    println!(
        "  history ({}): {alerts} alerts stored in {:.0} s; a ward's day ({} alerts on average, first page of 500): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        store.backend(),
        load.as_secs_f64(),
        rows / 1000,
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0,
    );
}

fn main() {
    let seconds = env("STORM_SECONDS", 60);
    let alerts = env("HISTORY", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("watchfloor-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = TestPostgres::start();
    runtime.block_on(async {
        for url in [
            format!("sqlite:{}", dir.join("storm.db").display()),
            pg.database("storm"),
        ] {
            let store = Store::open(&url).await.unwrap();
            storm(&store, seconds).await;
            store.close().await;
        }
        for url in [
            format!("sqlite:{}", dir.join("history.db").display()),
            pg.database("history"),
        ] {
            let store = Store::open(&url).await.unwrap();
            history(&store, alerts).await;
            store.close().await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
