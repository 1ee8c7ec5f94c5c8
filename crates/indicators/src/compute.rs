//! Indicator values per area and sector view, with a trend and a short history.
//!
//! A *view* is a set of sectors an account sees (`*`: every sector): each indicator is
//! computed for every zone (the city, each commune, each legacy district) and every view
//! it belongs to, from the stations, alerts and readings of that zone and those sectors
//! only. An indicator of one sector appears in the views that include it; a cross-sector
//! one (open alerts, time to acknowledge) in every view, counting that view's things.
//!
//! Invariants: history is one point a minute, two hours, per (indicator, zone, view);
//! [`Computer::replace_set`] keeps the history of every indicator whose definition did not
//! change. A value that cannot be computed (no stations, a division by zero) is `None`,
//! never a made-up zero.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use watchfloor_city::{City, Station, ZoneLevel};
use watchfloor_engine::expr::Scope as ExprScope;
use watchfloor_engine::LookupTables;
use watchfloor_model::vn_aqi::category;
use watchfloor_model::{Kind, Severity};

use crate::inputs::{periods, Inputs, HOUR};
use crate::spec::{Indicator, IndicatorSet, Period, Source};

/// Points of history kept per (indicator, zone, view): one a minute, two hours.
const HISTORY: usize = 120;

/// What the indicators need to know of one alert.
#[derive(Debug, Clone)]
pub struct AlertFact<'a> {
    /// Rule id.
    pub rule: &'a str,
    /// `labels.pack`.
    pub pack: Option<&'a str>,
    /// Key (a station id for station alerts).
    pub key: &'a str,
    /// Its commune/ward.
    pub ward: Option<&'a str>,
    /// Its legacy district.
    pub district: Option<&'a str>,
    /// Its sectors.
    pub sectors: &'a [String],
    /// Current severity.
    pub severity: Severity,
    /// When it fired, epoch ms.
    pub fired_at: i64,
    /// When acknowledged.
    pub ack_at: Option<i64>,
    /// When resolved (`None`: open).
    pub resolved_at: Option<i64>,
}

/// A sector view: its name and sectors (`None`: every sector).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// `*`, or sector ids joined by `+`.
    pub name: String,
    /// The sectors.
    pub sectors: Option<Vec<String>>,
}

impl View {
    fn sees(&self, sectors: &[String]) -> bool {
        self.sectors
            .as_ref()
            .is_none_or(|mine| sectors.iter().any(|s| mine.contains(s)))
    }

    fn includes(&self, sector: &str) -> bool {
        self.sectors
            .as_ref()
            .is_none_or(|mine| mine.iter().any(|s| s == sector))
    }
}

/// One indicator's value in a zone and view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorValue {
    /// Indicator id.
    pub id: String,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name.
    pub name_en: String,
    /// Unit.
    pub unit: String,
    /// Its sector (`None`: cross-sector).
    pub sector: Option<String>,
    /// Its period.
    pub period: Period,
    /// Target.
    pub target: Option<f64>,
    /// The value (`None`: nothing to compute it from).
    pub value: Option<f64>,
    /// `green`, `amber` or `red` (when it has bands and a value).
    pub band: Option<&'static str>,
    /// `up`, `down` or `flat` against an hour ago (or the oldest point kept).
    pub trend: Option<&'static str>,
    /// A category name for the value (VN_AQI), Vietnamese.
    pub label: Option<&'static str>,
    /// The category's colour.
    pub colour: Option<&'static str>,
}

/// The indicators of one zone in one view.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneRow {
    /// `city`, a commune id or a legacy district id.
    pub zone: String,
    /// `city`, `commune` or `district`.
    pub level: &'static str,
    /// Vietnamese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// The commune (commune rows), for scopes.
    pub ward: Option<String>,
    /// The legacy district (commune and district rows), for scopes.
    pub district: Option<String>,
    /// The sector view.
    pub view: String,
    /// When computed, epoch ms.
    pub ts: i64,
    /// The values.
    pub indicators: Vec<IndicatorValue>,
}

struct ZoneDef {
    id: String,
    level: &'static str,
    name: String,
    name_en: String,
    ward: Option<String>,
    district: Option<String>,
}

impl ZoneDef {
    fn contains(&self, ward: Option<&str>, district: Option<&str>) -> bool {
        match self.level {
            "city" => true,
            "district" => district == Some(self.id.as_str()),
            _ => ward == Some(self.id.as_str()),
        }
    }
}

