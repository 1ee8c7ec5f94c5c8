//! Data quality as a figure a province can report: the "đúng, đủ, sạch, sống" (correct,
//! complete, clean, live) index per station, commune, sector and day, from what the
//! pipeline did with every message (accepted, valid, duplicate, refused, how late).
//!
//! No I/O: the server counts messages into a [`Ledger`], writes its station-days to the
//! store, and asks [`indices`] for the figures of a day or a month/year of stored days.

mod counts;
mod index;
mod ranges;

pub use counts::{Counts, Delays, Fate, Ledger, Tally, DAYS_KEPT, DEFAULT_CADENCE_S};
pub use index::{expected, indices, Index, Pool};
pub use ranges::{in_range, physical_range};
