//! Property tests: every window kind and every aggregate, on random out-of-order streams,
//! against a naive reference that recomputes each window from the accepted events. Which
//! events are accepted is itself checked against a reference model of the documented
//! rules (watermark = slowest source's latest event time less the out-of-orderness,
//! recomputed when the clock advances; late = behind it by more than the lateness;
//! duplicate = a timestamp among the source's last four accepted events), not taken from
//! the engine.

use std::collections::BTreeMap;

use proptest::prelude::*;
use watchfloor_engine::aggregate::SKETCH_RELATIVE_ACCURACY;
use watchfloor_engine::lookup::LookupTables;
use watchfloor_engine::{Emitted, Engine, EngineConfig, RuleSet, TimeMode, WindowKind};
use watchfloor_model::{Event, Kind, StationStatus};

const BASE: i64 = 1_795_000_000_000;
const AGGREGATES: &str = r#"
    aggregates:
      n: count(v)
      s: sum(v)
      mean: avg(v)
      lo: min(v)
      hi: max(v)
      first_v: first(v)
      last_v: last(v)
      sd: stddev(v)
      rate: slope(v)
      p90: percentile(v, 90)
      events: count()
    value: mean
    condition: n >= 0
    severity: info
"#;

fn rules() -> RuleSet {
    let text = format!(
        "rules:\n  - id: tumbling\n    match: {{ kind: air }}\n    window: {{ type: tumbling, size: 10s }}\n{AGGREGATES}\
         \n  - id: hopping\n    match: {{ kind: air }}\n    window: {{ type: hopping, size: 30s, slide: 10s }}\n{AGGREGATES}\
         \n  - id: session\n    match: {{ kind: air }}\n    window: {{ type: session, gap: 5s }}\n{AGGREGATES}\
         \n  - id: per_event\n    match: {{ kind: air }}\n{AGGREGATES}"
    );
    RuleSet::from_sources(&[("props.yaml".into(), text)], LookupTables::new())
        .expect("rules compile")
}

fn event(key: &str, ts: i64, v: f64) -> Event {
    Event {
        source: key.to_string(),
        kind: Kind::Air,
        ts,
        values: vec![("v".to_string(), v)],
        status: StationStatus::Normal,
        location: None,
        camera_event: None,
        attrs: Default::default(),
        zone: None,
    }
}

/// Accepted events as (arrival index, ts, value).
type Accepted = Vec<(usize, i64, f64)>;

fn reference_values(events: &[(usize, i64, f64)]) -> Vec<f64> {
    let n = events.len() as f64;
    let vals: Vec<f64> = events.iter().map(|e| e.2).collect();
    let sum: f64 = vals.iter().sum();
    let mean = sum / n;
    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let first = events.iter().min_by_key(|e| (e.1, e.0)).unwrap().2;
    let last = events.iter().max_by_key(|e| (e.1, e.0)).unwrap().2;
    let t0 = events.iter().map(|e| e.1).min().unwrap();
    let ts: Vec<f64> = events.iter().map(|e| (e.1 - t0) as f64 / 1000.0).collect();
    let mean_t = ts.iter().sum::<f64>() / n;
    let stt: f64 = ts.iter().map(|t| (t - mean_t) * (t - mean_t)).sum();
    let stv: f64 = ts
        .iter()
        .zip(&vals)
        .map(|(t, v)| (t - mean_t) * (v - mean))
        .sum();
    let slope = if stt > 0.0 { stv / stt } else { 0.0 };
    let mut sorted = vals.clone();
    sorted.sort_by(f64::total_cmp);
    let p90 = sorted[(0.9 * (n - 1.0)).floor() as usize];
    vec![
        n,
        sum,
        mean,
        sorted[0],
        *sorted.last().unwrap(),
        first,
        last,
        var.sqrt(),
        slope,
        p90,
        n,
    ]
}

