//! Live KPIs per ward, district and the city, computed from the stream (never in the
//! browser): active alerts by severity, stations reporting on time, discharge compliance,
//! current VN_AQI, congestion index, and mean time to acknowledge and to resolve today.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use watchfloor_city::{City, ZoneLevel};
use watchfloor_engine::aggregate::nowcast;
use watchfloor_model::vn_aqi::{category, sub_index, Pollutant};
use watchfloor_model::{Event, Kind, Severity};

use crate::hub::AlertRecord;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const UTC7: i64 = 7 * HOUR;
/// Points of KPI history kept per zone (one per minute: two hours).
const HISTORY: usize = 120;

/// The figures of one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Figures {
    /// Open alerts (firing or acknowledged) by severity.
    pub active_alerts: BTreeMap<&'static str, u32>,
    /// Stations (cameras aside) whose last reading is within three intervals, %.
    pub stations_on_time_pct: Option<f64>,
    /// Discharge stations without a discharge alert in the last hour, %.
    pub discharge_compliance_pct: Option<f64>,
    /// Highest current hourly VN_AQI of the zone's air stations.
    pub aqi: Option<f64>,
    /// Its category (Vietnamese).
    pub aqi_category: Option<&'static str>,
    /// Its category colour.
    pub aqi_colour: Option<&'static str>,
    /// Mean of (1 − speed / free-flow speed) over the zone's traffic sensors, 0–100.
    pub congestion_index: Option<f64>,
    /// Mean time to acknowledge, alerts fired today (local day), seconds.
    pub mtta_s: Option<f64>,
    /// Mean time to resolve, alerts fired today, seconds.
    pub mttr_s: Option<f64>,
}

/// One point of a zone's KPI history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiPoint {
    /// Epoch ms.
    pub ts: i64,
    /// Open alerts.
    pub active: u32,
    /// Stations on time, %.
    pub on_time: Option<f64>,
    /// VN_AQI.
    pub aqi: Option<f64>,
    /// Congestion index.
    pub congestion: Option<f64>,
}

/// The KPIs of one zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneKpis {
    /// `city`, a district id or a ward id.
    pub zone: String,
    /// `city`, `district` or `ward`.
    pub level: &'static str,
    /// Display name.
    pub name: String,
    /// The ward (ward zones), for scopes.
    pub ward: Option<String>,
    /// The district (ward and district zones), for scopes.
    pub district: Option<String>,
    /// When computed, epoch ms.
    pub ts: i64,
    /// The figures.
    pub figures: Figures,
    /// Recent history (in snapshots and REST answers, not in deltas).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<KpiPoint>,
}

/// What the KPIs are computed from, besides the alerts: per-station readings.
#[derive(Debug, Default)]
pub struct KpiInputs {
    last_seen: HashMap<String, i64>,
    speed: HashMap<String, f64>,
    /// Air stations: per pollutant, clock-hour (sum, count).
    air: HashMap<String, HourlyByMetric>,
    history: HashMap<String, VecDeque<KpiPoint>>,
}

/// Per pollutant, clock hour → (sum, count).
type HourlyByMetric = HashMap<&'static str, BTreeMap<i64, (f64, u32)>>;

