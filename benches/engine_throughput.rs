//! Engine throughput on one core (criterion): workloads (a) and (b) of docs/performance.md.
//! `cargo bench -p watchfloor-benches --bench engine_throughput`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use watchfloor_benches::{engine, events_a, events_b, rules_a, rules_b};
use watchfloor_engine::Emitted;

fn throughput(c: &mut Criterion) {
    // (a) 1 rule, tumbling 1-minute average, 10,000 keys each reporting every 10 s:
    // 1,000,000 events cover ~17 minutes of event time, so ~170,000 windows close.
    let events = events_a(10_000, 1_000_000, 10_000);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("a_tumbling_avg_10k_keys", |b| {
        b.iter_batched(
            || engine(rules_a()),
            |mut e| {
                let mut out = Emitted::default();
                for ev in &events {
                    let _ = e.process(ev, &mut out);
                    out.transitions.clear();
                }
                e
            },
            BatchSize::PerIteration,
        )
    });
    drop(events);

    // (b) 100 rules over 5 kinds, 100,000 keys (20,000 per kind, each event matching all
    // 20 rules of its kind). The engine is warmed with one report from every key (state
    // created) before timing; the timed events follow at two cadences.
    for (name, cadence_ms, timed) in [
        ("b_100_rules_100k_keys_every_10s", 10_000, 2_000_000),
        ("b_100_rules_100k_keys_every_60s", 60_000, 1_000_000),
    ] {
        let keys = 100_000;
        let all = events_b(keys, keys + timed, cadence_ms);
        let (warm, events) = all.split_at(keys);
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut e = engine(rules_b());
                    let mut out = Emitted::default();
                    for ev in warm {
                        let _ = e.process(ev, &mut out);
                    }
                    e
                },
                |mut e| {
                    let mut out = Emitted::default();
                    for ev in events {
                        let _ = e.process(ev, &mut out);
                        out.transitions.clear();
                    }
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
