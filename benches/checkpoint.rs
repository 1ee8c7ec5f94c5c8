//! Cost of crash-exact state (docs/performance.md, "Checkpoints and the write-ahead log"):
//! - an engine checkpoint with 10,000 and 100,000 keys of open window state: serialising
//!   it (the engine pauses for this), writing it durably (temporary file, fsync, rename,
//!   folder fsync; on a thread of its own in the pipeline), and restoring it;
//! - the write-ahead log: batches of 512 records of 200 bytes appended and waited for until
//!   durable (one fsync per group commit).
//!
//! `cargo bench -p watchfloor-benches --bench checkpoint`

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use watchfloor_benches::{bench_config, engine, events_a, rules_a};
use watchfloor_engine::{Emitted, Engine};
use watchfloor_pipeline::durable::checkpoint::write_atomically;
use watchfloor_wal::Wal;

/// An engine holding one open one-minute window for each of `keys` stations.
fn loaded(keys: usize) -> Engine {
    let mut e = engine(rules_a());
    let mut out = Emitted::default();
    for ev in &events_a(keys, keys, 60_000) {
        e.process(ev, &mut out).unwrap();
    }
    assert_eq!(e.window_state_count(), keys);
    e
}

fn checkpoints(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!(
        "watchfloor-bench-checkpoint-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let positions = BTreeMap::from([("wal:seq".to_string(), "123456".to_string())]);
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for keys in [10_000, 100_000] {
        let e = loaded(keys);
        let bytes = e.checkpoint(&positions);
        eprintln!(
            "checkpoint of {keys} keys: {} bytes ({:.1} bytes per key)",
            bytes.len(),
            bytes.len() as f64 / keys as f64
        );
        group.bench_function(format!("serialise_{keys}_keys"), |b| {
            b.iter(|| e.checkpoint(&positions))
        });
        let path = dir.join(format!("engine-{keys}.checkpoint"));
        group.bench_function(format!("write_durably_{keys}_keys"), |b| {
            b.iter(|| write_atomically(&path, &bytes).unwrap())
        });
        group.bench_function(format!("restore_{keys}_keys"), |b| {
            b.iter_batched(
                || bytes.clone(),
                |bytes| Engine::restore(rules_a(), bench_config(), &bytes).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("wal");
    group.sample_size(20);
    let body = vec![b'x'; 200];
    let (mut wal, _) = Wal::open(&dir.join("wal")).unwrap();
    let durable = wal.durable_handle();
    let wait = |last: u64| {
        while durable.load(std::sync::atomic::Ordering::Acquire) < last {
            std::thread::sleep(Duration::from_micros(50));
        }
    };
    // A lone batch: the time until its acknowledgement may leave (one fsync: no commit window).
    group.throughput(Throughput::Elements(512));
    group.bench_function("one_batch_of_512_until_durable", |b| {
        b.iter(|| {
            wait(
                wal.append(std::iter::repeat_n(body.as_slice(), 512))
                    .unwrap(),
            )
        })
    });
    // Under load: 40 batches appended back to back (as the engine does), then waited for.
    group.throughput(Throughput::Elements(40 * 512));
    group.bench_function("40_batches_of_512_until_durable", |b| {
        b.iter(|| {
            let mut last = 0;
            for _ in 0..40 {
                last = wal
                    .append(std::iter::repeat_n(body.as_slice(), 512))
                    .unwrap();
            }
            wait(last)
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, checkpoints);
criterion_main!(benches);
