//! The day's message counts of one station, and the ledger of every station's days.
//!
//! Invariants: a station-day's counts only grow; `messages = accepted + duplicates +
//! rejected`; delays are kept in a fixed histogram (1 s buckets up to 10 minutes, then
//! 1 minute buckets up to a day, then one overflow bucket), so a station that floods costs
//! no more memory than one that does not. The ledger keeps [`DAYS_KEPT`] days.

use std::collections::BTreeMap;

use serde::Serialize;
use watchfloor_model::{local_day, Event, StationStatus};

use crate::ranges::in_range;

/// Days of counts kept in memory (the store keeps every day).
pub const DAYS_KEPT: i64 = 3;
/// The delay allowed when a station has no registered cadence.
pub const DEFAULT_CADENCE_S: u32 = 300;

const FINE: usize = 600;
const COARSE: usize = 1440 - 10;
const BUCKETS: usize = FINE + COARSE + 1;

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

/// What happened to a station's messages (over a day, or pooled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Messages received (accepted, duplicate or refused).
    pub messages: u64,
    /// Readings accepted.
    pub accepted: u64,
    /// Accepted readings that are valid: status 00, every value in its physical range.
    pub valid: u64,
    /// Refused as duplicates.
    pub duplicates: u64,
    /// Refused for another reason (late, of the wrong kind…).
    pub rejected: u64,
    /// Accepted readings ingested within one cadence of their measurement.
    pub on_time: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, o: &Tally) {
        self.messages += o.messages;
        self.accepted += o.accepted;
        self.valid += o.valid;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        self.on_time += o.on_time;
    }
}

/// One station's counts for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// The messages.
    pub tally: Tally,
    /// Delays of accepted readings.
    pub delays: Delays,
    /// A restored day's median (the store keeps the median, not the histogram).
    pub restored_median_ms: Option<i64>,
}

impl Counts {
    /// Counts read back from the store (a median instead of the histogram).
    pub fn restored(tally: Tally, median_ms: Option<i64>) -> Counts {
        Counts {
            tally,
            delays: Delays::default(),
            restored_median_ms: median_ms,
        }
    }

    /// The median delay, ms.
    pub fn delay_median_ms(&self) -> Option<i64> {
        self.delays.median_ms().or(self.restored_median_ms)
    }
}

/// How a refused message fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Refused as a duplicate.
    Duplicate,
    /// Refused for another reason.
    Rejected,
}

/// Every station's counts of the last [`DAYS_KEPT`] days.
#[derive(Debug, Default)]
pub struct Ledger {
    days: BTreeMap<(i64, String), Counts>,
    /// The newest local day seen (by arrival): days older than DAYS_KEPT before it are gone.
    newest: i64,
}

impl Ledger {
    /// Counts an accepted event received at `received` from a station with `cadence_s`.
    pub fn accepted(&mut self, event: &Event, received: i64, cadence_s: Option<u32>) {
        let Some(c) = self.entry(&event.source, event.ts, received) else {
            return;
        };
        c.tally.messages += 1;
        c.tally.accepted += 1;
        if event.status == StationStatus::Normal && in_range(&event.values) {
            c.tally.valid += 1;
        }
        let delay = received - event.ts;
        c.delays.add(delay);
        let allowed = i64::from(cadence_s.unwrap_or(DEFAULT_CADENCE_S)) * 1000;
        if delay <= allowed {
            c.tally.on_time += 1;
        }
    }

    /// Counts a refused message of `station`, measured at `ts` (when it said) and
    /// received at `received`.
    pub fn refused(&mut self, station: &str, ts: Option<i64>, received: i64, fate: Fate) {
        let Some(c) = self.entry(station, ts.unwrap_or(received), received) else {
            return;
        };
        c.tally.messages += 1;
        match fate {
            Fate::Duplicate => c.tally.duplicates += 1,
            Fate::Rejected => c.tally.rejected += 1,
        }
    }

    /// The counts of `station` for the day of `ts`; `None` when that day is older than the
    /// days kept, as of when the message arrived (a logger re-sending last week's files
    /// must not replace last week's stored counts with its few re-sent messages).
    fn entry(&mut self, station: &str, ts: i64, received: i64) -> Option<&mut Counts> {
        let day = local_day(ts);
        let newest = local_day(received).max(self.newest).max(day);
        if day <= newest - DAYS_KEPT {
            return None;
        }
        if newest > self.newest {
            self.newest = newest;
            self.days.retain(|(d, _), _| *d > newest - DAYS_KEPT);
        }
        Some(self.days.entry((day, station.to_string())).or_default())
    }

    /// The counts of local day `day`, by station.
    pub fn day(&self, day: i64) -> BTreeMap<&str, &Counts> {
        self.days
            .range((day, String::new())..(day + 1, String::new()))
            .map(|((_, s), c)| (s.as_str(), c))
            .collect()
    }

    /// Puts back a station-day read from the store at start, unless the ledger already
    /// counts that day (a restart: the store has what was counted before it).
    pub fn restore(&mut self, day: i64, station: &str, counts: Counts) {
        self.days
            .entry((day, station.to_string()))
            .or_insert(counts);
    }

    /// Every station-day held: (local day, station, counts), for the store's writes.
    pub fn all(&self) -> impl Iterator<Item = (i64, &str, &Counts)> {
        self.days.iter().map(|((d, s), c)| (*d, s.as_str(), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_older_than_those_kept_are_not_counted_again() {
        let mut l = Ledger::default();
        let day = 20_000 * watchfloor_model::DAY_MS;
        l.refused("S", Some(day), day + 1_000, Fate::Duplicate);
        // A week-old re-sent file arriving today: not counted (its day is stored already).
        l.refused(
            "S",
            Some(day - 7 * watchfloor_model::DAY_MS),
            day + 2_000,
            Fate::Rejected,
        );
        assert_eq!(l.all().count(), 1);
        // Yesterday's late message still counts on yesterday.
        l.refused(
            "S",
            Some(day - watchfloor_model::DAY_MS),
            day + 3_000,
            Fate::Rejected,
        );
        assert_eq!(l.all().count(), 2);
    }

    #[test]
    fn medians_sit_on_bucket_floors() {
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
