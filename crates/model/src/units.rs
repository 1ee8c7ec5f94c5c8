//! Canonical units per metric, and the conversions Watchfloor accepts on the way in.
//!
//! Rules and limits are written in one unit per metric (the one in the Vietnamese
//! standards: mg/L for discharge, µg/m³ for air, metres for water level). A producer may
//! declare another unit in `units`; convertible ones are converted on decode, anything
//! else is rejected as `wrong_unit` rather than silently compared against the wrong limit.

/// How a declared unit maps onto the canonical one: `canonical = value * scale + offset`.
struct Conversion {
    unit: &'static str,
    scale: f64,
    offset: f64,
}

const fn conv(unit: &'static str, scale: f64, offset: f64) -> Conversion {
    Conversion {
        unit,
        scale,
        offset,
    }
}

const MG_PER_L: &[Conversion] = &[
    conv("mg/l", 1.0, 0.0),
    conv("g/m3", 1.0, 0.0),
    conv("ug/l", 0.001, 0.0),
    conv("µg/l", 0.001, 0.0),
];
const UG_PER_M3: &[Conversion] = &[
    conv("µg/m3", 1.0, 0.0),
    conv("ug/m3", 1.0, 0.0),
    conv("µg/m³", 1.0, 0.0),
    conv("mg/m3", 1000.0, 0.0),
    conv("mg/m³", 1000.0, 0.0),
];
const CELSIUS: &[Conversion] = &[
    conv("°c", 1.0, 0.0),
    conv("c", 1.0, 0.0),
    conv("oc", 1.0, 0.0),
    conv("degc", 1.0, 0.0),
    conv("k", 1.0, -273.15),
    conv("°f", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    conv("f", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
];
const M3_PER_H: &[Conversion] = &[
    conv("m3/h", 1.0, 0.0),
    conv("m³/h", 1.0, 0.0),
    conv("m3/s", 3600.0, 0.0),
    conv("l/s", 3.6, 0.0),
];
const METRES: &[Conversion] = &[
    conv("m", 1.0, 0.0),
    conv("cm", 0.01, 0.0),
    conv("mm", 0.001, 0.0),
];
const KM_PER_H: &[Conversion] = &[conv("km/h", 1.0, 0.0), conv("m/s", 3.6, 0.0)];
const PH: &[Conversion] = &[
    conv("ph", 1.0, 0.0),
    conv("", 1.0, 0.0),
    conv("-", 1.0, 0.0),
];
const PERCENT: &[Conversion] = &[
    conv("%", 1.0, 0.0),
    conv("ratio", 100.0, 0.0),
    conv("1", 100.0, 0.0),
];
const MM: &[Conversion] = &[conv("mm", 1.0, 0.0), conv("mm/h", 1.0, 0.0)];

/// The canonical unit of a known metric, and the conversions into it.
fn table(metric: &str) -> Option<(&'static str, &'static [Conversion])> {
    Some(match metric {
        "cod" | "bod5" | "tss" | "nh4" | "no3" | "po4" | "do" | "tn" | "tp" => ("mg/L", MG_PER_L),
        "pm25" | "pm10" | "no2" | "so2" | "co" | "o3" => ("µg/m³", UG_PER_M3),
        "temperature" | "temp" => ("°C", CELSIUS),
        "flow" => ("m3/h", M3_PER_H),
        "water_level" => ("m", METRES),
        "speed" => ("km/h", KM_PER_H),
        "ph" => ("pH", PH),
        "occupancy" | "humidity" => ("%", PERCENT),
        "rainfall" => ("mm", MM),
        _ => return None,
    })
}

/// The canonical unit of `metric`, if Watchfloor knows the metric.
pub fn canonical_unit(metric: &str) -> Option<&'static str> {
    table(metric).map(|(unit, _)| unit)
}

/// Converts `value` given in `unit` into the metric's canonical unit.
/// Unknown metrics pass through unchanged. `Err` carries the expected canonical unit.
pub(crate) fn to_canonical(metric: &str, unit: &str, value: f64) -> Result<f64, &'static str> {
    let Some((canonical, conversions)) = table(metric) else {
        return Ok(value);
    };
    let declared = unit.trim().to_lowercase();
    conversions
        .iter()
        .find(|c| c.unit == declared)
        .map(|c| value * c.scale + c.offset)
        .ok_or(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_units() {
        assert_eq!(to_canonical("cod", "mg/L", 80.0), Ok(80.0));
        assert_eq!(to_canonical("co", "mg/m3", 2.0), Ok(2000.0));
        assert_eq!(to_canonical("water_level", "cm", 250.0), Ok(2.5));
        let f = to_canonical("temperature", "°F", 212.0).unwrap();
        assert!((f - 100.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_wrong_units_and_passes_unknown_metrics() {
        assert_eq!(to_canonical("cod", "kg", 1.0), Err("mg/L"));
        assert_eq!(to_canonical("pm25", "ppm", 1.0), Err("µg/m³"));
        assert_eq!(to_canonical("vibration", "g", 3.0), Ok(3.0));
    }
}
