//! Physical ranges of canonical metrics: a reading outside its metric's range cannot be a
//! measurement (a negative concentration, a pH of 19), so it is accepted but not *đúng*.
//! Ranges are what the physical quantity allows, not regulatory limits. Metrics not listed
//! (including camera confidences, already checked at decode) have no range.

/// The range of `metric` in its canonical unit (`docs/indicators.md` lists them).
pub fn physical_range(metric: &str) -> Option<(f64, f64)> {
    Some(match metric {
        "cod" | "bod5" | "tss" | "nh4" | "no3" | "po4" | "tn" | "tp" => (0.0, 100_000.0),
        "do" => (0.0, 50.0),
        "pm25" | "pm10" | "no2" | "so2" | "co" | "o3" => (0.0, 100_000.0),
        "temperature" | "temp" => (-20.0, 100.0),
        "flow" => (0.0, 1.0e6),
        "water_level" => (-20.0, 50.0),
        "speed" => (0.0, 300.0),
        "ph" => (0.0, 14.0),
        "occupancy" | "humidity" => (0.0, 100.0),
        "rainfall" => (0.0, 2_000.0),
        _ => return None,
    })
}

/// Whether every value of a reading is inside its metric's range.
pub fn in_range<'a>(values: impl IntoIterator<Item = &'a (String, f64)>) -> bool {
    values
        .into_iter()
        .all(|(metric, v)| physical_range(metric).is_none_or(|(lo, hi)| (lo..=hi).contains(v)))
}