fn reference_windows(kind: WindowKind, accepted: &Accepted) -> BTreeMap<(i64, i64), Vec<f64>> {
    let mut out = BTreeMap::new();
    match kind {
        WindowKind::Tumbling { size } => {
            let mut groups: BTreeMap<i64, Accepted> = BTreeMap::new();
            for e in accepted {
                groups
                    .entry(e.1.div_euclid(size) * size)
                    .or_default()
                    .push(*e);
            }
            for (start, events) in groups {
                out.insert((start, start + size), reference_values(&events));
            }
        }
        WindowKind::Hopping { size, slide } => {
            let mut ends: Vec<i64> = Vec::new();
            for e in accepted {
                let first_end = e.1.div_euclid(slide) * slide + slide;
                let mut end = first_end;
                while end - size <= e.1 {
                    ends.push(end);
                    end += slide;
                }
            }
            ends.sort();
            ends.dedup();
            for end in ends {
                let inside: Accepted = accepted
                    .iter()
                    .filter(|e| e.1 >= end - size && e.1 < end)
                    .copied()
                    .collect();
                out.insert((end - size, end), reference_values(&inside));
            }
        }
        WindowKind::Session { gap } => {
            let mut sorted = accepted.clone();
            sorted.sort_by_key(|e| (e.1, e.0));
            let mut current: Accepted = Vec::new();
            for e in sorted {
                if let Some(prev) = current.last() {
                    if e.1 - prev.1 >= gap {
                        let start = current[0].1;
                        let end = current.last().unwrap().1 + gap;
                        out.insert((start, end), reference_values(&current));
                        current.clear();
                    }
                }
                current.push(e);
            }
            if !current.is_empty() {
                let start = current[0].1;
                let end = current.last().unwrap().1 + gap;
                out.insert((start, end), reference_values(&current));
            }
        }
        WindowKind::None => unreachable!("per-event rules are compared event by event"),
    }
    out
}

fn close(slot: usize, got: f64, want: f64) -> bool {
    if slot == 9 {
        // Percentile: within the sketch's relative accuracy of the exact rank value.
        return (got - want).abs() <= SKETCH_RELATIVE_ACCURACY * want.abs() + 1e-9;
    }
    (got - want).abs() <= 1e-7 * want.abs().max(1.0)
}

/// What the documented rules decide for each event of a stream: `None` accepted, or the
/// rejection code.
fn reference_decisions(
    events: &[(u8, i64, f64)],
    bound: i64,
    lateness: i64,
) -> Vec<Option<&'static str>> {
    let mut watermark = i64::MIN;
    let mut clock = i64::MIN;
    let mut next_recompute = i64::MIN;
    let mut latest: BTreeMap<u8, i64> = BTreeMap::new();
    let mut recent: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    let mut out = Vec::new();
    for (k, ts, _) in events {
        clock = clock.max(*ts);
        if watermark != i64::MIN && *ts < watermark - lateness {
            out.push(Some("late"));
            continue;
        }
        let seen = recent.entry(*k).or_default();
        if seen.contains(ts) {
            out.push(Some("duplicate"));
            continue;
        }
        seen.push(*ts);
        if seen.len() > 4 {
            seen.remove(0);
        }
        let l = latest.entry(*k).or_insert(*ts);
        *l = (*l).max(*ts);
        if next_recompute == i64::MIN || clock >= next_recompute {
            let slowest = latest.values().min().copied().unwrap();
            watermark = watermark.max(slowest - bound);
            next_recompute = clock + 1;
        }
        out.push(None);
    }
    out
}

/// A stream: (key, event-time offset from its position, value). Offsets jitter around a
/// rising clock so events arrive out of order, some beyond the allowed lateness.
fn stream() -> impl Strategy<Value = Vec<(u8, i64, f64)>> {
    prop::collection::vec((0u8..3, -6_000i64..2_000, -1_000i32..1_000), 1..160).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (k, jitter, v))| {
                // Event time advances ~700 ms per event; ts on a 100 ms grid.
                let ts = BASE + (i as i64 * 700 + jitter).div_euclid(100) * 100;
                (k, ts, f64::from(v) / 8.0)
            })
            .collect()
    })
}

