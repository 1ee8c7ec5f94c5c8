//! City telemetry simulators: every station of the registry at its real cadence, with
//! plausible daily patterns and scripted incidents, deterministic for a seed and as fast as
//! the consumer takes them (the caller paces them for real time or compression).
//!
//! Cadences: discharge, air and hydrology stations every 5 minutes (Circular 10/2021),
//! traffic sensors every minute, AI cameras when they detect something. Times of day are
//! Vietnam time (UTC+7).

mod rng;
mod script;

use std::f64::consts::PI;

use thiserror::Error;
use watchfloor_city::City;
use watchfloor_model::Kind;

pub use rng::Rng;
pub use script::{demo_script, parse_script, seeded_script, Incident, IncidentKind};

/// Why a simulation cannot start.
#[derive(Debug, Error)]
pub enum SimError {
    /// The incident script is wrong.
    #[error("incident script: {0}")]
    Script(String),
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const UTC7: i64 = 7 * HOUR;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Simulated start, epoch ms.
    pub start_ms: i64,
    /// Simulated span, ms.
    pub duration_ms: i64,
    /// The incidents.
    pub incidents: Vec<Incident>,
    /// Synthetic stations added beyond the registry (ids `SIM-<kind>-<n>`), for scale runs.
    pub extra_stations: usize,
    /// How often a camera may report a detection, ms (default 1 minute; the demo uses
    /// 10 s so incidents show within seconds).
    pub camera_cadence_ms: Option<i64>,
}

/// One simulated message.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    /// Event time, epoch ms.
    pub ts: i64,
    /// Station id.
    pub source: String,
    /// Station kind.
    pub kind: Kind,
    /// The station's ward, if known (for MQTT topics).
    pub ward: Option<String>,
    /// The JSON envelope.
    pub json: String,
    /// The same reading as Circular 10/2021 station-file lines (discharge stations only).
    pub tt10: Option<String>,
}