fn zones(city: &City) -> Vec<ZoneDef> {
    let mut out = vec![ZoneDef {
        id: "city".into(),
        level: "city",
        name: "Thành phố".into(),
        name_en: "City".into(),
        ward: None,
        district: None,
    }];
    // Legacy districts named by communes but without a polygon of their own get a row too
    // (their accounts' figures), after the zones of the file.
    let mut named: Vec<String> = Vec::new();
    for z in city.zones.communes() {
        if let Some(d) = &z.district {
            if !named.contains(d) && city.zones.get(d).is_none() {
                named.push(d.clone());
            }
        }
    }
    for z in &city.zones.zones {
        out.push(match z.level {
            ZoneLevel::Ward => ZoneDef {
                id: z.id.clone(),
                level: "commune",
                name: z.name.clone(),
                name_en: z.name_en.clone(),
                ward: Some(z.id.clone()),
                district: z.district.clone(),
            },
            ZoneLevel::District => ZoneDef {
                id: z.id.clone(),
                level: "district",
                name: z.name.clone(),
                name_en: z.name_en.clone(),
                ward: None,
                district: Some(z.id.clone()),
            },
        });
    }
    for d in named {
        out.push(ZoneDef {
            name: d.clone(),
            name_en: d.clone(),
            ward: None,
            district: Some(d.clone()),
            id: d,
            level: "district",
        });
    }
    out
}