/// The model itself: a stream in order (within the out-of-orderness) loses nothing, and an
/// event far behind is late.
#[test]
fn the_reference_model_accepts_in_order_streams_and_refuses_stragglers() {
    let in_order: Vec<(u8, i64, f64)> = (0..100)
        .map(|i| ((i % 3) as u8, BASE + i * 500, 1.0))
        .collect();
    assert!(reference_decisions(&in_order, 2_000, 1_000)
        .iter()
        .all(Option::is_none));
    let mut with_straggler = in_order.clone();
    with_straggler.push((0, BASE, 2.0));
    with_straggler.push((0, BASE + 99 * 500, 2.0));
    let decisions = reference_decisions(&with_straggler, 2_000, 1_000);
    assert_eq!(decisions[100], Some("late"));
    assert_eq!(decisions[101], Some("duplicate"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn windows_match_naive_recompute(events in stream()) {
        let set = rules();
        let kinds: Vec<(String, WindowKind)> = set.rules.iter().map(|r| (r.id.clone(), r.window)).collect();
        let mut engine = Engine::new(set, EngineConfig {
            max_out_of_orderness_ms: 2_000,
            allowed_lateness_ms: 1_000,
            idle_timeout_ms: 3_600_000,
            watermark_interval_ms: 1,
            time_mode: TimeMode::Event,
            emit_window_results: true,
        });
        let mut out = Emitted::default();
        let mut accepted: BTreeMap<String, Accepted> = BTreeMap::new();
        let mut late = 0;
        let decisions = reference_decisions(&events, 2_000, 1_000);
        for (i, (k, ts, v)) in events.iter().enumerate() {
            let key = format!("S{k}");
            let got = engine.process(&event(&key, *ts, *v), &mut out).err().map(|e| e.code());
            prop_assert_eq!(got, decisions[i], "event {} ({}, ts +{} ms)", i, key, ts - BASE);
            match got {
                None => accepted.entry(key).or_default().push((i, *ts, *v)),
                Some(_) => late += 1,
            }
        }
        engine.finish(&mut out);
        prop_assert_eq!(engine.stats().late + engine.stats().duplicates, late);

        for (rule, kind) in &kinds {
            for (key, events) in &accepted {
                if *kind == WindowKind::None {
                    // Per-event rules: one evaluation per accepted event, in arrival order.
                    let got: Vec<&watchfloor_engine::WindowResult> = out.windows.iter()
                        .filter(|w| &w.rule == rule && &w.key == key)
                        .collect();
                    prop_assert_eq!(got.len(), events.len(), "{} {}: one evaluation per event", rule, key);
                    for (w, e) in got.iter().zip(events) {
                        prop_assert_eq!((w.start, w.end), (e.1, e.1));
                        for (slot, (g, want)) in w.values.iter().zip(reference_values(&[*e])).enumerate() {
                            prop_assert!(close(slot, *g, want), "{} {} slot {}: engine {} reference {}", rule, key, slot, g, want);
                        }
                    }
                    continue;
                }
                let want = reference_windows(*kind, events);
                let got: BTreeMap<(i64, i64), Vec<f64>> = out.windows.iter()
                    .filter(|w| &w.rule == rule && &w.key == key)
                    .map(|w| ((w.start, w.end), w.values.clone()))
                    .collect();
                let emitted = out.windows.iter().filter(|w| &w.rule == rule && &w.key == key).count();
                prop_assert_eq!(emitted, got.len(), "{} {}: a window was emitted twice", rule, key);
                prop_assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{} {}: window set", rule, key);
                for (span, values) in &want {
                    let engine_values = &got[span];
                    for (slot, (g, w)) in engine_values.iter().zip(values).enumerate() {
                        prop_assert!(close(slot, *g, *w), "{} {} {:?} slot {}: engine {} reference {}", rule, key, span, slot, g, w);
                    }
                }
            }
        }
    }
}
