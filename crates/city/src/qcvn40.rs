//! QCVN 40 discharge limits: `Cmax = C × Kq × Kf` from the project's reference tables
//! (`alert-rules/reference/<regulation>.csv`, `-kq.csv`, `-kf.csv`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::{read_csv, CityError};

/// The column of the regulation a station discharges under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Receiving water used for domestic supply.
    A,
    /// Receiving water not used for domestic supply.
    B,
}

/// An allowed range for one parameter at one station.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Lower bound (pH only).
    pub min: Option<f64>,
    /// Upper bound: Cmax.
    pub max: f64,
}

#[derive(Debug, Clone)]
struct Parameter {
    min: [Option<f64>; 2],
    c: [f64; 2],
    apply_k: bool,
}

#[derive(Debug, Clone)]
struct Band {
    receiving: String,
    upper: Option<f64>,
    value: f64,
}

/// One regulation version's tables (e.g. `qcvn40-2011`).
#[derive(Debug, Clone)]
pub struct Regulation {
    /// Its name, the file stem of its table.
    pub name: String,
    parameters: BTreeMap<String, Parameter>,
    kq: Vec<Band>,
    kf: Vec<Band>,
}

fn number(field: &str, what: &str, file: &Path, line: u64) -> Result<Option<f64>, CityError> {
    if field.is_empty() {
        return Ok(None);
    }
    field
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Some)
        .ok_or_else(|| CityError::at(file, line, format!("`{field}` in `{what}` is not a number")))
}

impl Regulation {
    /// Loads `<dir>/<name>.csv`, `<name>-kq.csv` and `<name>-kf.csv`.
    pub fn load(dir: &Path, name: &str) -> Result<Regulation, CityError> {
        let mut parameters = BTreeMap::new();
        let file = dir.join(format!("{name}.csv"));
        for (line, row) in read_csv(&file)? {
            let get = |k: &str| row.get(k).map(String::as_str).unwrap_or_default();
            let need = |k: &str| {
                number(get(k), k, &file, line)?
                    .ok_or_else(|| CityError::at(&file, line, format!("`{k}` is empty")))
            };
            parameters.insert(
                get("metric").to_string(),
                Parameter {
                    min: [
                        number(get("min_a"), "min_a", &file, line)?,
                        number(get("min_b"), "min_b", &file, line)?,
                    ],
                    c: [need("c_a")?, need("c_b")?],
                    apply_k: get("apply_k") == "1",
                },
            );
        }
        let bands = |suffix: &str, value: &str| -> Result<Vec<Band>, CityError> {
            let file = dir.join(format!("{name}-{suffix}.csv"));
            read_csv(&file)?
                .into_iter()
                .map(|(line, row)| {
                    let get = |k: &str| row.get(k).map(String::as_str).unwrap_or_default();
                    Ok(Band {
                        receiving: get("receiving").to_string(),
                        upper: number(get("upper"), "upper", &file, line)?,
                        value: number(get(value), value, &file, line)?.ok_or_else(|| {
                            CityError::at(&file, line, format!("`{value}` is empty"))
                        })?,
                    })
                })
                .collect()
        };
        Ok(Regulation {
            name: name.to_string(),
            parameters,
            kq: bands("kq", "kq")?,
            kf: bands("kf", "kf")?,
        })
    }

    /// Kq for a receiving water (`river` with Q in m³/s, `lake` with volume in million m³,
    /// `coastal`, `coastal_protected`) of the given size; `None` when the table has no band.
    pub fn kq(&self, receiving: &str, size: f64) -> Option<f64> {
        self.kq
            .iter()
            .filter(|b| b.receiving == receiving)
            .find(|b| b.upper.is_none_or(|u| size <= u))
            .map(|b| b.value)
    }

