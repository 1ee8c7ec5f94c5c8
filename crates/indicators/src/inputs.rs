//! What indicators are computed from besides alerts: per-station readings as they arrive
//! (latest value, sums over the current hour, day and month), the hourly means VN_AQI
//! needs, and values pushed by other systems (`kind: indicator`).
//!
//! Invariants: memory is bounded by stations × metrics (each keeps one accumulator per
//! period, replaced when the period turns, and at most 13 clock hours of air means);
//! only readings of status 00 count (a calibrating station's values are not measurements);
//! pushed values are keyed by indicator and zone (none: the whole city), and kept only for
//! the set's `from: pushed` indicators (a feed sending date-stamped names cannot grow it).

use std::collections::{BTreeMap, HashMap};

use watchfloor_engine::aggregate::nowcast;
use watchfloor_model::vn_aqi::{sub_index, Pollutant};
use watchfloor_model::{local_day, month_of, Event, Kind, StationStatus};

pub(crate) const HOUR: i64 = 3_600_000;

const AIR_METRICS: [&str; 6] = ["pm25", "pm10", "no2", "so2", "co", "o3"];

/// One period's running figures of one station's metric.
#[derive(Debug, Clone, Copy)]
struct Acc {
    period: i64,
    sum: f64,
    n: u32,
}

impl Acc {
    fn add(&mut self, period: i64, v: f64) {
        if period < self.period {
            // A late reading of the period before: the current one is not reset for it.
            return;
        }
        if self.period != period {
            *self = Acc {
                period,
                sum: 0.0,
                n: 0,
            };
        }
        self.sum += v;
        self.n += 1;
    }

