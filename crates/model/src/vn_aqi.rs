//! VN_AQI (Decision 1459/QĐ-TCMT): sub-indices from breakpoints and the category names.
//!
//! The breakpoints are the project data file `alert-rules/reference/vn-aqi-1459.csv`,
//! compiled into the binary so that the engine's `aqi_*` functions and the KPIs agree.

use std::sync::OnceLock;

const BREAKPOINTS_CSV: &str = include_str!("../../../alert-rules/reference/vn-aqi-1459.csv");

/// A pollutant with VN_AQI breakpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pollutant {
    /// Ozone, 1-hour mean.
    O3OneHour,
    /// Ozone, 8-hour mean.
    O3EightHour,
    /// Carbon monoxide (µg/m³).
    Co,
    /// Sulphur dioxide.
    So2,
    /// Nitrogen dioxide.
    No2,
    /// PM10 (NowCast or 24-hour mean).
    Pm10,
    /// PM2.5 (NowCast or 24-hour mean).
    Pm25,
}

impl Pollutant {
    /// Every pollutant, in the column order of the breakpoint file.
    pub const ALL: [Pollutant; 7] = [
        Pollutant::O3OneHour,
        Pollutant::O3EightHour,
        Pollutant::Co,
        Pollutant::So2,
        Pollutant::No2,
        Pollutant::Pm10,
        Pollutant::Pm25,
    ];

    /// The column name in the breakpoint file (`pm25`, `o3_1h`, …).
    pub fn column(self) -> &'static str {
        match self {
            Pollutant::O3OneHour => "o3_1h",
            Pollutant::O3EightHour => "o3_8h",
            Pollutant::Co => "co",
            Pollutant::So2 => "so2",
            Pollutant::No2 => "no2",
            Pollutant::Pm10 => "pm10",
            Pollutant::Pm25 => "pm25",
        }
    }

    /// The pollutant for a column name.
    pub fn parse(column: &str) -> Option<Pollutant> {
        Self::ALL.into_iter().find(|p| p.column() == column)
    }
}

struct Table {
    index: Vec<f64>,
    /// Per pollutant (in [`Pollutant::ALL`] order), the breakpoints present, with their index.
    columns: Vec<Vec<(f64, f64)>>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut lines = BREAKPOINTS_CSV
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let index: Vec<f64> = rows.iter().map(|r| r[0].parse().expect("index")).collect();
        let columns = Pollutant::ALL
            .iter()
            .map(|p| {
                let c = header
                    .iter()
                    .position(|h| *h == p.column())
                    .expect("pollutant column");
                rows.iter()
                    .zip(&index)
                    .filter(|(r, _)| !r[c].is_empty())
                    .map(|(r, i)| (r[c].parse().expect("breakpoint"), *i))
                    .collect()
            })
            .collect();
        Table { index, columns }
    })
}

/// The sub-index of `pollutant` at concentration `c` (µg/m³), rounded to an integer:
/// `(I[i+1] − I[i]) / (BP[i+1] − BP[i]) × (c − BP[i]) + I[i]`. At or above the top
/// breakpoint it is the top index (500); past the last O3 8-hour breakpoint it is `NaN`
/// (the 1-hour value is used there); negative or non-finite input is `NaN`.
pub fn sub_index(pollutant: Pollutant, c: f64) -> f64 {
    if !c.is_finite() || c < 0.0 {
        return f64::NAN;
    }
    let table = table();
    let points = &table.columns[Pollutant::ALL.iter().position(|p| *p == pollutant).unwrap()];
    for pair in points.windows(2) {
        let ((bp_lo, i_lo), (bp_hi, i_hi)) = (pair[0], pair[1]);
        // A breakpoint belongs to the segment below it (the index is continuous there);
        // at the last O3 8-hour breakpoint that is its index, not "past the table".
        if c <= bp_hi {
            let value = (i_hi - i_lo) / (bp_hi - bp_lo) * (c - bp_lo) + i_lo;
            return value.round();
        }
    }
    let (_, top) = *points.last().unwrap();
    if top == *table.index.last().unwrap() {
        top
    } else {
        f64::NAN
    }
}

/// A VN_AQI category: its rank (1 = Tốt … 6 = Nguy hại), names and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AqiCategory {
    /// 1 (good) to 6 (hazardous).
    pub rank: u8,
    /// The Vietnamese name.
    pub vi: &'static str,
    /// The English name.
    pub en: &'static str,
    /// The colour as `#rrggbb`.
    pub colour: &'static str,
}

const CATEGORIES: [(f64, AqiCategory); 6] = [
    (
        50.0,
        AqiCategory {
            rank: 1,
            vi: "Tốt",
            en: "good",
            colour: "#00e400",
        },
    ),
    (
        100.0,
        AqiCategory {
            rank: 2,
            vi: "Trung bình",
            en: "moderate",
            colour: "#ffff00",
        },
    ),
    (
        150.0,
        AqiCategory {
            rank: 3,
            vi: "Kém",
            en: "poor",
            colour: "#ff7e00",
        },
    ),
    (
        200.0,
        AqiCategory {
            rank: 4,
            vi: "Xấu",
            en: "bad",
            colour: "#ff0000",
        },
    ),
    (
        300.0,
        AqiCategory {
            rank: 5,
            vi: "Rất xấu",
            en: "very bad",
            colour: "#8f3f97",
        },
    ),
    (
        f64::INFINITY,
        AqiCategory {
            rank: 6,
            vi: "Nguy hại",
            en: "hazardous",
            colour: "#7e0023",
        },
    ),
];

/// The category of a (rounded) AQI value; `None` for `NaN` or negative values.
pub fn category(aqi: f64) -> Option<AqiCategory> {
    if aqi.is_nan() || aqi < 0.0 {
        return None;
    }
    CATEGORIES
        .iter()
        .find(|(max, _)| aqi <= *max)
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_values_of_the_decision() {
        // PM2.5 65 µg/m³: (150−100)/(80−50) × (65−50) + 100 = 125, "Kém".
        assert_eq!(sub_index(Pollutant::Pm25, 65.0), 125.0);
        assert_eq!(category(125.0).unwrap().vi, "Kém");
        // NO2 120 µg/m³: (100−50)/(200−100) × (120−100) + 50 = 60.
        assert_eq!(sub_index(Pollutant::No2, 120.0), 60.0);
        assert_eq!(category(60.0).unwrap().vi, "Trung bình");
    }

    #[test]
    fn breakpoints_edges_and_top_of_scale() {
        assert_eq!(sub_index(Pollutant::Pm25, 0.0), 0.0);
        // A breakpoint belongs to the band it starts: BP_i <= c < BP_i+1.
        assert_eq!(sub_index(Pollutant::Pm25, 25.0), 50.0);
        assert_eq!(sub_index(Pollutant::Pm10, 150.0), 100.0);
        // CO 10 000 µg/m³ is the top of "good".
        assert_eq!(sub_index(Pollutant::Co, 10_000.0), 50.0);
        assert_eq!(sub_index(Pollutant::Pm25, 900.0), 500.0);
        assert!(sub_index(Pollutant::O3EightHour, 450.0).is_nan());
        assert!(sub_index(Pollutant::Pm25, -1.0).is_nan());
        assert!(sub_index(Pollutant::Pm25, f64::NAN).is_nan());
        assert_eq!(category(50.0).unwrap().rank, 1);
        assert_eq!(category(51.0).unwrap().rank, 2);
        assert_eq!(category(201.0).unwrap().en, "very bad");
        assert_eq!(category(480.0).unwrap().rank, 6);
        assert!(category(f64::NAN).is_none());
    }
}
