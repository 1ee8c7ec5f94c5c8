//! The day's message counts of one station, and the ledger of every station's days.
//!
//! Invariants: a station-day's counts only grow; `messages = accepted + duplicates +
//! rejected`; delays are kept in a fixed histogram (1 s buckets up to 10 minutes, then
//! 1 minute buckets up to a day, then one overflow bucket), so a station that floods costs
//! no more memory than one that does not. The ledger keeps [`DAYS_KEPT`] days.

use std::collections::BTreeMap;

use serde::Serialize;
use watchfloor_model::{Event, StationStatus};

use crate::ranges::in_range;

/// Days of counts kept in memory (the store keeps every day).
pub const DAYS_KEPT: i64 = 3;
/// The city's offset from UTC (Vietnam).
pub const UTC7_MS: i64 = 7 * 3_600_000;
/// A day, ms.
pub const DAY_MS: i64 = 86_400_000;
/// The delay allowed when a station has no registered cadence.
pub const DEFAULT_CADENCE_S: u32 = 300;

const FINE: usize = 600;
const COARSE: usize = 1440 - 10;
const BUCKETS: usize = FINE + COARSE + 1;

/// The local (UTC+7) day number of an epoch-ms instant.
pub fn local_day(ts: i64) -> i64 {
    (ts + UTC7_MS).div_euclid(DAY_MS)
}

/// Delays from measurement to ingestion, as a fixed histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delays {
    buckets: Vec<u32>,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            buckets: vec![0; BUCKETS],
        }
    }
}

fn bucket_of(ms: i64) -> usize {
    let s = (ms.max(0) / 1000) as usize;
    if s < FINE {
        s
    } else {
        (FINE + (s - FINE) / 60).min(BUCKETS - 1)
    }
}

fn bucket_floor_ms(b: usize) -> i64 {
    if b < FINE {
        b as i64 * 1000
    } else {
        (FINE as i64 + (b - FINE) as i64 * 60) * 1000
    }
}

impl Delays {
    /// Adds one delay.
    pub fn add(&mut self, ms: i64) {
        self.buckets[bucket_of(ms)] += 1;
    }

    /// The median (lower median, at the bucket's floor: to the second below ten minutes,
    /// to the minute above), if any delay was added.
    pub fn median_ms(&self) -> Option<i64> {
        let n: u64 = self.buckets.iter().map(|c| u64::from(*c)).sum();
        if n == 0 {
            return None;
        }
        let rank = n.div_ceil(2);
        let mut seen = 0u64;
        for (b, c) in self.buckets.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(bucket_floor_ms(b));
            }
        }
        None
    }
}

/// One station's counts for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages received (accepted, duplicate or refused).
    pub messages: u64,
    /// Readings accepted.
    pub accepted: u64,
    /// Accepted readings that are valid: status 00, every value in its physical range.
    pub valid: u64,
    /// Refused as duplicates.
    pub duplicates: u64,
    /// Refused for another reason (late, malformed, out of order…).
    pub rejected: u64,
    /// Accepted readings ingested within one cadence of their measurement.
    pub on_time: u64,
    /// Delays of accepted readings.
    pub delays: Delays,
    /// A restored day's median (the store keeps the median, not the histogram).
    pub restored_median_ms: Option<i64>,
}

impl Counts {
    /// The median delay, ms.
    pub fn delay_median_ms(&self) -> Option<i64> {
        self.delays.median_ms().or(self.restored_median_ms)
    }
}

/// How a message fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Accepted by the engine.
    Accepted,
    /// Refused as a duplicate.
    Duplicate,
    /// Refused for another reason.
    Rejected,
}

/// Every station's counts of the last [`DAYS_KEPT`] days.
#[derive(Debug, Default)]
pub struct Ledger {
    days: BTreeMap<(i64, String), Counts>,
}

/// A station-day's counts as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredCounts {
    /// Station id.
    pub station: String,
    /// Local day, `YYYY-MM-DD`.
    pub day: String,
    /// See [`Counts`].
    pub messages: u64,
    /// See [`Counts`].
    pub accepted: u64,
    /// See [`Counts`].
    pub valid: u64,
    /// See [`Counts`].
    pub duplicates: u64,
    /// See [`Counts`].
    pub rejected: u64,
    /// See [`Counts`].
    pub on_time: u64,
    /// Median delay, ms.
    pub delay_median_ms: Option<i64>,
}

