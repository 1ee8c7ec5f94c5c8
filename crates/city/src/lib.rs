//! The city Watchfloor watches: its station registry, its communes/wards (two-tier
//! government: the city, then communes; a legacy district only as an attribute), its
//! sectors (departments), and the per-station reference values rules read (QCVN 40
//! limits, flood alarm levels, free-flow speeds).
//!
//! Everything lives beside the rules, so `--rules alert-rules` brings the city along:
//! `city/stations.csv` (the registry, with each station's cadence and sectors),
//! `city/zones.geojson` (boundaries), `city/sectors.csv` (departments) and
//! `reference/*.csv` (standards tables); a rule's `sector` label must name a sector. [`load_rules`] compiles the rules with a lookup
//! table `station` derived from them; [`City::place`] checks each event's station and
//! stamps its ward (`zone`) and district (`attrs.district`) before the engine sees it.

mod qcvn40;
mod sectors;
mod zones;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;
use watchfloor_engine::{LookupTables, RuleError, RuleErrors, RuleSet};
use watchfloor_model::{Event, Kind, Location, Rejection};

pub use qcvn40::{Column, Limit, Regulation};
pub use sectors::{Sector, Sectors};
pub use zones::{Zone, ZoneLevel, ZoneMap};

/// A problem in the city's data files, with where it is.
#[derive(Debug, Clone, Error)]
#[error("{file}:{line}: {message}")]
pub struct CityError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when not known).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl CityError {
    fn at(file: &Path, line: u64, message: impl Into<String>) -> Self {
        CityError {
            file: file.display().to_string(),
            line,
            message: message.into(),
        }
    }
}

type Row = HashMap<String, String>;

/// Reads a CSV file with `#` comments into (line, column → cell) rows.
pub(crate) fn read_csv(file: &Path) -> Result<Vec<(u64, Row)>, CityError> {
    let text = std::fs::read_to_string(file).map_err(|e| CityError::at(file, 0, e.to_string()))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| CityError::at(file, 1, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            CityError::at(file, e.position().map_or(0, |p| p.line()), e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row = headers
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_string))
            .collect();
        rows.push((line, row));
    }
    Ok(rows)
}

/// One registered station.
#[derive(Debug, Clone)]
pub struct Station {
    /// The id its telemetry carries as `source`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it measures.
    pub kind: Kind,
    /// Latitude (WGS 84).
    pub lat: f64,
    /// Longitude (WGS 84).
    pub lon: f64,
    /// The ward it stands in (from the zones), if any.
    pub ward: Option<String>,
    /// That ward's district.
    pub district: Option<String>,
    /// Discharge stations: allowed range per canonical metric.
    pub limits: BTreeMap<String, Limit>,
    /// Discharge stations: the Kq and Kf applied.
    pub kq_kf: Option<(f64, f64)>,
    /// Hydrology stations: alarm levels I, II, III (m).
    pub alarm_levels: [Option<f64>; 3],
    /// Traffic sensors: free-flow speed (km/h).
    pub free_flow_kmh: Option<f64>,
    /// The sectors it serves (its registry row's `sectors`, else its kind's).
    pub sectors: Vec<String>,
    /// Its registered reporting interval, seconds (none: it reports on events).
    pub cadence_s: Option<u32>,
}

/// The registry, zones and reference values of one city.
#[derive(Debug)]
pub struct City {
    /// Stations in registry order.
    pub stations: Vec<Station>,
    by_id: HashMap<String, usize>,
    /// Communes/wards (and legacy districts).
    pub zones: ZoneMap,
    /// The sectors (departments) operations split by (`city/sectors.csv`; none when absent).
    pub sectors: Sectors,
}

fn parse_number(row: &Row, column: &str, file: &Path, line: u64) -> Result<Option<f64>, CityError> {
    match row.get(column).map(String::as_str).unwrap_or_default() {
        "" => Ok(None),
        cell => cell
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| {
                CityError::at(
                    file,
                    line,
                    format!("`{cell}` in `{column}` is not a number"),
                )
            }),
    }
}

