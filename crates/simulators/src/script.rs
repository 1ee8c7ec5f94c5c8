//! Incident scripts: what goes wrong, where and when, in simulated time from the start.
//!
//! ```toml
//! [[incident]]
//! type = "cod_surge"      # see IncidentKind
//! station = "CT-DIS-01"
//! at = "1h"               # offset from the simulation start
//! duration = "90m"
//! magnitude = 1.5         # optional; meaning depends on the type (see IncidentKind)
//! ```

use serde::Deserialize;
use watchfloor_city::City;
use watchfloor_engine::duration::parse_duration_ms;
use watchfloor_model::Kind;

use crate::rng::Rng;
use crate::SimError;

/// What goes wrong. `magnitude` defaults are given per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Discharge: COD at `magnitude` × the station's Cmax (default 1.5).
    CodSurge,
    /// Discharge: TSS at `magnitude` × Cmax (default 1.6).
    TssSurge,
    /// Discharge: pH falls to `magnitude` (default 4.2).
    PhCrash,
    /// Discharge: status 01 (calibrating), the analyser reading its span gas/standard
    /// (COD at 3 × Cmax): must not count as a measurement.
    Calibration,
    /// Discharge: status 02 (instrument error), values meaningless (zeros).
    InstrumentError,
    /// Any station: no data at all.
    Offline,
    /// Any sensor station: every value frozen at its last reading.
    Stuck,
    /// Discharge: physically impossible readings (negative COD, pH 15).
    Impossible,
    /// Any sensor station: every reading sent twice with the same timestamp.
    DuplicateTimestamps,
    /// Air: PM2.5 rises to `magnitude` µg/m³ (default 180), PM10 with it.
    SmokePlume,
    /// Air: SO2 to `magnitude` µg/m³ (default 650), NO2 and PM10 up.
    IndustrialEmission,
    /// Hydrology: a flood wave raising the level by up to `magnitude` m (default 0.9),
    /// rising over the first 40 % of the duration, holding, then receding.
    FloodWave,
    /// Traffic sensor: speed falls to `magnitude` × free-flow (default 0.25); cameras
    /// in the same ward report congestion.
    Accident,
    /// Camera: fire/smoke detections (confidence `magnitude`, default 0.93) every minute;
    /// the air station nearest the camera, if within 2 km, sees a smoke plume from
    /// 3 minutes later.
    Fire,
    /// Camera: road flooding detections every 5 minutes (confidence default 0.85).
    RoadFlooding,
    /// Camera: one wrong-way detection (confidence default 0.9).
    WrongWay,
}

impl IncidentKind {
    fn default_magnitude(self) -> f64 {
        match self {
            IncidentKind::CodSurge => 1.5,
            IncidentKind::TssSurge => 1.6,
            IncidentKind::PhCrash => 4.2,
            IncidentKind::SmokePlume => 180.0,
            IncidentKind::IndustrialEmission => 650.0,
            IncidentKind::FloodWave => 0.9,
            IncidentKind::Accident => 0.25,
            IncidentKind::Fire => 0.93,
            IncidentKind::RoadFlooding => 0.85,
            IncidentKind::WrongWay => 0.9,
            _ => 1.0,
        }
    }

    /// The station kind this incident applies to (`None`: any).
    pub fn station_kind(self) -> Option<Kind> {
        match self {
            IncidentKind::CodSurge
            | IncidentKind::TssSurge
            | IncidentKind::PhCrash
            | IncidentKind::Calibration
            | IncidentKind::InstrumentError
            | IncidentKind::Impossible => Some(Kind::Discharge),
            IncidentKind::SmokePlume | IncidentKind::IndustrialEmission => Some(Kind::Air),
            IncidentKind::FloodWave => Some(Kind::WaterLevel),
            IncidentKind::Accident => Some(Kind::Traffic),
            IncidentKind::Fire | IncidentKind::RoadFlooding | IncidentKind::WrongWay => {
                Some(Kind::Camera)
            }
            IncidentKind::Offline | IncidentKind::Stuck | IncidentKind::DuplicateTimestamps => None,
        }
    }
}

/// One scripted incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// What happens.
    pub kind: IncidentKind,
    /// Where.
    pub station: String,
    /// Offset from the simulation start, ms.
    pub at_ms: i64,
    /// How long, ms.
    pub duration_ms: i64,
    /// Strength (see [`IncidentKind`]).
    pub magnitude: f64,
}

