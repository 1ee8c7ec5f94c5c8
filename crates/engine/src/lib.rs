//! Watchfloor's rule engine: event-time windows, aggregates, CEL conditions and the alert
//! lifecycle, as a library with no I/O.
//!
//! Feed it validated [`watchfloor_model::Event`]s with [`Engine::process`], drive its
//! clock with [`Engine::tick`] (live) or let event time drive it (replay), and collect
//! [`watchfloor_model::AlertTransition`]s from [`Emitted`]. Rules come from YAML files
//! loaded by [`RuleSet::load_dir`].

pub mod aggregate;
mod alert_id;
pub mod duration;
mod engine;
pub mod expr;
pub mod lookup;
pub mod rule;
pub mod template;
#[cfg(test)]
mod test_support;
pub mod two_stacks;
mod watermark;
mod window_store;

pub use alert_id::alert_id;
pub use engine::{
    Acknowledgement, ActiveAlertView, CheckpointError, Emitted, Engine, EngineConfig, EngineError,
    EngineStats, ReloadSummary, Restored, TimeMode, WindowResult, DUPLICATE_METRIC,
};
pub use lookup::LookupTables;
pub use rule::{Rule, RuleError, RuleErrors, RuleSet, WindowKind};