/// A zone to compute: id, level, name, ward, district.
type ZoneRow = (String, &'static str, String, Option<String>, Option<String>);

const AIR_METRICS: [&str; 6] = ["pm25", "pm10", "no2", "so2", "co", "o3"];

impl KpiInputs {
    /// Takes one accepted event.
    pub fn observe(&mut self, event: &Event) {
        let seen = self
            .last_seen
            .entry(event.source.clone())
            .or_insert(event.ts);
        *seen = (*seen).max(event.ts);
        match event.kind {
            Kind::Traffic => {
                if let Some(v) = event.value("speed") {
                    self.speed.insert(event.source.clone(), v);
                }
            }
            Kind::Air => {
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
            _ => {}
        }
    }

    /// The current hourly VN_AQI of an air station.
    fn station_aqi(&self, id: &str) -> Option<f64> {
        let hours = self.air.get(id)?;
        let latest = hours.values().filter_map(|h| h.keys().next_back()).max()?;
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

    /// KPIs of the city, every district and every ward, at `now`.
    pub fn compute(&mut self, city: &City, alerts: &[AlertRecord], now: i64) -> Vec<ZoneKpis> {
        let today = (now + UTC7).div_euclid(DAY) * DAY - UTC7;
        let mut zones: Vec<ZoneRow> =
            vec![("city".into(), "city", "Thành phố / City".into(), None, None)];
        for z in &city.zones.zones {
            match z.level {
                ZoneLevel::District => zones.push((
                    z.id.clone(),
                    "district",
                    z.name.clone(),
                    None,
                    Some(z.id.clone()),
                )),
                ZoneLevel::Ward => zones.push((
                    z.id.clone(),
                    "ward",
                    z.name.clone(),
                    Some(z.id.clone()),
                    z.district.clone(),
                )),
            }
        }
        let mut out = Vec::with_capacity(zones.len());
        for (zone, level, name, ward, district) in zones {
            let inside = |w: &Option<String>, d: &Option<String>| match level {
                "city" => true,
                "district" => d.as_deref() == Some(zone.as_str()),
                _ => w.as_deref() == Some(zone.as_str()),
            };
            let stations: Vec<_> = city
                .stations
                .iter()
                .filter(|s| inside(&s.ward, &s.district))
                .collect();
            let zone_alerts: Vec<&AlertRecord> = alerts
                .iter()
                .filter(|a| inside(&a.ward, &a.district))
                .collect();
            let mut f = Figures::default();
            for sev in [
                Severity::Critical,
                Severity::Major,
                Severity::Minor,
                Severity::Info,
            ] {
                f.active_alerts.insert(sev.as_str(), 0);
            }
            for a in zone_alerts.iter().filter(|a| a.state != "resolved") {
                *f.active_alerts.entry(a.severity.as_str()).or_insert(0) += 1;
            }
            let sensors: Vec<_> = stations.iter().filter(|s| s.kind != Kind::Camera).collect();
            if !sensors.is_empty() {
                let on_time = sensors
                    .iter()
                    .filter(|s| {
                        let interval = if s.kind == Kind::Traffic {
                            60_000
                        } else {
                            300_000
                        };
                        self.last_seen
                            .get(&s.id)
                            .is_some_and(|t| now - t <= 3 * interval)
                    })
                    .count();
                f.stations_on_time_pct = Some(100.0 * on_time as f64 / sensors.len() as f64);
            }
            let discharge: Vec<_> = stations
                .iter()
                .filter(|s| s.kind == Kind::Discharge)
                .collect();
            if !discharge.is_empty() {
                let compliant = discharge
                    .iter()
                    .filter(|s| {
                        !zone_alerts.iter().any(|a| {
                            a.key == s.id
                                && a.labels.get("pack").map(String::as_str) == Some("discharge")
                                && a.resolved_at.is_none_or(|r| r > now - HOUR)
                        })
                    })
                    .count();
                f.discharge_compliance_pct =
                    Some(100.0 * compliant as f64 / discharge.len() as f64);
            }
            f.aqi = stations
                .iter()
                .filter(|s| s.kind == Kind::Air)
                .filter_map(|s| self.station_aqi(&s.id))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            if let Some(c) = f.aqi.and_then(category) {
                f.aqi_category = Some(c.vi);
                f.aqi_colour = Some(c.colour);
            }
            let congestion: Vec<f64> = stations
                .iter()
                .filter(|s| s.kind == Kind::Traffic)
                .filter_map(|s| {
                    let speed = self.speed.get(&s.id)?;
                    let free = s.free_flow_kmh?;
                    Some((1.0 - speed / free).clamp(0.0, 1.0) * 100.0)
                })
                .collect();
            if !congestion.is_empty() {
                f.congestion_index = Some(congestion.iter().sum::<f64>() / congestion.len() as f64);
            }
            let fired_today: Vec<&&AlertRecord> =
                zone_alerts.iter().filter(|a| a.fired_at >= today).collect();
            let mean =
                |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
            f.mtta_s = mean(
                fired_today
                    .iter()
                    .filter_map(|a| {
                        a.acknowledged
                            .as_ref()
                            .map(|k| (k.at - a.fired_at).max(0) as f64 / 1000.0)
                    })
                    .collect(),
            );
            f.mttr_s = mean(
                fired_today
                    .iter()
                    .filter_map(|a| {
                        a.resolved_at
                            .map(|r| (r - a.fired_at).max(0) as f64 / 1000.0)
                    })
                    .collect(),
            );
            let history = self.history.entry(zone.clone()).or_default();
            if history.back().is_none_or(|p| now - p.ts >= 60_000) {
                if history.len() == HISTORY {
                    history.pop_front();
                }
                history.push_back(KpiPoint {
                    ts: now,
                    active: f.active_alerts.values().sum(),
                    on_time: f.stations_on_time_pct,
                    aqi: f.aqi,
                    congestion: f.congestion_index,
                });
            }
            out.push(ZoneKpis {
                zone,
                level,
                name,
                ward,
                district,
                ts: now,
                figures: f,
                history: Vec::new(),
            });
        }
        out
    }

    /// The history of a zone.
    pub fn history(&self, zone: &str) -> Vec<KpiPoint> {
        self.history
            .get(zone)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }
}
