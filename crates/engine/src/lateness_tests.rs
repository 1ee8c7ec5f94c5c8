//! Windows under an allowed lateness, at the engine level: a window closes only once the
//! watermark passes its end plus the lateness, so an event that late is still counted in
//! it; tumbling, sliding and session windows alike; and the windows-closed counter.

use super::*;
use crate::test_support::*;

fn engine(window: &str) -> Engine {
    let rules = format!(
        "rules:\n  - id: w\n    match: {{ kind: air }}\n    window: {window}\n    aggregates: {{ n: count(), s: sum(pm25) }}\n    condition: n > 100\n    value: n\n    severity: minor\n    message: m\n"
    );
    let config = EngineConfig {
        allowed_lateness_ms: 2 * MIN,
        idle_timeout_ms: 60 * MIN,
        emit_window_results: true,
        ..strict()
    };
    engine_with(&rules, LookupTables::default(), config)
}

/// (start, end) in minutes after T0, count, sum of each closed window of key A.
fn closed(out: &Emitted) -> Vec<(i64, i64, f64, f64)> {
    out.windows
        .iter()
        .filter(|w| w.key == "A")
        .map(|w| {
            (
                (w.start - T0) / MIN,
                (w.end - T0) / MIN,
                w.values[0],
                w.values[1],
            )
        })
        .collect()
}

#[test]
fn a_tumbling_window_waits_for_the_lateness_and_counts_a_late_event() {
    let mut e = engine("{ type: tumbling, size: 10m }");
    let mut out = Emitted::default();
    for (m, v) in [(1.0, 1.0), (5.0, 2.0), (11.0, 0.0)] {
        e.process(&pm("A", T0 + (m * MIN as f64) as i64, v), &mut out)
            .unwrap();
    }
    assert!(closed(&out).is_empty(), "not before 10 + 2 minutes");
    // Nine minutes: behind the watermark (11) but within the lateness: counted.
    e.process(&pm("A", T0 + 9 * MIN, 4.0), &mut out).unwrap();
    e.process(&pm("A", T0 + 12 * MIN + 1, 0.0), &mut out)
        .unwrap();
    assert_eq!(closed(&out), [(0, 10, 3.0, 7.0)]);
    assert_eq!(e.stats().windows_closed, 1);
    // Now too late for it.
    assert!(matches!(
        e.process(&pm("A", T0 + 9 * MIN, 8.0), &mut out),
        Err(Rejection::Late { .. })
    ));
}

#[test]
fn a_sliding_window_closes_each_slide_after_the_lateness() {
    let mut e = engine("{ type: sliding, size: 10m, slide: 5m }");
    let mut out = Emitted::default();
    e.process(&pm("A", T0 + MIN, 1.0), &mut out).unwrap();
    e.process(&pm("A", T0 + 6 * MIN, 2.0), &mut out).unwrap();
    e.process(&pm("A", T0 + 6 * MIN + 30_000, 0.0), &mut out)
        .unwrap();
    assert!(
        closed(&out).is_empty(),
        "the window ending at 5 closes at 7"
    );
    e.process(&pm("A", T0 + 7 * MIN + 1, 0.0), &mut out)
        .unwrap();
    assert_eq!(closed(&out), [(-5, 5, 1.0, 1.0)]);
    e.process(&pm("A", T0 + 12 * MIN + 1, 0.0), &mut out)
        .unwrap();
    assert_eq!(closed(&out), [(-5, 5, 1.0, 1.0), (0, 10, 4.0, 3.0)]);
    assert_eq!(e.stats().windows_closed, 2);
}

#[test]
fn a_session_closes_a_gap_plus_the_lateness_after_its_last_event() {
    let mut e = engine("{ type: session, gap: 5m }");
    let mut out = Emitted::default();
    e.process(&pm("A", T0, 1.0), &mut out).unwrap();
    e.process(&pm("A", T0 + 3 * MIN, 2.0), &mut out).unwrap();
    // A new burst 6.5 minutes later; the first session closes at 3 + 5 + 2 = 10.
    e.process(&pm("A", T0 + 9 * MIN + 30_000, 4.0), &mut out)
        .unwrap();
    assert!(closed(&out).is_empty(), "{:?}", closed(&out));
    e.process(&pm("A", T0 + 10 * MIN + 1, 8.0), &mut out)
        .unwrap();
    let sessions = closed(&out);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!((sessions[0].0, sessions[0].2, sessions[0].3), (0, 2.0, 3.0));
    assert_eq!(
        out.windows[0].end - T0,
        8 * MIN,
        "ends a gap after its last event"
    );
}