    /// Kf for a discharge volume in m³/day.
    pub fn kf(&self, discharge_m3_day: f64) -> f64 {
        self.kf
            .iter()
            .find(|b| b.upper.is_none_or(|u| discharge_m3_day <= u))
            .map_or(1.0, |b| b.value)
    }

    /// The allowed range of `metric` under `column` with the station's Kq and Kf.
    pub fn limit(&self, metric: &str, column: Column, kq: f64, kf: f64) -> Option<Limit> {
        let p = self.parameters.get(metric)?;
        let i = column as usize;
        let factor = if p.apply_k { kq * kf } else { 1.0 };
        Some(Limit {
            min: p.min[i],
            max: p.c[i] * factor,
        })
    }

    /// The parameters the regulation limits (canonical metric names).
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        self.parameters.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regulation() -> Regulation {
        Regulation::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules/reference"),
            "qcvn40-2011",
        )
        .unwrap()
    }

    #[test]
    fn cmax_for_three_station_configurations_by_hand() {
        let r = regulation();
        // 1. The shared file's example: column B, 1,200 m³/day into a river with Q = 120 m³/s:
        //    Kq = 1.0 (50 < Q <= 200), Kf = 1.0 (500 < F <= 5,000): COD 150 × 1 × 1 = 150.
        let (kq, kf) = (r.kq("river", 120.0).unwrap(), r.kf(1200.0));
        assert_eq!((kq, kf), (1.0, 1.0));
        assert_eq!(r.limit("cod", Column::B, kq, kf).unwrap().max, 150.0);
        assert_eq!(r.limit("tss", Column::B, kq, kf).unwrap().max, 100.0);
        let ph = r.limit("ph", Column::B, kq, kf).unwrap();
        assert_eq!((ph.min, ph.max), (Some(5.5), 9.0));
        // 2. Column A, 2,500 m³/day into a small river (Q = 40 m³/s): Kq 0.9, Kf 1.0:
        //    COD 75 × 0.9 = 67.5; NH4+ 5 × 0.9 = 4.5; temperature has no K: 40.
        let (kq, kf) = (r.kq("river", 40.0).unwrap(), r.kf(2500.0));
        assert_eq!((kq, kf), (0.9, 1.0));
        assert!((r.limit("cod", Column::A, kq, kf).unwrap().max - 67.5).abs() < 1e-9);
        assert!((r.limit("nh4", Column::A, kq, kf).unwrap().max - 4.5).abs() < 1e-9);
        assert_eq!(r.limit("temperature", Column::A, kq, kf).unwrap().max, 40.0);
        assert_eq!(r.limit("ph", Column::A, kq, kf).unwrap().min, Some(6.0));
        // 3. Column B, 40 m³/day into a large river (Q = 600 m³/s): Kq 1.2, Kf 1.2:
        //    COD 150 × 1.44 = 216; TSS 100 × 1.44 = 144.
        let (kq, kf) = (r.kq("river", 600.0).unwrap(), r.kf(40.0));
        assert_eq!((kq, kf), (1.2, 1.2));
        assert!((r.limit("cod", Column::B, kq, kf).unwrap().max - 216.0).abs() < 1e-9);
        assert!((r.limit("tss", Column::B, kq, kf).unwrap().max - 144.0).abs() < 1e-9);
        // 4. Column A into a 5 million m³ lake, 800 m³/day: Kq 0.6, Kf 1.0: COD 45.
        let (kq, kf) = (r.kq("lake", 5.0).unwrap(), r.kf(800.0));
        assert!((r.limit("cod", Column::A, kq, kf).unwrap().max - 45.0).abs() < 1e-9);
        // Band edges are inclusive: Q = 50 is the first river band, F = 5,000 the third.
        assert_eq!(r.kq("river", 50.0), Some(0.9));
        assert_eq!(r.kf(5000.0), 1.0);
        assert_eq!(r.kf(5000.1), 0.9);
        assert!(r.limit("unobtainium", Column::A, 1.0, 1.0).is_none());
    }
}