impl Station {
    /// Where it stands.
    pub fn location(&self) -> Location {
        Location {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

impl City {
    /// Loads the city beside the rules in `rules_dir`; `Ok(None)` when there is no
    /// `city/stations.csv` there (rules that need no registry).
    pub fn load(rules_dir: &Path) -> Result<Option<City>, CityError> {
        let registry = rules_dir.join("city/stations.csv");
        if !registry.exists() {
            return Ok(None);
        }
        let zones_file = rules_dir.join("city/zones.geojson");
        let zones_text = std::fs::read_to_string(&zones_file)
            .map_err(|e| CityError::at(&zones_file, 0, e.to_string()))?;
        let zones = ZoneMap::from_geojson(&zones_text, &zones_file)?;
        let sectors_file = rules_dir.join("city/sectors.csv");
        let sectors = if sectors_file.exists() {
            Sectors::load(&sectors_file)?
        } else {
            Sectors::default()
        };
        let reference = rules_dir.join("reference");
        let mut regulations: HashMap<String, Regulation> = HashMap::new();
        let mut gauges: HashMap<String, [Option<f64>; 3]> = HashMap::new();
        let flood_file = reference.join("flood-alarm-levels.csv");
        if flood_file.exists() {
            for (line, row) in read_csv(&flood_file)? {
                let levels = [
                    parse_number(&row, "alarm_1", &flood_file, line)?,
                    parse_number(&row, "alarm_2", &flood_file, line)?,
                    parse_number(&row, "alarm_3", &flood_file, line)?,
                ];
                gauges.insert(row.get("gauge").cloned().unwrap_or_default(), levels);
            }
        }
        let mut stations = Vec::new();
        let mut by_id = HashMap::new();
        for (line, row) in read_csv(&registry)? {
            let text = |k: &str| row.get(k).cloned().unwrap_or_default();
            let id = text("id");
            if id.is_empty() {
                return Err(CityError::at(&registry, line, "empty `id`"));
            }
            let kind = Kind::parse(&text("kind")).ok_or_else(|| {
                CityError::at(&registry, line, format!("unknown kind `{}`", text("kind")))
            })?;
            let (lat, lon) = match (
                parse_number(&row, "lat", &registry, line)?,
                parse_number(&row, "lon", &registry, line)?,
            ) {
                (Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    (lat, lon)
                }
                _ => {
                    return Err(CityError::at(
                        &registry,
                        line,
                        format!("station `{id}` needs a valid lat and lon"),
                    ))
                }
            };
            let ward = zones.ward_at(lat, lon);
            let station_sectors = match text("sectors") {
                cell if cell.is_empty() => sectors.of_kind(kind),
                cell => sectors.parse_list(&cell).map_err(|unknown| {
                    CityError::at(&registry, line, format!("unknown sector `{unknown}`"))
                })?,
            };
            let cadence_s = match parse_number(&row, "cadence_s", &registry, line)? {
                None => None,
                Some(c) if (1.0..=86_400.0).contains(&c) && c.fract() == 0.0 => Some(c as u32),
                Some(c) => {
                    return Err(CityError::at(
                        &registry,
                        line,
                        format!("`cadence_s` {c} must be whole seconds between 1 and 86400"),
                    ))
                }
            };
            let mut station = Station {
                sectors: station_sectors,
                cadence_s,
                name: text("name"),
                kind,
                lat,
                lon,
                ward: ward.map(|w| w.id.clone()),
                district: ward.and_then(|w| w.district.clone()),
                limits: BTreeMap::new(),
                kq_kf: None,
                alarm_levels: [None; 3],
                free_flow_kmh: parse_number(&row, "free_flow_kmh", &registry, line)?,
                id: id.clone(),
            };
            if kind == Kind::Discharge {
                let name = match text("regulation") {
                    r if r.is_empty() => "qcvn40-2011".to_string(),
                    r => r,
                };
                if !regulations.contains_key(&name) {
                    regulations.insert(name.clone(), Regulation::load(&reference, &name)?);
                }
                let regulation = &regulations[&name];
                let column = match text("qcvn_column").as_str() {
                    "A" => Column::A,
                    "B" => Column::B,
                    other => {
                        return Err(CityError::at(
                            &registry,
                            line,
                            format!("`qcvn_column` is `{other}`, not A or B"),
                        ))
                    }
                };
                let kq = match parse_number(&row, "kq", &registry, line)? {
                    Some(kq) => kq,
                    None => {
                        let size =
                            parse_number(&row, "receiving_size", &registry, line)?.unwrap_or(0.0);
                        regulation.kq(&text("receiving"), size).ok_or_else(|| {
                            CityError::at(
                                &registry,
                                line,
                                format!(
                                    "no Kq for receiving water `{}`; give `kq`",
                                    text("receiving")
                                ),
                            )
                        })?
                    }
                };
                let kf = match parse_number(&row, "kf", &registry, line)? {
                    Some(kf) => kf,
                    None => {
                        let f = parse_number(&row, "discharge_m3_day", &registry, line)?
                            .ok_or_else(|| {
                                CityError::at(
                                    &registry,
                                    line,
                                    "a discharge station needs `discharge_m3_day` or `kf`",
                                )
                            })?;
                        regulation.kf(f)
                    }
                };
                station.kq_kf = Some((kq, kf));
                for metric in regulation.metrics() {
                    if let Some(limit) = regulation.limit(metric, column, kq, kf) {
                        station.limits.insert(metric.to_string(), limit);
                    }
                }
            }
            let gauge = text("gauge");
            if !gauge.is_empty() {
                station.alarm_levels = *gauges.get(&gauge).ok_or_else(|| {
                    CityError::at(
                        &registry,
                        line,
                        format!("unknown gauge `{gauge}` (reference/flood-alarm-levels.csv)"),
                    )
                })?;
            }
            if by_id.insert(id.clone(), stations.len()).is_some() {
                return Err(CityError::at(
                    &registry,
                    line,
                    format!("station `{id}` appears twice"),
                ));
            }
            stations.push(station);
        }
        Ok(Some(City {
            stations,
            by_id,
            zones,
            sectors,
        }))
    }

    /// A station by id.
    pub fn station(&self, id: &str) -> Option<&Station> {
        self.by_id.get(id).map(|i| &self.stations[*i])
    }

    /// The sectors an alert belongs to: its rule's `sector` label, else those naming its
    /// rule, else those owning its pack, else those of the station it is about (empty:
    /// city-wide, seen by accounts of every sector only).
    pub fn alert_sectors(
        &self,
        rule: &str,
        labels: &BTreeMap<String, String>,
        key: &str,
    ) -> Vec<String> {
        if let Some(named) = labels.get("sector") {
            return self.sectors.parse_list(named).unwrap_or_default();
        }
        let named = self.sectors.of_rule(rule);
        if !named.is_empty() {
            return named;
        }
        if let Some(pack) = labels.get("pack") {
            let owners = self.sectors.of_pack(pack);
            if !owners.is_empty() {
                return owners;
            }
        }
        self.station(key)
            .map(|s| s.sectors.clone())
            .unwrap_or_default()
    }

    /// The lookup table `station`, keyed by station id: `lat`, `lon`, `kq`, `kf`,
    /// `<metric>_max` and `ph_min` (discharge), `alarm_1..3` (hydrology), `free_flow_kmh`.
    pub fn station_table_csv(&self) -> String {
        let metrics: BTreeSet<&str> = self
            .stations
            .iter()
            .flat_map(|s| s.limits.keys().map(String::as_str))
            .collect();
        let mut header = vec![
            "source".to_string(),
            "lat".into(),
            "lon".into(),
            "kq".into(),
            "kf".into(),
        ];
        header.extend(metrics.iter().map(|m| format!("{m}_max")));
        header
            .extend(["ph_min", "alarm_1", "alarm_2", "alarm_3", "free_flow_kmh"].map(String::from));
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let mut out = header.join(",") + "\n";
        for s in &self.stations {
            let mut row = vec![
                s.id.clone(),
                s.lat.to_string(),
                s.lon.to_string(),
                cell(s.kq_kf.map(|k| k.0)),
                cell(s.kq_kf.map(|k| k.1)),
            ];
            row.extend(
                metrics
                    .iter()
                    .map(|m| cell(s.limits.get(*m).map(|l| l.max))),
            );
            row.push(cell(s.limits.get("ph").and_then(|l| l.min)));
            row.extend(s.alarm_levels.iter().map(|v| cell(*v)));
            row.push(cell(s.free_flow_kmh));
            out += &row.join(",");
            out.push('\n');
        }
        out
    }

    /// Checks `event` against the registry and stamps its ward (`zone`) and district
    /// (`attrs.district`): from its own location when it has one (a camera on a vehicle,
    /// a report from the field), else from its station's.
    pub fn place(&self, event: &mut Event) -> Result<(), Rejection> {
        let station = self
            .station(&event.source)
            .ok_or_else(|| Rejection::UnknownStation(event.source.clone()))?;
        if station.kind != event.kind {
            return Err(Rejection::KindMismatch {
                station: event.source.clone(),
                registered: station.kind.as_str(),
                sent: event.kind.as_str(),
            });
        }
        // A pushed indicator is about the zone it names, or the whole city: not about
        // where the pushing system's office stands.
        if event.kind == Kind::Indicator {
            return match &event.zone {
                Some(z) if self.zones.get(z).is_none_or(|z| z.level != ZoneLevel::Ward) => {
                    Err(Rejection::InvalidField {
                        field: "zone",
                        reason: "not a commune or ward of the city",
                    })
                }
                _ => Ok(()),
            };
        }
        if event.zone.is_some() {
            return Ok(());
        }
        let (ward, district) = match &event.location {
            Some(at) => match self.zones.ward_at(at.lat, at.lon) {
                Some(w) => (Some(w.id.clone()), w.district.clone()),
                None => (None, None),
            },
            None => (station.ward.clone(), station.district.clone()),
        };
        event.zone = ward;
        if let Some(d) = district {
            event.attrs.insert("district".into(), Value::String(d));
        }
        Ok(())
    }
}

/// Loads the rules in `dir` together with the city beside them (when there is one), whose
/// derived `station` table the rules may read. Problems of either are reported together.
pub fn load_rules(dir: &Path) -> Result<(RuleSet, Option<Arc<City>>), RuleErrors> {
    let city = City::load(dir).map_err(|e| {
        RuleErrors(vec![RuleError {
            file: e.file,
            line: e.line as usize,
            column: 0,
            message: e.message,
        }])
    })?;
    let mut lookups = LookupTables::new();
    if let Some(city) = &city {
        lookups
            .add_csv("station", &city.station_table_csv())
            .map_err(|e| {
                RuleErrors(vec![RuleError {
                    file: dir.join("city/stations.csv").display().to_string(),
                    line: 0,
                    column: 0,
                    message: e.message,
                }])
            })?;
    }
    let rules = RuleSet::load_dir_with(dir, lookups)?;
    if let Some(city) = &city {
        let mut errors: Vec<RuleError> = rules
            .rules
            .iter()
            .filter_map(|rule| {
                let named = rule.labels.get("sector")?;
                let unknown = city.sectors.parse_list(named).err()?;
                let (file, line) = rule.origin.rsplit_once(':').unwrap_or((&rule.origin, "0"));
                Some(RuleError {
                    file: file.to_string(),
                    line: line.parse().unwrap_or(0),
                    column: 0,
                    message: format!(
                        "rule `{}`: label `sector` names unknown sector `{unknown}` (city/sectors.csv)",
                        rule.id
                    ),
                })
            })
            .collect();
        // A sector naming a rule that does not exist is a typo that would move alerts.
        for sector in city.sectors.all() {
            for rule in &sector.rules {
                if !rules.rules.iter().any(|r| &r.id == rule) {
                    errors.push(RuleError {
                        file: dir.join("city/sectors.csv").display().to_string(),
                        line: sector.line as usize,
                        column: 0,
                        message: format!("sector `{}` names unknown rule `{rule}`", sector.id),
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(RuleErrors(errors));
        }
    }
    Ok((rules, city.map(Arc::new)))
}

/// The directory of the shipped rules, for tests.
#[doc(hidden)]
pub fn shipped_rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_city_loads_and_every_station_has_a_ward() {
        let city = City::load(&shipped_rules_dir()).unwrap().unwrap();
        assert!(city.stations.len() >= 90);
        for s in &city.stations {
            assert!(
                s.ward.is_some(),
                "{} at {},{} is in no ward",
                s.id,
                s.lat,
                s.lon
            );
        }
        let tra_noc = city.station("CT-DIS-01").unwrap();
        assert_eq!(tra_noc.district.as_deref(), Some("binh_thuy"));
        assert_eq!(tra_noc.limits["cod"].max, 150.0);
        let hy = city.station("CT-HY-01").unwrap();
        assert_eq!(hy.alarm_levels, [Some(1.8), Some(1.9), Some(2.0)]);
        let table = city.station_table_csv();
        assert!(table.lines().next().unwrap().contains("cod_max"));
    }

    #[test]
    fn events_are_placed_and_strangers_refused() {
        let city = City::load(&shipped_rules_dir()).unwrap().unwrap();
        let mut e = Event {
            source: "CT-DIS-01".into(),
            kind: Kind::Discharge,
            ts: 0,
            values: vec![],
            status: watchfloor_model::StationStatus::Normal,
            location: None,
            camera_event: None,
            attrs: Default::default(),
            zone: None,
        };
        city.place(&mut e).unwrap();
        assert_eq!(e.zone.as_deref(), Some("tra_noc"));
        assert_eq!(e.attrs["district"], "binh_thuy");
        e.kind = Kind::Air;
        e.zone = None;
        assert_eq!(city.place(&mut e).unwrap_err().code(), "kind_mismatch");
        e.source = "NOPE".into();
        assert_eq!(city.place(&mut e).unwrap_err().code(), "unknown_station");
    }
}