impl Incident {
    /// Whether the incident is on at offset `t` (ms from start).
    pub fn active(&self, t: i64) -> bool {
        t >= self.at_ms && t < self.at_ms + self.duration_ms
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    incident: Vec<IncidentSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentSpec {
    #[serde(rename = "type")]
    kind: IncidentKind,
    station: String,
    at: String,
    duration: String,
    magnitude: Option<f64>,
}

/// Parses a script and checks every station exists and has the right kind.
pub fn parse_script(text: &str, city: &City) -> Result<Vec<Incident>, SimError> {
    let file: ScriptFile = toml::from_str(text).map_err(|e| SimError::Script(e.to_string()))?;
    file.incident
        .into_iter()
        .map(|spec| {
            let station = city
                .station(&spec.station)
                .ok_or_else(|| SimError::Script(format!("unknown station `{}`", spec.station)))?;
            if let Some(kind) = spec.kind.station_kind() {
                if station.kind != kind {
                    return Err(SimError::Script(format!(
                        "{:?} needs a {} station, `{}` is {}",
                        spec.kind,
                        kind.as_str(),
                        spec.station,
                        station.kind.as_str()
                    )));
                }
            }
            let duration = |s: &str| parse_duration_ms(s).map_err(SimError::Script);
            Ok(Incident {
                kind: spec.kind,
                magnitude: spec.magnitude.unwrap_or(spec.kind.default_magnitude()),
                station: spec.station,
                at_ms: duration(&spec.at)?,
                duration_ms: duration(&spec.duration)?,
            })
        })
        .collect()
}

/// The incidents of a seed: spread over `duration_ms`, one of each kind that has a station
/// in the city, at seeded stations and times (each starting within the first 60 % of the
/// run so its alerts fall inside it).
pub fn seeded_script(seed: u64, duration_ms: i64, city: &City) -> Vec<Incident> {
    const KINDS: [(IncidentKind, i64); 12] = [
        (IncidentKind::CodSurge, 100),
        (IncidentKind::TssSurge, 90),
        (IncidentKind::PhCrash, 20),
        (IncidentKind::Calibration, 45),
        (IncidentKind::Offline, 40),
        (IncidentKind::Stuck, 60),
        (IncidentKind::SmokePlume, 90),
        (IncidentKind::IndustrialEmission, 120),
        (IncidentKind::FloodWave, 300),
        (IncidentKind::Accident, 30),
        (IncidentKind::Fire, 25),
        (IncidentKind::WrongWay, 1),
    ];
    let mut rng = Rng::new(seed ^ 0x005c_7197);
    let mut out = Vec::new();
    for (kind, minutes) in KINDS {
        let candidates: Vec<&str> = city
            .stations
            .iter()
            .filter(|s| kind.station_kind().is_none_or(|k| s.kind == k))
            .filter(|s| kind != IncidentKind::Offline || s.kind == Kind::Discharge)
            .filter(|s| kind != IncidentKind::Stuck || s.kind == Kind::Discharge)
            .map(|s| s.id.as_str())
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let station = candidates[rng.below(candidates.len() as u64) as usize];
        out.push(Incident {
            kind,
            station: station.to_string(),
            at_ms: 0,
            duration_ms: (minutes * 60_000).min(duration_ms / 2),
            magnitude: kind.default_magnitude(),
        });
    }
    // Start times: seeded, between 10 % and 60 % of the run, on whole 5 minutes.
    for incident in &mut out {
        let lo = duration_ms / 10;
        let hi = duration_ms * 6 / 10;
        let at = lo + rng.below((hi - lo).max(1) as u64) as i64;
        incident.at_ms = at - at % 300_000;
    }
    out
}

/// The demo's incidents: a cycle every 45 minutes of simulated time, starting 10 s in, so a
/// room watching `watchfloor demo` sees something new every few minutes: a camera fire
/// (with smoke at the nearest air station), a wrong-way driver, an accident, a pH crash,
/// road flooding, an industrial emission, a silent station and a COD surge. Each cycle
/// moves to other stations; the first starts at CT-CAM-01 (ward Long Hòa).
pub fn demo_script(duration_ms: i64, city: &City) -> Vec<Incident> {
    const CYCLE_MS: i64 = 45 * 60_000;
    let steps: [(i64, IncidentKind, Kind, i64); 8] = [
        (10_000, IncidentKind::Fire, Kind::Camera, 20),
        (40_000, IncidentKind::WrongWay, Kind::Camera, 1),
        (90_000, IncidentKind::Accident, Kind::Traffic, 15),
        (180_000, IncidentKind::PhCrash, Kind::Discharge, 10),
        (300_000, IncidentKind::RoadFlooding, Kind::Camera, 10),
        (480_000, IncidentKind::IndustrialEmission, Kind::Air, 60),
        (720_000, IncidentKind::Offline, Kind::Discharge, 30),
        (900_000, IncidentKind::CodSurge, Kind::Discharge, 70),
    ];
    let of_kind = |kind: Kind| -> Vec<&str> {
        city.stations
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.id.as_str())
            .collect()
    };
    let mut out = Vec::new();
    let mut cycle = 0i64;
    while cycle * CYCLE_MS < duration_ms {
        for (n, (offset, kind, station_kind, minutes)) in steps.iter().enumerate() {
            let stations = of_kind(*station_kind);
            if stations.is_empty() {
                continue;
            }
            // Different stations per step and per cycle.
            let pick = (cycle as usize * 7 + n * 5) % stations.len();
            out.push(Incident {
                kind: *kind,
                station: stations[pick].to_string(),
                at_ms: cycle * CYCLE_MS + offset,
                duration_ms: minutes * 60_000,
                magnitude: kind.default_magnitude(),
            });
        }
        cycle += 1;
    }
    out
}
