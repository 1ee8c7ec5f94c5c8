//! Indicator sets as configuration: the KPIs each operations centre watches, defined in
//! `indicators/*.yaml` (names in Vietnamese and English, unit, source and value
//! expression, period, target, red/amber/green bands, owning unit and sector, the area
//! levels they apply to), validated with `file:line` errors, computed per zone and sector
//! view with a trend and history, and swapped on reload keeping the history of the
//! indicators that did not change.
//!
//! No I/O besides reading the files at load: the server feeds readings ([`Inputs`]) and
//! alerts ([`AlertFact`]) in and takes rows ([`ZoneRow`]) out. `docs/indicators.md` is
//! the writer's guide.

mod band;
mod compute;
mod inputs;
mod spec;

pub use band::{Bands, Better};
pub use compute::{by_indicator, AlertFact, Computer, IndicatorValue, View, ZoneRow};
pub use inputs::Inputs;
pub use spec::{variables, Indicator, IndicatorSet, Period, Source, DERIVED_METRICS, SCOPE_LEVELS};

/// The shipped default set (`indicators/default.yaml`), used when a centre names no
/// indicator directory.
pub const DEFAULT_SET: &str = include_str!("../../../indicators/default.yaml");

/// The shipped default set, compiled against `sectors`.
pub fn default_set(sectors: &[String]) -> Result<IndicatorSet, watchfloor_engine::RuleErrors> {
    IndicatorSet::from_sources(
        &[(
            "indicators/default.yaml".to_string(),
            DEFAULT_SET.to_string(),
        )],
        sectors,
    )
}
