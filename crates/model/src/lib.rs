//! Watchfloor's shared vocabulary: the telemetry envelope every producer sends, the typed
//! reasons an envelope is rejected, and the alert transitions the engine emits.
//!
//! This crate does no I/O. Connectors decode bytes into [`Event`]s with [`decode_envelope`],
//! the engine turns events into [`AlertTransition`]s, and the server and outputs serialise
//! those transitions.

mod alert;
mod aliases;
mod envelope;
mod rejection;
mod time;
mod tt10;
mod units;
pub mod vn_aqi;

#[cfg(test)]
mod contract_tests;

pub use alert::{
    exercise_of_alert, valid_exercise_id, AlertState, AlertTransition, Severity,
    EXERCISE_ID_SEPARATOR, EXERCISE_LABEL, EXERCISE_MODE, MODE_LABEL,
};
pub use aliases::canonical_metric;
pub use envelope::{
    decode_envelope, decode_envelopes, DecodeLimits, Event, Kind, Location, StationStatus,
};
pub use rejection::Rejection;
pub use time::{
    day_number, day_text, format_rfc3339, local_day, local_day_start, month_of, parse_rfc3339,
    parse_timestamp_value, EpochMillis, CITY_UTC_OFFSET_MS, DAY_MS,
};
pub use tt10::{decode_tt10, tt10_station_from_file_name, Tt10Context};
pub use units::canonical_unit;