    fn mean(&self, period: i64) -> Option<f64> {
        (self.period == period && self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

/// The hour, local day and local month numbers of an epoch-ms instant.
pub(crate) fn periods(ts: i64) -> [i64; 3] {
    let day = local_day(ts);
    [ts.div_euclid(HOUR), day, month_of(day)]
}

/// Per pollutant, clock hour → (sum, count).
type HourlyByMetric = HashMap<&'static str, BTreeMap<i64, (f64, u32)>>;

/// The readings indicators are computed from.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub(crate) last_seen: HashMap<String, i64>,
    latest: HashMap<String, BTreeMap<String, (i64, f64)>>,
    accs: HashMap<(String, String), [Acc; 3]>,
    air: HashMap<String, HourlyByMetric>,
    pub(crate) pushed: HashMap<(String, Option<String>), (i64, f64)>,
    /// The ids of the set's `from: pushed` indicators: other pushed names are not kept.
    pub(crate) pushed_ids: std::collections::HashSet<String>,
}

impl Inputs {
    /// Keeps pushed values of these indicator ids only (the set's `from: pushed` ones).
    pub fn set_pushed_ids(&mut self, ids: impl IntoIterator<Item = String>) {
        self.pushed_ids = ids.into_iter().collect();
        let keep = &self.pushed_ids;
        self.pushed.retain(|(id, _), _| keep.contains(id));
    }

    /// Takes one accepted event.
    pub fn observe(&mut self, event: &Event) {
        let seen = self
            .last_seen
            .entry(event.source.clone())
            .or_insert(event.ts);
        *seen = (*seen).max(event.ts);
        if event.kind == Kind::Indicator {
            let known = &self.pushed_ids;
            for (id, v) in event.values.iter().filter(|(id, _)| known.contains(id)) {
                let slot = self
                    .pushed
                    .entry((id.clone(), event.zone.clone()))
                    .or_insert((event.ts, *v));
                if event.ts >= slot.0 {
                    *slot = (event.ts, *v);
                }
            }
            return;
        }
        if event.status != StationStatus::Normal {
            return;
        }
        let keys = periods(event.ts);
        let latest = self.latest.entry(event.source.clone()).or_default();
        for (metric, v) in &event.values {
            let slot = latest.entry(metric.clone()).or_insert((event.ts, *v));
            if event.ts >= slot.0 {
                *slot = (event.ts, *v);
            }
            let accs = self
                .accs
                .entry((event.source.clone(), metric.clone()))
                .or_insert(
                    [Acc {
                        period: i64::MIN,
                        sum: 0.0,
                        n: 0,
                    }; 3],
                );
            for (acc, key) in accs.iter_mut().zip(keys) {
                acc.add(key, *v);
            }
        }
        if event.kind == Kind::Air {
            let hour = event.ts.div_euclid(HOUR);
            let station = self.air.entry(event.source.clone()).or_default();
            for metric in AIR_METRICS {
                if let Some(v) = event.value(metric) {
                    let hours = station.entry(metric).or_default();
                    let slot = hours.entry(hour).or_insert((0.0, 0));
                    slot.0 += v;
                    slot.1 += 1;
                    while hours.len() > 13 {
                        hours.pop_first();
                    }
                }
            }
        }
    }

    /// The latest value of a station's metric, if measured within the last hour.
    pub(crate) fn latest(&self, station: &str, metric: &str, now: i64) -> Option<f64> {
        let (ts, v) = self.latest.get(station)?.get(metric)?;
        (now - ts <= HOUR).then_some(*v)
    }

    /// The mean of a station's metric over the current hour (0), day (1) or month (2).
    pub(crate) fn mean(&self, station: &str, metric: &str, which: usize, now: i64) -> Option<f64> {
        let accs = self.accs.get(&(station.to_string(), metric.to_string()))?;
        accs[which].mean(periods(now)[which])
    }

    /// The current hourly VN_AQI of an air station (PM by NowCast over 12 hours).
    pub(crate) fn station_aqi(&self, id: &str, now: i64) -> Option<f64> {
        let hours = self.air.get(id)?;
        let latest = hours.values().filter_map(|h| h.keys().next_back()).max()?;
        // A silent station's last AQI is not current.
        if *latest < now.div_euclid(HOUR) - 1 {
            return None;
        }
        let mean = |metric: &str, hour: i64| {
            hours
                .get(metric)?
                .get(&hour)
                .map(|(s, n)| s / f64::from(*n))
        };
        let pm = |metric: &str| {
            let series: Vec<Option<f64>> = (0..12).map(|i| mean(metric, latest - i)).collect();
            nowcast(&series)
        };
        let indices = [
            sub_index(Pollutant::Pm25, pm("pm25")),
            sub_index(Pollutant::Pm10, pm("pm10")),
            mean("no2", *latest).map_or(f64::NAN, |c| sub_index(Pollutant::No2, c)),
            mean("so2", *latest).map_or(f64::NAN, |c| sub_index(Pollutant::So2, c)),
            mean("co", *latest).map_or(f64::NAN, |c| sub_index(Pollutant::Co, c)),
            mean("o3", *latest).map_or(f64::NAN, |c| sub_index(Pollutant::O3OneHour, c)),
        ];
        let aqi = indices.into_iter().fold(f64::NAN, f64::max);
        aqi.is_finite().then_some(aqi)
    }

    /// The latest pushed value of indicator `id` for `zone` (`None`: the whole city).
    pub(crate) fn pushed(&self, id: &str, zone: Option<&str>) -> Option<f64> {
        self.pushed
            .get(&(id.to_string(), zone.map(str::to_string)))
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_local_hours_days_and_months() {
        // 2026-11-30T17:30:00Z is 2026-12-01 00:30 in Vietnam: December, a new day.
        let ts = 1_796_059_800_000;
        let [hour, day, month] = periods(ts);
        assert_eq!(hour, ts / HOUR);
        assert_eq!(month, 2026 * 12 + 11, "December 2026");
        assert_eq!(
            periods(ts - HOUR)[1],
            day - 1,
            "an hour earlier is still 30 November there"
        );
        assert_eq!(periods(ts - HOUR)[2], 2026 * 12 + 10);
    }
}