#[derive(Debug, Clone)]
struct SimStation {
    id: String,
    kind: Kind,
    ward: Option<String>,
    cadence_ms: i64,
    phase_ms: i64,
    rng: Rng,
    cod_max: f64,
    tss_max: f64,
    nh4_max: f64,
    flow_m3h: f64,
    free_flow: f64,
    base: f64,
    frozen: Option<Vec<(&'static str, f64)>>,
    incidents: Vec<Incident>,
}

/// A running simulation: call [`Simulator::next_minute`] until it returns `false`.
pub struct Simulator {
    stations: Vec<SimStation>,
    start_ms: i64,
    end_ms: i64,
    minute: i64,
    /// Cameras (station index) that report congestion because of an accident, with it.
    accident_cameras: Vec<(usize, Incident)>,
    /// Stations that take turns in burst mode (all but cameras).
    burst_turns: Vec<usize>,
}

fn burst_turns(stations: &[SimStation]) -> Vec<usize> {
    let sensors: Vec<usize> = (0..stations.len())
        .filter(|i| stations[*i].kind != Kind::Camera)
        .collect();
    if sensors.is_empty() {
        (0..stations.len()).collect()
    } else {
        sensors
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Local hour of day (0..24, fractional) in Vietnam time.
fn local_hour(ts: i64) -> f64 {
    ((ts + UTC7).rem_euclid(24 * HOUR)) as f64 / HOUR as f64
}

/// 0..1: how much of a rush hour (07–09, 17–19 local) `ts` is in.
fn rush(ts: i64) -> f64 {
    let h = local_hour(ts);
    let bump = |centre: f64| (-(h - centre).powi(2) / 0.8).exp();
    bump(8.0).max(bump(18.0))
}

impl Simulator {
    /// Prepares the stations of `city` (plus synthetic ones) and their incidents.
    pub fn new(city: &City, config: &SimConfig) -> Simulator {
        let mut stations: Vec<SimStation> = city
            .stations
            .iter()
            .map(|s| {
                let mut rng = Rng::for_part(config.seed, &s.id);
                let limit = |m: &str, default: f64| s.limits.get(m).map_or(default, |l| l.max);
                SimStation {
                    id: s.id.clone(),
                    kind: s.kind,
                    ward: s.ward.clone(),
                    cadence_ms: match s.kind {
                        Kind::Traffic => MINUTE,
                        Kind::Camera => config.camera_cadence_ms.unwrap_or(MINUTE).max(1_000),
                        _ => 5 * MINUTE,
                    },
                    // Readings land a little after the minute, each station its own offset.
                    phase_ms: 1_000 + rng.below(50) as i64 * 1_000,
                    cod_max: limit("cod", 150.0),
                    tss_max: limit("tss", 100.0),
                    nh4_max: limit("nh4", 10.0),
                    flow_m3h: 50.0,
                    free_flow: s.free_flow_kmh.unwrap_or(50.0),
                    base: rng.range(0.35, 0.5),
                    frozen: None,
                    incidents: Vec::new(),
                    rng,
                }
            })
            .collect();
        stations.extend((0..config.extra_stations).map(|n| synthetic_station(config.seed, n)));
        let index = |id: &str| stations.iter().position(|s| s.id == id);
        let position = |id: &str| city.station(id).map(|s| s.location());
        let mut accident_cameras = Vec::new();
        let mut derived = Vec::new();
        for incident in &config.incidents {
            match incident.kind {
                // A fire's smoke reaches the nearest air station within 2 km 3 minutes later.
                IncidentKind::Fire => {
                    if let Some(at) = position(&incident.station) {
                        let nearest = city
                            .stations
                            .iter()
                            .filter(|s| s.kind == Kind::Air)
                            .map(|s| (at.distance_m(&s.location()), s))
                            .filter(|(d, _)| *d <= 2_000.0)
                            .min_by(|a, b| a.0.total_cmp(&b.0));
                        if let Some((_, air)) = nearest {
                            derived.push(Incident {
                                kind: IncidentKind::SmokePlume,
                                station: air.id.clone(),
                                at_ms: incident.at_ms + 3 * MINUTE,
                                duration_ms: incident.duration_ms,
                                magnitude: 180.0,
                            });
                        }
                    }
                }
                // The camera nearest the sensor sees the queue.
                IncidentKind::Accident => {
                    if let Some(at) = position(&incident.station) {
                        let nearest = city
                            .stations
                            .iter()
                            .filter(|s| s.kind == Kind::Camera)
                            .min_by(|a, b| {
                                at.distance_m(&a.location())
                                    .total_cmp(&at.distance_m(&b.location()))
                            });
                        if let Some(i) = nearest.and_then(|c| index(&c.id)) {
                            accident_cameras.push((i, incident.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        let placed: Vec<(usize, Incident)> = config
            .incidents
            .iter()
            .chain(&derived)
            .filter_map(|incident| index(&incident.station).map(|i| (i, incident.clone())))
            .collect();
        for (i, incident) in placed {
            stations[i].incidents.push(incident);
        }
        Simulator {
            burst_turns: burst_turns(&stations),
            stations,
            start_ms: config.start_ms,
            end_ms: config.start_ms + config.duration_ms,
            minute: 0,
            accident_cameras,
        }
    }

    /// `stations` synthetic stations (ids `SIM-<kind>-<n>`, no city), for load runs.
    pub fn synthetic(seed: u64, stations: usize, start_ms: i64) -> Simulator {
        let stations: Vec<SimStation> = (0..stations.max(1))
            .map(|n| synthetic_station(seed, n))
            .collect();
        Simulator {
            burst_turns: burst_turns(&stations),
            stations,
            start_ms,
            end_ms: i64::MAX,
            minute: 0,
            accident_cameras: Vec::new(),
        }
    }

    /// Number of stations simulated.
    pub fn station_count(&self) -> usize {
        self.stations.len()
    }

    /// Burst mode: the `n`-th message of a stream at any rate: a reading of station
    /// [`Simulator::burst_station`]`(n)` stamped `ts` (the caller keeps each station's
    /// stamps increasing). Cameras, which only speak when they detect something, take no
    /// turn; a station silenced by an incident sends its last values.
    pub fn burst_record(&mut self, n: u64, ts: i64) -> SimRecord {
        let i = self.burst_station(n);
        let t = ts - self.start_ms;
        let station = &mut self.stations[i];
        station.reading(ts, t, &[]).unwrap_or_else(|| {
            let values = station.frozen.clone().unwrap_or_default();
            station.record(ts, &values, "00")
        })
    }

    /// The station `burst_record(n, _)` reads: the stations other than cameras in turn
    /// (all of them when there are only cameras).
    pub fn burst_station(&self, n: u64) -> usize {
        self.burst_turns[(n % self.burst_turns.len() as u64) as usize]
    }

    /// Appends the messages of the next simulated minute to `out`, in event-time order;
    /// `false` once the span is over.
    pub fn next_minute(&mut self, out: &mut Vec<SimRecord>) -> bool {
        let from = self.start_ms + self.minute * MINUTE;
        if from >= self.end_ms {
            return false;
        }
        let to = (from + MINUTE).min(self.end_ms);
        let first = out.len();
        for i in 0..self.stations.len() {
            let accidents: Vec<Incident> = self
                .accident_cameras
                .iter()
                .filter(|(c, _)| *c == i)
                .map(|(_, inc)| inc.clone())
                .collect();
            let station = &mut self.stations[i];
            // The first reading at or after `from`.
            let offset = (from - self.start_ms - station.phase_ms).rem_euclid(station.cadence_ms);
            let mut ts = if offset == 0 {
                from
            } else {
                from + station.cadence_ms - offset
            };
            while ts < to {
                let t = ts - self.start_ms;
                if let Some(record) = station.reading(ts, t, &accidents) {
                    if station
                        .active(IncidentKind::DuplicateTimestamps, t)
                        .is_some()
                    {
                        out.push(record.clone());
                    }
                    out.push(record);
                }
                ts += station.cadence_ms;
            }
        }
        out[first..].sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.source.cmp(&b.source)));
        self.minute += 1;
        true
    }
}

/// A synthetic station: traffic, air, discharge and hydrology in turn.
fn synthetic_station(seed: u64, n: usize) -> SimStation {
    let kind = [Kind::Traffic, Kind::Air, Kind::Discharge, Kind::WaterLevel][n % 4];
    let id = format!("SIM-{}-{n:05}", kind.as_str());
    let mut rng = Rng::for_part(seed, &id);
    SimStation {
        cadence_ms: if kind == Kind::Traffic {
            MINUTE
        } else {
            5 * MINUTE
        },
        phase_ms: rng.below(60_000) as i64,
        base: rng.range(0.35, 0.5),
        id,
        kind,
        ward: None,
        cod_max: 150.0,
        tss_max: 100.0,
        nh4_max: 10.0,
        flow_m3h: 50.0,
        free_flow: 50.0,
        frozen: None,
        incidents: Vec::new(),
        rng,
    }
}

fn envelope(source: &str, kind: Kind, ts: i64, values: &[(&str, f64)], status: &str) -> String {
    let mut json = format!(
        r#"{{"source":"{source}","kind":"{}","ts":{ts},"values":{{"#,
        kind.as_str()
    );
    for (i, (k, v)) in values.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(r#""{k}":{v}"#));
    }
    json.push('}');
    if status != "00" {
        json.push_str(&format!(r#","status":"{status}""#));
    }
    json.push('}');
    json
}

fn tt10_lines(ts: i64, values: &[(&str, f64)], status: &str) -> String {
    let stamp = watchfloor_model::format_rfc3339(ts + UTC7);
    // 2026-11-27T10:05:00.000Z -> 20261127100500 (local time, as station files carry it).
    let digits: String = stamp
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let mut out = String::new();
    for (k, v) in values {
        let (name, unit) = match *k {
            "cod" => ("COD", "mg/L"),
            "tss" => ("TSS", "mg/L"),
            "nh4" => ("NH4", "mg/L"),
            "ph" => ("pH", "-"),
            "temperature" => ("Temp", "°C"),
            "flow" => ("Flow", "m3/h"),
            other => (other, ""),
        };
        out.push_str(&format!("{name}\t{v}\t{unit}\t{digits}\t{status}\n"));
    }
    out
}

impl SimStation {
    fn active(&self, kind: IncidentKind, t: i64) -> Option<&Incident> {
        self.incidents
            .iter()
            .find(|i| i.kind == kind && i.active(t))
    }

    fn record(&self, ts: i64, values: &[(&'static str, f64)], status: &str) -> SimRecord {
        SimRecord {
            ts,
            source: self.id.clone(),
            kind: self.kind,
            ward: self.ward.clone(),
            json: envelope(&self.id, self.kind, ts, values, status),
            tt10: (self.kind == Kind::Discharge).then(|| tt10_lines(ts, values, status)),
        }
    }

    fn reading(&mut self, ts: i64, t: i64, accidents: &[Incident]) -> Option<SimRecord> {
        if self.active(IncidentKind::Offline, t).is_some() {
            return None;
        }
        if self.kind == Kind::Camera {
            return self.camera(ts, t, accidents);
        }
        let stuck = self.active(IncidentKind::Stuck, t).is_some();
        if stuck {
            if let Some(values) = &self.frozen {
                let values = values.clone();
                return Some(self.record(ts, &values, "00"));
            }
        }
        let (values, status) = match self.kind {
            Kind::Discharge => self.discharge(ts, t),
            Kind::Air => (self.air(ts, t), "00"),
            Kind::WaterLevel => (self.water_level(ts, t), "00"),
            Kind::Traffic => (self.traffic(ts, t), "00"),
            _ => return None,
        };
        self.frozen = (status == "00").then(|| values.clone());
        Some(self.record(ts, &values, status))
    }

    fn discharge(&mut self, ts: i64, t: i64) -> (Vec<(&'static str, f64)>, &'static str) {
        let h = local_hour(ts);
        // Plants work harder by day: flow and load peak mid-afternoon.
        let day = 0.5 + 0.5 * ((h - 9.0) / 24.0 * 2.0 * PI).sin().max(-0.6);
        let noise = |r: &mut Rng, spread: f64| 1.0 + r.range(-spread, spread);
        let r = &mut self.rng;
        let mut cod = self.cod_max * (self.base + 0.1 * day) * noise(r, 0.05);
        let mut tss = self.tss_max * (self.base - 0.05 + 0.1 * day) * noise(r, 0.06);
        let nh4 = self.nh4_max * (0.3 + 0.05 * day) * noise(r, 0.05);
        let mut ph = 7.2 + r.range(-0.25, 0.25);
        let temperature = 29.0 + 1.5 * day + r.range(-0.3, 0.3);
        let flow = self.flow_m3h * (0.6 + 0.6 * day) * noise(r, 0.05);
        let mut status = "00";
        if let Some(i) = self.active(IncidentKind::CodSurge, t) {
            cod = self.cod_max * i.magnitude * noise(&mut self.rng, 0.02);
        }
        if let Some(i) = self.active(IncidentKind::TssSurge, t) {
            tss = self.tss_max * i.magnitude * noise(&mut self.rng, 0.02);
        }
        if let Some(i) = self.active(IncidentKind::PhCrash, t) {
            ph = i.magnitude + self.rng.range(-0.05, 0.05);
        }
        if self.active(IncidentKind::Calibration, t).is_some() {
            status = "01";
            cod = self.cod_max * 3.0;
            ph = 4.0;
        }
        if self.active(IncidentKind::InstrumentError, t).is_some() {
            status = "02";
            cod = 0.0;
            tss = 0.0;
        }
        if self.active(IncidentKind::Impossible, t).is_some() {
            cod = -12.0;
            ph = 15.2;
        }
        (
            vec![
                ("flow", round(flow, 1)),
                ("temperature", round(temperature, 1)),
                ("ph", round(ph, 2)),
                ("tss", round(tss, 1)),
                ("cod", round(cod, 1)),
                ("nh4", round(nh4, 2)),
            ],
            status,
        )
    }

    fn air(&mut self, ts: i64, t: i64) -> Vec<(&'static str, f64)> {
        let rush = rush(ts);
        let h = local_hour(ts);
        let sun = ((h - 6.0) / 12.0 * PI).sin().max(0.0);
        let r = &mut self.rng;
        let mut pm25 = 16.0 + 14.0 * rush + r.range(-2.0, 2.0);
        let mut pm10 = pm25 * 1.6 + r.range(-3.0, 3.0);
        let mut no2 = 35.0 + 35.0 * rush + r.range(-4.0, 4.0);
        let mut so2 = 15.0 + r.range(-3.0, 3.0);
        let co = 800.0 + 900.0 * rush + r.range(-60.0, 60.0);
        let o3 = 30.0 + 50.0 * sun + r.range(-5.0, 5.0);
        if let Some(i) = self.active(IncidentKind::SmokePlume, t) {
            pm25 = i.magnitude * (1.0 + self.rng.range(-0.05, 0.05));
            pm10 = pm25 * 1.3;
        }
        if let Some(i) = self.active(IncidentKind::IndustrialEmission, t) {
            so2 = i.magnitude * (1.0 + self.rng.range(-0.03, 0.03));
            no2 += 60.0;
            pm10 += 40.0;
        }
        vec![
            ("pm25", round(pm25, 1)),
            ("pm10", round(pm10, 1)),
            ("no2", round(no2, 1)),
            ("so2", round(so2, 1)),
            ("co", round(co, 0)),
            ("o3", round(o3, 1)),
        ]
    }

    fn water_level(&mut self, ts: i64, t: i64) -> Vec<(&'static str, f64)> {
        // Semi-diurnal tide of the Hậu river at Cần Thơ: two highs a day (period 12.42 h),
        // highs about 1.40 m, below alarm level I (1.80 m).
        let tide = 1.0 + 0.4 * ((ts as f64 / HOUR as f64) / 12.42 * 2.0 * PI).sin();
        let mut level = tide + self.rng.range(-0.01, 0.01);
        if let Some(i) = self.active(IncidentKind::FloodWave, t) {
            let progress = (t - i.at_ms) as f64 / i.duration_ms as f64;
            let shape = if progress < 0.4 {
                progress / 0.4
            } else if progress < 0.7 {
                1.0
            } else {
                (1.0 - progress) / 0.3
            };
            level += i.magnitude * shape;
        }
        vec![("water_level", round(level, 3))]
    }

    fn traffic(&mut self, ts: i64, t: i64) -> Vec<(&'static str, f64)> {
        let rush = rush(ts);
        let night = (-(local_hour(ts) - 3.0).powi(2) / 6.0).exp();
        let r = &mut self.rng;
        let mut share = 0.9 - 0.3 * rush + r.range(-0.04, 0.04);
        let volume = (12.0 + 30.0 * rush - 9.0 * night + r.range(-3.0, 3.0)).max(0.0);
        if let Some(i) = self.active(IncidentKind::Accident, t) {
            share = i.magnitude + self.rng.range(-0.02, 0.02);
        }
        let speed = self.free_flow * share;
        let occupancy = (100.0 * (1.0 - share) * 0.8).clamp(0.0, 100.0);
        vec![
            ("volume", round(volume, 0)),
            ("speed", round(speed, 1)),
            ("occupancy", round(occupancy, 1)),
        ]
    }

    fn camera(&mut self, ts: i64, t: i64, accidents: &[Incident]) -> Option<SimRecord> {
        let event = |name: &str, confidence: f64| Some((name.to_string(), round(confidence, 2)));
        let detection = if let Some(i) = self.active(IncidentKind::Fire, t) {
            event("fire_smoke", i.magnitude)
        } else if let Some(i) = accidents.iter().find(|i| i.active(t)) {
            ((t - i.at_ms) / MINUTE % 2 == 0).then(|| ("congestion".to_string(), 0.9))
        } else if let Some(i) = self.active(IncidentKind::RoadFlooding, t) {
            ((t - i.at_ms) % (5 * MINUTE) < self.cadence_ms)
                .then(|| ("road_flooding".to_string(), i.magnitude))
        } else if let Some(i) = self.active(IncidentKind::WrongWay, t) {
            (t - i.at_ms < self.cadence_ms).then(|| ("wrong_way".to_string(), i.magnitude))
        } else {
            // Everyday detections that raise no alert: red-light runs and small crowds.
            // Rates per minute, scaled to the camera's cadence.
            let roll = self.rng.unit() * MINUTE as f64 / self.cadence_ms as f64;
            if roll < 0.03 {
                event("red_light", self.rng.range(0.6, 0.95))
            } else if roll < 0.04 {
                event("crowd", self.rng.range(0.3, 0.6))
            } else {
                None
            }
        };
        let (name, confidence) = detection?;
        // Vehicle detections carry a licence plate: personal data the server masks for
        // roles not entitled to it. Derived from the time, so no random draw is spent.
        let attrs = if matches!(name.as_str(), "red_light" | "wrong_way") {
            let n = (ts / 1000).rem_euclid(100_000);
            let letter = (b'A' + (n % 26) as u8) as char;
            format!(
                r#","attrs":{{"plate":"65{letter}-{:03}.{:02}"}}"#,
                n % 1000,
                n / 1000 % 100
            )
        } else {
            String::new()
        };
        Some(SimRecord {
            ts,
            source: self.id.clone(),
            kind: Kind::Camera,
            ward: self.ward.clone(),
            json: format!(
                r#"{{"source":"{}","kind":"camera","ts":{ts},"event":"{name}","confidence":{confidence}{attrs}}}"#,
                self.id
            ),
            tt10: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_mode_cycles_through_the_stations_with_the_given_stamps() {
        let mut sim = Simulator::synthetic(3, 8, 0);
        let records: Vec<SimRecord> = (0..16)
            .map(|n| sim.burst_record(n, 1_000 + n as i64))
            .collect();
        assert_eq!(records[0].source, "SIM-traffic-00000");
        assert_eq!(records[1].source, "SIM-air-00001");
        assert_eq!(records[8].source, records[0].source);
        assert!(records
            .iter()
            .enumerate()
            .all(|(n, r)| r.ts == 1_000 + n as i64));
        assert!(records[2].json.contains("\"cod\""), "{}", records[2].json);
        // Same seed, same stream.
        let mut again = Simulator::synthetic(3, 8, 0);
        assert_eq!(again.burst_record(0, 1_000), records[0]);
    }
}
