//! Metric names from other vocabularies (FIWARE Smart Data Models, Circular 10/2021
//! station symbols, common spellings) mapped onto Watchfloor's canonical names.

use std::borrow::Cow;

/// `(alias, canonical name, factor to the canonical scale)`.
const ALIASES: &[(&str, &str, f64)] = &[
    // Air quality (FIWARE AirQualityObserved and older formula-style names).
    ("PM2.5", "pm25", 1.0),
    ("PM2,5", "pm25", 1.0),
    ("pm2.5", "pm25", 1.0),
    ("pm2_5", "pm25", 1.0),
    ("PM10", "pm10", 1.0),
    ("PM1", "pm1", 1.0),
    ("NO2", "no2", 1.0),
    ("NO", "no", 1.0),
    ("NOx", "nox", 1.0),
    ("SO2", "so2", 1.0),
    ("CO", "co", 1.0),
    ("CO2", "co2", 1.0),
    ("O3", "o3", 1.0),
    ("airQualityIndex", "aqi", 1.0),
    // FIWARE gives relative humidity as 0–1; Watchfloor uses %.
    ("relativeHumidity", "humidity", 100.0),
    ("windSpeed", "wind_speed", 1.0),
    ("windDirection", "wind_direction", 1.0),
    ("precipitation", "rainfall", 1.0),
    // Water and wastewater (FIWARE WaterQualityObserved, TT10 symbols).
    ("pH", "ph", 1.0),
    ("PH", "ph", 1.0),
    ("COD", "cod", 1.0),
    ("BOD5", "bod5", 1.0),
    ("bod", "bod5", 1.0),
    ("TSS", "tss", 1.0),
    ("NH4", "nh4", 1.0),
    ("NH4+", "nh4", 1.0),
    ("NO3", "no3", 1.0),
    ("PO4", "po4", 1.0),
    ("TN", "tn", 1.0),
    ("TP", "tp", 1.0),
    ("TOC", "toc", 1.0),
    ("Temp", "temperature", 1.0),
    ("temp", "temperature", 1.0),
    ("Flow", "flow", 1.0),
    ("Color", "color", 1.0),
    ("waterLevel", "water_level", 1.0),
    // Traffic (FIWARE TrafficFlowObserved).
    ("intensity", "volume", 1.0),
    ("averageVehicleSpeed", "speed", 1.0),
];

/// The canonical name of `metric`, and the factor that brings its values to the canonical
/// scale (1 for almost every alias).
pub fn canonical_metric(metric: &str) -> (Cow<'_, str>, f64) {
    match ALIASES.iter().find(|(alias, _, _)| *alias == metric) {
        Some((_, canonical, factor)) => (Cow::Borrowed(canonical), *factor),
        None => (Cow::Borrowed(metric), 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_metric;

    #[test]
    fn maps_fiware_and_station_names() {
        assert_eq!(canonical_metric("PM2,5").0, "pm25");
        assert_eq!(canonical_metric("averageVehicleSpeed").0, "speed");
        assert_eq!(
            canonical_metric("relativeHumidity"),
            ("humidity".into(), 100.0)
        );
        assert_eq!(canonical_metric("cod"), ("cod".into(), 1.0));
        assert_eq!(canonical_metric("turbidity").0, "turbidity");
    }
}
