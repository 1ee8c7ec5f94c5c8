//! Helpers shared by the engine's test modules: an engine from rule text, the usual
//! configuration (no out-of-orderness, no lateness, a one-minute idle timeout), events.

use watchfloor_model::{Event, Kind, StationStatus};

use crate::{Engine, EngineConfig, LookupTables, RuleSet};

/// 2026-11-18T11:00:00Z.
pub(crate) const T0: i64 = 1_794_999_600_000;
pub(crate) const MIN: i64 = 60_000;

/// Event time, nothing out of order, no lateness, idle after a minute.
pub(crate) fn strict() -> EngineConfig {
    EngineConfig {
        max_out_of_orderness_ms: 0,
        allowed_lateness_ms: 0,
        idle_timeout_ms: MIN,
        ..EngineConfig::default()
    }
}

/// An engine running `rules` (one file's text) with `lookups`.
pub(crate) fn engine_with(rules: &str, lookups: LookupTables, config: EngineConfig) -> Engine {
    let set = RuleSet::from_sources(&[("t.yaml".into(), rules.into())], lookups)
        .unwrap_or_else(|e| panic!("{e}"));
    Engine::new(set, config)
}

/// A valid reading of `values` from `source`.
pub(crate) fn event(source: &str, kind: Kind, ts: i64, values: &[(&str, f64)]) -> Event {
    Event {
        source: source.into(),
        kind,
        ts,
        values: values.iter().map(|(m, v)| (m.to_string(), *v)).collect(),
        status: StationStatus::Normal,
        location: None,
        camera_event: None,
        attrs: Default::default(),
        zone: None,
    }
}

/// An air station's PM2.5 reading.
pub(crate) fn pm(source: &str, ts: i64, v: f64) -> Event {
    event(source, Kind::Air, ts, &[("pm25", v)])
}
