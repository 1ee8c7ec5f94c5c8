//! The "đúng, đủ, sạch, sống" index from counts, per station and pooled per commune, sector
//! and the city, over a day or a range of days.
//!
//! Definitions (docs/indicators.md says them in operator language):
//! - **đúng** (correct) = valid ÷ accepted readings;
//! - **đủ** (complete) = accepted ÷ expected, expected = the period's length ÷ the station's
//!   registered cadence (today: the part of the day gone so far; only days the centre ran),
//!   each station-day capped at what it should have sent;
//! - **sạch** (clean) = 1 − (duplicates + rejected) ÷ messages received;
//! - **sống** (live) = readings ingested within one cadence of their measurement ÷ accepted,
//!   with the median delay beside it;
//! - the **index** = the mean of the four shares that exist, × 100.
//!
//! Pooled figures add the counts (and the expected readings) of their stations first, so a
//! station sending a thousand duplicates weighs by its messages, and a silent station with
//! a cadence weighs by what it should have sent. Stations with no cadence (cameras,
//! pushed indicators) have no đủ and count for the others only when they sent something.

use std::collections::BTreeMap;

use serde::Serialize;
use watchfloor_city::{City, Station};

use watchfloor_model::{local_day_start, DAY_MS};

use crate::counts::{Counts, Tally};

/// Counts added up over stations and days, with the expected readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pool {
    /// Stations counted.
    pub stations: u64,
    /// The messages.
    pub tally: Tally,
    /// Readings expected from the stations' cadences.
    pub expected: f64,
    /// Accepted readings of stations with a cadence (the numerator of đủ).
    pub accepted_with_cadence: u64,
    /// Median delays of the stations (ms), for the pooled median.
    pub medians: Vec<i64>,
}

/// The index of a station, commune, sector or the city over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Index {
    /// Station, commune or sector id, or `city`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `station`, `commune`, `sector` or `city`.
    pub level: &'static str,
    /// Stations pooled.
    pub stations: u64,
    /// Messages received.
    pub messages: u64,
    /// Readings accepted.
    pub accepted: u64,
    /// Readings expected.
    pub expected: f64,
    /// đúng, 0–1.
    pub dung: Option<f64>,
    /// đủ, 0–1.
    pub du: Option<f64>,
    /// sạch, 0–1.
    pub sach: Option<f64>,
    /// sống (share on time), 0–1.
    pub song: Option<f64>,
    /// Median delay from measurement to ingestion, seconds (stations: their own; pools:
    /// the median of their stations' medians).
    pub delay_median_s: Option<f64>,
    /// Mean of the four shares × 100.
    pub index: Option<f64>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| (a / b).min(1.0))
}

/// Rounds to four decimals (shares) so answers compare exactly.
fn r4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

impl Pool {
    /// Adds one station's counts over a period in which it should have sent `expected`
    /// readings (`None`: no cadence).
    pub fn add(&mut self, c: Option<&Counts>, expected: Option<f64>) {
        if c.is_none() && expected.is_none() {
            return;
        }
        self.stations += 1;
        if let Some(e) = expected {
            self.expected += e;
            // Capped per station-day: a station sending five times its cadence does not
            // make up for a silent neighbour.
            let accepted = c.map_or(0, |c| c.tally.accepted) as f64;
            self.accepted_with_cadence += accepted.min(e) as u64;
        }
        if let Some(c) = c {
            self.tally.add(&c.tally);
            self.medians.extend(c.delay_median_ms());
        }
    }

    /// Adds another pool.
    pub fn merge(&mut self, other: &Pool) {
        self.stations += other.stations;
        self.tally.add(&other.tally);
        self.expected += other.expected;
        self.accepted_with_cadence += other.accepted_with_cadence;
        self.medians.extend(&other.medians);
    }