impl Ledger {
    /// Counts an accepted event received at `received` from a station with `cadence_s`.
    pub fn accepted(&mut self, event: &Event, received: i64, cadence_s: Option<u32>) {
        let c = self.entry(&event.source, event.ts);
        c.messages += 1;
        c.accepted += 1;
        if event.status == StationStatus::Normal && in_range(&event.values) {
            c.valid += 1;
        }
        let delay = received - event.ts;
        c.delays.add(delay);
        let allowed = i64::from(cadence_s.unwrap_or(DEFAULT_CADENCE_S)) * 1000;
        if delay <= allowed {
            c.on_time += 1;
        }
    }

    /// Counts a refused message of `station`, measured at `ts` (when it said) and
    /// received at `received`.
    pub fn refused(&mut self, station: &str, ts: Option<i64>, received: i64, fate: Fate) {
        let c = self.entry(station, ts.unwrap_or(received));
        c.messages += 1;
        match fate {
            Fate::Duplicate => c.duplicates += 1,
            _ => c.rejected += 1,
        }
    }

    fn entry(&mut self, station: &str, ts: i64) -> &mut Counts {
        let day = local_day(ts);
        if !self.days.contains_key(&(day, station.to_string())) {
            // Keep the last DAYS_KEPT days of the newest day seen.
            if let Some(((newest, _), _)) = self.days.last_key_value() {
                let cut = (*newest).max(day) - DAYS_KEPT;
                self.days.retain(|(d, _), _| *d > cut);
            }
        }
        self.days.entry((day, station.to_string())).or_default()
    }

    /// Restores a stored station-day (at start), unless the ledger already counts it.
    pub fn restore(&mut self, day: i64, stored: &StoredCounts) {
        self.days
            .entry((day, stored.station.clone()))
            .or_insert_with(|| Counts {
                messages: stored.messages,
                accepted: stored.accepted,
                valid: stored.valid,
                duplicates: stored.duplicates,
                rejected: stored.rejected,
                on_time: stored.on_time,
                delays: Delays::default(),
                restored_median_ms: stored.delay_median_ms,
            });
    }

    /// The counts of local day `day`, by station.
    pub fn day(&self, day: i64) -> BTreeMap<&str, &Counts> {
        self.days
            .range((day, String::new())..(day + 1, String::new()))
            .map(|((_, s), c)| (s.as_str(), c))
            .collect()
    }

    /// Every station-day held, as stored (for the store's periodic write).
    pub fn stored(&self) -> Vec<StoredCounts> {
        self.days
            .iter()
            .map(|((day, station), c)| StoredCounts {
                station: station.clone(),
                day: day_text(*day),
                messages: c.messages,
                accepted: c.accepted,
                valid: c.valid,
                duplicates: c.duplicates,
                rejected: c.rejected,
                on_time: c.on_time,
                delay_median_ms: c.delay_median_ms(),
            })
            .collect()
    }
}

/// `YYYY-MM-DD` of a local day number (days since 1970-01-01).
pub fn day_text(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The local day number of `YYYY-MM-DD`.
pub fn day_number(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || text.len() != 10 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    (day_text(day) == text).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_medians_sit_on_bucket_floors() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(
            day_number("2026-11-30").map(day_text).as_deref(),
            Some("2026-11-30")
        );
        assert_eq!(day_number("2026-02-30"), None);
        assert_eq!(
            day_number("2024-02-29").map(day_text).as_deref(),
            Some("2024-02-29")
        );
        // 00:30 on 1 December in Vietnam is 17:30 UTC on 30 November.
        assert_eq!(day_text(local_day(1_796_059_800_000)), "2026-12-01");
        let mut d = Delays::default();
        assert_eq!(d.median_ms(), None);
        for ms in [2_400, 3_100, 600_000, 600_500, 601_000] {
            d.add(ms);
        }
        assert_eq!(d.median_ms(), Some(600_000));
        d.add(1_000);
        assert_eq!(d.median_ms(), Some(3_000), "lower median of six");
        d.add(90_000_000);
        d.add(90_000_000);
        assert_eq!(
            d.median_ms(),
            Some(600_000),
            "a day's delay lands in the overflow bucket"
        );
    }
}
