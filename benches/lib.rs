//! Workloads shared by Watchfloor's benchmarks: rule sets and event streams for the
//! engine-throughput figures (a) and (b) in docs/performance.md.

use watchfloor_engine::lookup::LookupTables;
use watchfloor_engine::{Engine, EngineConfig, RuleSet};
use watchfloor_model::{Event, Kind, StationStatus};

/// Epoch ms the generated streams start at (2026-11-17T00:00:00Z).
pub const BASE_MS: i64 = 1_794_873_600_000;

/// Small deterministic PRNG (xorshift64*), so workloads are identical run to run.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn event(source: String, kind: Kind, ts: i64, values: Vec<(String, f64)>) -> Event {
    Event {
        source,
        kind,
        ts,
        values,
        status: StationStatus::Normal,
        location: None,
        camera_event: None,
        attrs: Default::default(),
        zone: None,
    }
}

/// Engine config for benchmarks: replay (event-time) semantics.
pub fn bench_config() -> EngineConfig {
    EngineConfig::default()
}

/// Workload (a): one rule, tumbling 1-minute average.
pub fn rules_a() -> RuleSet {
    let yaml = r#"
rules:
  - id: pm25_minute_mean
    match: { kind: air, metric: pm25 }
    window: { type: tumbling, size: 1m }
    aggregates: { mean: avg(pm25) }
    condition: mean > 95
    severity: minor
"#;
    RuleSet::from_sources(&[("a.yaml".into(), yaml.into())], LookupTables::new())
        .expect("rules (a)")
}

/// Workload (a) events: `keys` air stations reporting round-robin, each once per
/// `cadence_ms` of event time, so windows close as the stream advances.
pub fn events_a(keys: usize, count: usize, cadence_ms: i64) -> Vec<Event> {
    let mut rng = Rng::new(7);
    (0..count)
        .map(|i| {
            let round = (i / keys) as i64;
            let k = i % keys;
            let ts = BASE_MS + round * cadence_ms + (k as i64 * cadence_ms) / keys as i64;
            event(
                format!("AQ-{k:05}"),
                Kind::Air,
                ts,
                vec![("pm25".into(), 100.0 * rng.unit())],
            )
        })
        .collect()
}

const KINDS: [(Kind, [&str; 4]); 5] = [
    (Kind::Air, ["pm25", "pm10", "no2", "o3"]),
    (Kind::Discharge, ["cod", "tss", "ph", "nh4"]),
    (
        Kind::WaterLevel,
        ["water_level", "flow", "temperature", "rainfall"],
    ),
    (Kind::Traffic, ["speed", "volume", "occupancy", "queue"]),
    (
        Kind::Weather,
        ["temperature", "humidity", "wind", "rainfall"],
    ),
];

/// Workload (b): 100 rules over 5 kinds. Per kind: one 1-hour window sliding every
/// minute, one session window, twelve tumbling windows (1, 5 and 15 minutes) and six
/// per-event thresholds, spread over the kind's four metrics and all aggregate functions.
pub fn rules_b() -> RuleSet {
    let mut yaml = String::from("rules:\n");
    let funcs = [
        "avg", "max", "min", "sum", "stddev", "slope", "last", "first",
    ];
    for (kind, metrics) in KINDS {
        for r in 0..20 {
            let metric = metrics[r % 4];
            let func = funcs[r % funcs.len()];
            let (window, agg) = match r {
                0 => (
                    "{ type: sliding, size: 1h, slide: 1m }".to_string(),
                    format!("avg({metric})"),
                ),
                1 => (
                    "{ type: session, gap: 5m }".to_string(),
                    format!("max({metric})"),
                ),
                2..=5 => (
                    "{ type: tumbling, size: 1m }".to_string(),
                    format!("{func}({metric})"),
                ),
                6..=9 => (
                    "{ type: tumbling, size: 5m }".to_string(),
                    format!("{func}({metric})"),
                ),
                10..=13 => (
                    "{ type: tumbling, size: 15m }".to_string(),
                    format!("{func}({metric})"),
                ),
                _ => ("{ type: none }".to_string(), format!("last({metric})")),
            };
            yaml.push_str(&format!(
                "  - id: {kind}_{r}\n    match: {{ kind: {kind}, metric: {metric} }}\n    window: {window}\n    aggregates: {{ x: \"{agg}\", n: count({metric}) }}\n    value: x\n    condition: n >= 1 && x > 99.5\n    severity: minor\n",
                kind = kind.as_str()
            ));
        }
    }
    RuleSet::from_sources(&[("b.yaml".into(), yaml)], LookupTables::new()).expect("rules (b)")
}

/// Workload (b) events: `keys` stations (spread evenly over the 5 kinds), each reporting
/// all four of its kind's metrics once per `cadence_ms` of event time.
pub fn events_b(keys: usize, count: usize, cadence_ms: i64) -> Vec<Event> {
    let mut rng = Rng::new(11);
    (0..count)
        .map(|i| {
            let round = (i / keys) as i64;
            let k = i % keys;
            let (kind, metrics) = KINDS[k % KINDS.len()];
            let ts = BASE_MS + round * cadence_ms + (k as i64 * cadence_ms) / keys as i64;
            let values = metrics
                .iter()
                .map(|m| (m.to_string(), 100.0 * rng.unit()))
                .collect();
            event(format!("ST-{k:06}"), kind, ts, values)
        })
        .collect()
}

/// A fresh engine for a workload.
pub fn engine(rules: RuleSet) -> Engine {
    Engine::new(rules, bench_config())
}