/// The start of the indicator's period at `now` (for alert counts), epoch ms.
fn period_start(period: Period, now: i64) -> i64 {
    let [hour, day, month] = periods(now);
    let day_start = watchfloor_model::local_day_start(day);
    match period {
        Period::Hourly => hour * HOUR,
        Period::Live | Period::Daily => day_start,
        Period::Monthly => {
            // Walk back to the first local day of the month.
            let mut start = day_start;
            while periods(start - 1)[2] == month {
                start -= watchfloor_model::DAY_MS;
            }
            start
        }
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// (indicator, zone, view) → points (epoch ms, value), oldest first.
type History = HashMap<(String, String, String), VecDeque<(i64, Option<f64>)>>;

/// Computes indicator values and keeps their history.
pub struct Computer {
    set: Arc<IndicatorSet>,
    history: History,
}

impl Computer {
    /// A computer for `set`, with no history yet.
    pub fn new(set: Arc<IndicatorSet>) -> Computer {
        Computer {
            set,
            history: HashMap::new(),
        }
    }

    /// The current set.
    pub fn set(&self) -> &Arc<IndicatorSet> {
        &self.set
    }

    /// Swaps in a reloaded set: the history of indicators whose definition is unchanged is
    /// kept; that of changed or removed ones is dropped. Returns the ids kept and reset.
    pub fn replace_set(&mut self, set: Arc<IndicatorSet>) -> (Vec<String>, Vec<String>) {
        let (mut kept, mut reset) = (Vec::new(), Vec::new());
        for new in &set.indicators {
            match self.set.get(&new.id) {
                Some(old) if old.fingerprint == new.fingerprint => kept.push(new.id.clone()),
                _ => reset.push(new.id.clone()),
            }
        }
        self.history
            .retain(|(id, _, _), _| kept.iter().any(|k| k == id));
        self.set = set;
        (kept, reset)
    }

    /// The history of an indicator in a zone and view, oldest first.
    pub fn history(&self, id: &str, zone: &str, view: &str) -> Vec<(i64, Option<f64>)> {
        self.history
            .get(&(id.to_string(), zone.to_string(), view.to_string()))
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every zone's indicators in every view, at `now`.
    pub fn compute(
        &mut self,
        city: &City,
        inputs: &Inputs,
        alerts: &[AlertFact],
        views: &[View],
        now: i64,
    ) -> Vec<ZoneRow> {
        let set = self.set.clone();
        let mut rows = Vec::new();
        for zone in zones(city) {
            let stations: Vec<&Station> = city
                .stations
                .iter()
                .filter(|s| zone.contains(s.ward.as_deref(), s.district.as_deref()))
                .collect();
            let zone_alerts: Vec<&AlertFact> = alerts
                .iter()
                .filter(|a| zone.contains(a.ward, a.district))
                .collect();
            for view in views {
                let mut values = Vec::new();
                for ind in set.indicators.iter().filter(|i| {
                    i.scopes.iter().any(|l| l == zone.level)
                        && i.sector.as_deref().is_none_or(|s| view.includes(s))
                }) {
                    let own = |sectors: &[String]| {
                        view.sees(sectors)
                            && ind.sector.as_ref().is_none_or(|s| sectors.contains(s))
                    };
                    let value =
                        evaluate(ind, &zone, city, inputs, &stations, &zone_alerts, &own, now);
                    values.push(self.value_of(ind, &zone.id, &view.name, value, now));
                }
                rows.push(ZoneRow {
                    zone: zone.id.clone(),
                    level: zone.level,
                    name: zone.name.clone(),
                    name_en: zone.name_en.clone(),
                    ward: zone.ward.clone(),
                    district: zone.district.clone(),
                    view: view.name.clone(),
                    ts: now,
                    indicators: values,
                });
            }
        }
        rows
    }

    fn value_of(
        &mut self,
        ind: &Indicator,
        zone: &str,
        view: &str,
        value: Option<f64>,
        now: i64,
    ) -> IndicatorValue {
        let history = self
            .history
            .entry((ind.id.clone(), zone.to_string(), view.to_string()))
            .or_default();
        let reference = history
            .iter()
            .find(|(ts, _)| now - ts <= HOUR)
            .filter(|(ts, _)| now - ts >= 10 * 60_000)
            .and_then(|(_, v)| *v);
        let trend = value.zip(reference).map(|(now_v, then)| {
            let tolerance = 0.01 * then.abs().max(1.0);
            if now_v > then + tolerance {
                "up"
            } else if now_v < then - tolerance {
                "down"
            } else {
                "flat"
            }
        });
        if history.back().is_none_or(|(ts, _)| now - ts >= 60_000) {
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back((now, value));
        }
        let (label, colour) = match (&ind.source, value) {
            (Source::Stream { metric, .. }, Some(v)) if metric == "vn_aqi" => {
                category(v).map_or((None, None), |c| (Some(c.vi), Some(c.colour)))
            }
            _ => (None, None),
        };
        IndicatorValue {
            id: ind.id.clone(),
            name_vi: ind.name_vi.clone(),
            name_en: ind.name_en.clone(),
            unit: ind.unit.clone(),
            sector: ind.sector.clone(),
            period: ind.period,
            target: ind.target,
            value,
            band: value.zip(ind.bands).map(|(v, b)| b.of(v)),
            trend,
            label,
            colour,
        }
    }
}

/// The variables of `ind`'s source in a zone and view, then its value expression.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    ind: &Indicator,
    zone: &ZoneDef,
    city: &City,
    inputs: &Inputs,
    stations: &[&Station],
    alerts: &[&AlertFact],
    own: &dyn Fn(&[String]) -> bool,
    now: i64,
) -> Option<f64> {
    let vars: Vec<f64> = match &ind.source {
        Source::Alerts {
            packs,
            rules,
            min_severity,
        } => {
            let from = period_start(ind.period, now);
            let picked: Vec<&&AlertFact> = alerts
                .iter()
                .filter(|a| own(a.sectors))
                .filter(|a| {
                    packs.is_empty() || a.pack.is_some_and(|p| packs.iter().any(|x| x == p))
                })
                .filter(|a| rules.is_empty() || rules.iter().any(|r| r == a.rule))
                .filter(|a| min_severity.is_none_or(|m| a.severity >= m))
                .collect();
            let open = |sev: Option<Severity>| {
                picked
                    .iter()
                    .filter(|a| a.resolved_at.is_none() && sev.is_none_or(|s| a.severity == s))
                    .count() as f64
            };
            let fired: Vec<&&&AlertFact> = picked.iter().filter(|a| a.fired_at >= from).collect();
            let ack: Vec<f64> = fired
                .iter()
                .filter_map(|a| a.ack_at.map(|t| (t - a.fired_at).max(0) as f64 / 1000.0))
                .collect();
            let res: Vec<f64> = fired
                .iter()
                .filter_map(|a| {
                    a.resolved_at
                        .map(|t| (t - a.fired_at).max(0) as f64 / 1000.0)
                })
                .collect();
            vec![
                open(None),
                open(Some(Severity::Critical)),
                open(Some(Severity::Major)),
                open(Some(Severity::Minor)),
                open(Some(Severity::Info)),
                fired.len() as f64,
                ack.len() as f64,
                res.len() as f64,
                mean(&ack).unwrap_or(f64::NAN),
                mean(&res).unwrap_or(f64::NAN),
            ]
        }
        Source::Stations { kinds, packs } => {
            let from = match ind.period {
                Period::Live => now - HOUR,
                p => period_start(p, now),
            };
            let chosen: Vec<&&Station> = stations
                .iter()
                .filter(|s| own(&s.sectors))
                .filter(|s| {
                    if kinds.is_empty() {
                        !matches!(s.kind, Kind::Camera | Kind::Indicator)
                    } else {
                        kinds.contains(&s.kind)
                    }
                })
                .collect();
            let reporting = chosen
                .iter()
                .filter(|s| {
                    let cadence = i64::from(s.cadence_s.unwrap_or(300)) * 1000;
                    inputs
                        .last_seen
                        .get(&s.id)
                        .is_some_and(|t| now - t <= 3 * cadence)
                })
                .count() as f64;
            // One pass over the alerts (a storm holds hundreds of thousands), then a lookup
            // per station.
            let alerting_keys: std::collections::HashSet<&str> = alerts
                .iter()
                .filter(|a| own(a.sectors))
                .filter(|a| {
                    (packs.is_empty() || a.pack.is_some_and(|p| packs.iter().any(|x| x == p)))
                        && a.resolved_at.is_none_or(|r| r > from)
                })
                .map(|a| a.key)
                .collect();
            let alerting = chosen
                .iter()
                .filter(|s| alerting_keys.contains(s.id.as_str()))
                .count() as f64;
            let n = chosen.len() as f64;
            vec![n, reporting, n - reporting, alerting, n - alerting]
        }
        Source::Stream { kinds, metric } => {
            let values: Vec<f64> = stations
                .iter()
                .filter(|s| own(&s.sectors))
                .filter(|s| kinds.is_empty() || kinds.contains(&s.kind))
                .filter_map(|s| match (metric.as_str(), ind.period) {
                    ("vn_aqi", _) => (s.kind == Kind::Air)
                        .then(|| inputs.station_aqi(&s.id, now))
                        .flatten(),
                    ("congestion", _) => {
                        let speed = inputs.latest(&s.id, "speed", now)?;
                        let free = s.free_flow_kmh?;
                        Some((1.0 - speed / free).clamp(0.0, 1.0) * 100.0)
                    }
                    (m, Period::Live) => inputs.latest(&s.id, m, now),
                    (m, Period::Hourly) => inputs.mean(&s.id, m, 0, now),
                    (m, Period::Daily) => inputs.mean(&s.id, m, 1, now),
                    (m, Period::Monthly) => inputs.mean(&s.id, m, 2, now),
                })
                .collect();
            if values.is_empty() {
                return None;
            }
            vec![
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                values.iter().copied().fold(f64::INFINITY, f64::min),
                mean(&values).unwrap_or(f64::NAN),
                values.iter().sum(),
                values.len() as f64,
            ]
        }
        Source::Pushed => {
            let v = match zone.level {
                "commune" => inputs.pushed(&ind.id, Some(&zone.id)),
                _ => inputs
                    .pushed(&ind.id, (zone.level != "city").then_some(zone.id.as_str()))
                    .or_else(|| {
                        // The city's (or a district's): the sum of its communes' pushed values.
                        let parts: Vec<f64> = city
                            .zones
                            .communes()
                            .filter(|c| zone.contains(Some(&c.id), c.district.as_deref()))
                            .filter_map(|c| inputs.pushed(&ind.id, Some(&c.id)))
                            .collect();
                        (!parts.is_empty()).then(|| parts.iter().sum())
                    }),
            };
            vec![v?]
        }
    };
    let key: Arc<str> = Arc::from(zone.id.as_str());
    let lookups = LookupTables::new();
    let v = ind.value.number(&ExprScope {
        aggregates: &vars,
        key: &key,
        lookups: &lookups,
    });
    v.is_finite().then_some(v)
}

/// Per indicator id, its value in each zone of one view: `zone → value`.
pub fn by_indicator(
    rows: &[ZoneRow],
    view: &str,
) -> BTreeMap<String, BTreeMap<String, Option<f64>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.view == view) {
        for v in &row.indicators {
            out.entry(v.id.clone())
                .or_default()
                .insert(row.zone.clone(), v.value);
        }
    }
    out
}