    /// The index of the pool.
    pub fn index(&self, id: &str, name: &str, level: &'static str) -> Index {
        let t = &self.tally;
        let dung = ratio(t.valid as f64, t.accepted as f64);
        let du = ratio(self.accepted_with_cadence as f64, self.expected);
        let sach =
            (t.messages > 0).then(|| 1.0 - (t.duplicates + t.rejected) as f64 / t.messages as f64);
        let song = ratio(t.on_time as f64, t.accepted as f64);
        let delay = median_of(&self.medians).map(|m| m as f64 / 1000.0);
        let shares: Vec<f64> = [dung, du, sach, song].into_iter().flatten().collect();
        let index = (!shares.is_empty())
            .then(|| (1000.0 * shares.iter().sum::<f64>() / shares.len() as f64).round() / 10.0);
        Index {
            id: id.to_string(),
            name: name.to_string(),
            level,
            stations: self.stations,
            messages: t.messages,
            accepted: t.accepted,
            expected: (self.expected * 10.0).round() / 10.0,
            dung: dung.map(r4),
            du: du.map(r4),
            sach: sach.map(r4),
            song: song.map(r4),
            delay_median_s: delay,
            index,
        }
    }
}

/// Readings a station with `cadence_s` should send on local day `day` as of `now` (the
/// part of today gone so far; none before the day starts).
pub fn expected(cadence_s: Option<u32>, day: i64, now: i64) -> Option<f64> {
    let cadence = f64::from(cadence_s?) * 1000.0;
    let start = local_day_start(day);
    let span = (now.min(start + DAY_MS) - start).max(0) as f64;
    Some((span / cadence).floor())
}

/// Station, commune, sector and city indices over local days `days` (inclusive range)
/// from `counts(day, station)`, for the stations `keep` lets through (a caller's scope).
/// Only the days `ran(day)` says the centre was running expect readings (a month or year
/// before the centre was deployed does not count against its stations).
pub fn indices<'a>(
    city: &City,
    days: std::ops::RangeInclusive<i64>,
    now: i64,
    counts: impl Fn(i64, &str) -> Option<&'a Counts>,
    ran: impl Fn(i64) -> bool,
    keep: impl Fn(&Station) -> bool,
) -> Vec<Index> {
    let mut stations = Vec::new();
    let mut communes: BTreeMap<&str, Pool> = BTreeMap::new();
    let mut sectors: BTreeMap<&str, Pool> = BTreeMap::new();
    let mut city_pool = Pool::default();
    for s in city.stations.iter().filter(|s| keep(s)) {
        let mut pool = Pool::default();
        for day in days.clone() {
            let mut one = Pool::default();
            let expected = if ran(day) {
                expected(s.cadence_s, day, now)
            } else {
                None
            };
            one.add(counts(day, &s.id), expected);
            pool.merge(&one);
        }
        if pool.stations == 0 {
            continue;
        }
        // A station counts once however many days.
        pool.stations = 1;
        pool.medians = median_of(&pool.medians).into_iter().collect();
        stations.push(pool.index(&s.id, &s.name, "station"));
        if let Some(w) = &s.ward {
            communes.entry(w.as_str()).or_default().merge(&pool);
        }
        for sector in &s.sectors {
            sectors.entry(sector.as_str()).or_default().merge(&pool);
        }
        city_pool.merge(&pool);
    }
    let mut out = vec![city_pool.index("city", "Thành phố", "city")];
    for (id, pool) in &communes {
        let name = city.zones.get(id).map_or(*id, |z| z.name.as_str());
        out.push(pool.index(id, name, "commune"));
    }
    let names = city.sectors.names();
    for (id, pool) in &sectors {
        let name = names.get(id).map_or(*id, |n| n.0);
        out.push(pool.index(id, name, "sector"));
    }
    out.extend(stations);
    out
}

fn median_of(xs: &[i64]) -> Option<i64> {
    let mut v = xs.to_vec();
    v.sort_unstable();
    (!v.is_empty()).then(|| v[(v.len() - 1) / 2])
}
