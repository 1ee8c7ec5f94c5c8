//! The one JSON envelope every producer sends, and its validating decoder.
//!
//! A reading: `{"source","kind","ts","values":{metric:number},"units"?,"status"?,"lat"?,"lon"?}`.
//! A camera event: `{"source","kind":"camera","ts","event","confidence","lat"?,"lon"?,"attrs"?}`.
//! See `docs/telemetry.md` for examples.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aliases::canonical_metric;
use crate::rejection::Rejection;
use crate::time::{parse_timestamp_value, EpochMillis};
use crate::units::to_canonical;

/// What produced an event; rules select on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Automatic industrial wastewater discharge station.
    Discharge,
    /// Ambient air-quality station.
    Air,
    /// Hydrology station measuring river or canal water level.
    WaterLevel,
    /// Surface water-quality station.
    WaterQuality,
    /// Rain gauge.
    Rainfall,
    /// Traffic loop or radar sensor.
    Traffic,
    /// Weather station.
    Weather,
    /// Stack emission station.
    Emission,
    /// AI camera event.
    Camera,
    /// An indicator value pushed by another system (a department's own software): each
    /// value is an indicator id (`indicators/*.yaml`, `from: pushed`), its zone the
    /// envelope's `zone` (or the whole city when absent).
    Indicator,
}

impl Kind {
    /// Every kind, in index order.
    pub const ALL: [Kind; 10] = [
        Kind::Discharge,
        Kind::Air,
        Kind::WaterLevel,
        Kind::WaterQuality,
        Kind::Rainfall,
        Kind::Traffic,
        Kind::Weather,
        Kind::Emission,
        Kind::Camera,
        Kind::Indicator,
    ];

    /// The kind's name as written in envelopes and rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Discharge => "discharge",
            Kind::Air => "air",
            Kind::WaterLevel => "water_level",
            Kind::WaterQuality => "water_quality",
            Kind::Rainfall => "rainfall",
            Kind::Traffic => "traffic",
            Kind::Weather => "weather",
            Kind::Emission => "emission",
            Kind::Camera => "camera",
            Kind::Indicator => "indicator",
        }
    }

    /// Parses a kind name; `None` for unknown kinds.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Dense index of the kind, for per-kind tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Instrument status reported by an automatic monitoring station (Circular 10/2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StationStatus {
    /// `00`: measuring normally.
    #[serde(rename = "00")]
    Normal,
    /// `01`: calibrating; values are not valid measurements.
    #[serde(rename = "01")]
    Calibrating,
    /// `02`: instrument error.
    #[serde(rename = "02")]
    Error,
}

impl StationStatus {
    /// Parses `00`, `01` or `02`.
    pub fn parse(code: &str) -> Option<StationStatus> {
        match code {
            "00" => Some(StationStatus::Normal),
            "01" => Some(StationStatus::Calibrating),
            "02" => Some(StationStatus::Error),
            _ => None,
        }
    }

    /// The two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            StationStatus::Normal => "00",
            StationStatus::Calibrating => "01",
            StationStatus::Error => "02",
        }
    }
}

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude in degrees, −90..90.
    pub lat: f64,
    /// Longitude in degrees, −180..180.
    pub lon: f64,
}

impl Location {
    /// Great-circle (haversine) distance to `other`, in metres.
    pub fn distance_m(&self, other: &Location) -> f64 {
        let (lat1, lon1) = (self.lat.to_radians(), self.lon.to_radians());
        let (lat2, lon2) = (other.lat.to_radians(), other.lon.to_radians());
        let h = ((lat2 - lat1) / 2.0).sin().powi(2)
            + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
        2.0 * 6_371_000.0 * h.sqrt().asin()
    }
}

/// A validated telemetry event: a station reading or a camera event.
/// Values are in the metric's canonical unit (see [`crate::canonical_unit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Station, sensor or camera id.
    pub source: String,
    /// What produced it.
    pub kind: Kind,
    /// Event time, epoch milliseconds.
    pub ts: EpochMillis,
    /// Metric name → value. A camera event carries `confidence` here.
    pub values: Vec<(String, f64)>,
    /// Instrument status; `Normal` when the producer sent none.
    pub status: StationStatus,
    /// Where it happened, when known.
    pub location: Option<Location>,
    /// For camera events: what the camera detected (`congestion`, `fire_smoke`, …).
    pub camera_event: Option<String>,
    /// Free attributes (camera detail, lane, plate…), kept as sent.
    pub attrs: Map<String, Value>,
    /// Ward or zone the event belongs to, once known (sent, or assigned by enrichment).
    pub zone: Option<String>,
}

impl Event {
    /// The value of `metric`, if the event carries it.
    #[inline]
    pub fn value(&self, metric: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(name, _)| name == metric)
            .map(|(_, v)| *v)
    }

    /// A string form of attribute `name` (strings as they are, other JSON as text).
    pub fn attr_text(&self, name: &str) -> Option<String> {
        self.attrs.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// Limits the decoder enforces. Defaults suit field stations on a city network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted payload, in bytes.
    pub max_payload_bytes: usize,
    /// How far ahead of the clock an event time may be, in milliseconds.
    pub max_future_ms: i64,
    /// Most metrics in one reading.
    pub max_values: usize,
    /// Longest source id, in bytes.
    pub max_source_len: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_payload_bytes: 64 * 1024,
            max_future_ms: 5 * 60 * 1000,
            max_values: 256,
            max_source_len: 128,
        }
    }
}

/// Decodes and validates one JSON envelope.
///
/// `now` is the clock used for the future-timestamp check (wall clock live, the replay
/// clock in replay); `None` skips that check.
pub fn decode_envelope(
    bytes: &[u8],
    now: Option<EpochMillis>,
    limits: &DecodeLimits,
) -> Result<Event, Rejection> {
    check_size(bytes, limits)?;
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| Rejection::MalformedJson(e.to_string()))?;
    event_from_value(value, now, limits)
}

/// Decodes a payload holding one envelope or a JSON array of envelopes.
/// A malformed or oversize payload yields a single rejection; otherwise one result per element.
pub fn decode_envelopes(
    bytes: &[u8],
    now: Option<EpochMillis>,
    limits: &DecodeLimits,
) -> Vec<Result<Event, Rejection>> {
    if let Err(e) = check_size(bytes, limits) {
        return vec![Err(e)];
    }
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) => vec![Err(Rejection::MalformedJson(e.to_string()))],
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|item| event_from_value(item, now, limits))
            .collect(),
        Ok(single) => vec![event_from_value(single, now, limits)],
    }
}

fn check_size(bytes: &[u8], limits: &DecodeLimits) -> Result<(), Rejection> {
    if bytes.len() > limits.max_payload_bytes {
        return Err(Rejection::Oversize {
            size: bytes.len(),
            limit: limits.max_payload_bytes,
        });
    }
    Ok(())
}

fn take_string(obj: &mut Map<String, Value>, field: &'static str) -> Result<String, Rejection> {
    match obj.remove(field) {
        None | Some(Value::Null) => Err(Rejection::MissingField(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Rejection::WrongType {
            field: field.to_string(),
            expected: "a string",
        }),
    }
}

fn number_of(metric: &str, value: &Value) -> Result<f64, Rejection> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(Rejection::NonFinite {
                metric: metric.to_string(),
            }),
        },
        Value::String(s)
            if matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "nan" | "inf" | "-inf" | "infinity" | "-infinity" | "+infinity"
            ) =>
        {
            Err(Rejection::NonFinite {
                metric: metric.to_string(),
            })
        }
        _ => Err(Rejection::NotANumber {
            metric: metric.to_string(),
        }),
    }
}

fn event_from_value(
    value: Value,
    now: Option<EpochMillis>,
    limits: &DecodeLimits,
) -> Result<Event, Rejection> {
    let Value::Object(mut obj) = value else {
        return Err(Rejection::NotAnObject);
    };
    let source = take_string(&mut obj, "source")?;
    if source.trim().is_empty() {
        return Err(Rejection::InvalidField {
            field: "source",
            reason: "empty",
        });
    }
    if source.len() > limits.max_source_len {
        return Err(Rejection::InvalidField {
            field: "source",
            reason: "too long",
        });
    }
    let kind_name = take_string(&mut obj, "kind")?;
    let kind = Kind::parse(&kind_name).ok_or(Rejection::UnknownKind(kind_name))?;
    let ts_value = obj.remove("ts").ok_or(Rejection::MissingField("ts"))?;
    let ts = parse_timestamp_value(&ts_value)
        .ok_or_else(|| Rejection::InvalidTimestamp(ts_value.to_string()))?;
    if let Some(now) = now {
        let ahead = ts - now;
        if ahead > limits.max_future_ms {
            return Err(Rejection::FutureTimestamp {
                ts_ms: ts,
                ahead_ms: ahead,
                limit_ms: limits.max_future_ms,
            });
        }
    }
    let status = match obj.remove("status") {
        None | Some(Value::Null) => StationStatus::Normal,
        Some(Value::String(code)) => {
            StationStatus::parse(&code).ok_or(Rejection::UnknownStatus(code))?
        }
        Some(Value::Number(n)) => StationStatus::parse(&format!("{n:0>2}"))
            .ok_or_else(|| Rejection::UnknownStatus(n.to_string()))?,
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "status".into(),
                expected: "a string `00`, `01` or `02`",
            })
        }
    };
    let location = location_of(&mut obj)?;
    let zone = match obj.remove("zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(z)) => Some(z),
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "zone".into(),
                expected: "a string",
            })
        }
    };
    let attrs = match obj.remove("attrs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "attrs".into(),
                expected: "an object",
            })
        }
    };

    let (values, camera_event) = if kind == Kind::Camera {
        let event = take_string(&mut obj, "event")?;
        let confidence = match obj.remove("confidence") {
            None | Some(Value::Null) => return Err(Rejection::MissingField("confidence")),
            Some(v) => number_of("confidence", &v)?,
        };
        if !(0.0..=1.0).contains(&confidence) {
            return Err(Rejection::ConfidenceOutOfRange(confidence));
        }
        (vec![("confidence".to_string(), confidence)], Some(event))
    } else {
        (reading_values(&mut obj, limits)?, None)
    };

    Ok(Event {
        source,
        kind,
        ts,
        values,
        status,
        location,
        camera_event,
        attrs,
        zone,
    })
}

fn reading_values(
    obj: &mut Map<String, Value>,
    limits: &DecodeLimits,
) -> Result<Vec<(String, f64)>, Rejection> {
    let raw = match obj.remove("values") {
        None | Some(Value::Null) => return Err(Rejection::MissingField("values")),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "values".into(),
                expected: "an object of metric → number",
            })
        }
    };
    if raw.is_empty() {
        return Err(Rejection::EmptyValues);
    }
    if raw.len() > limits.max_values {
        return Err(Rejection::InvalidField {
            field: "values",
            reason: "too many metrics",
        });
    }
    let units = match obj.remove("units") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Rejection::WrongType {
                field: "units".into(),
                expected: "an object of metric → unit",
            })
        }
    };
    let mut values: Vec<(String, f64)> = Vec::with_capacity(raw.len());
    for (sent_name, value) in raw {
        let mut number = number_of(&sent_name, &value)?;
        let (canonical, factor) = canonical_metric(&sent_name);
        let metric = canonical.into_owned();
        number *= factor;
        if let Some(unit) = units.get(&sent_name).or_else(|| units.get(&metric)) {
            let Value::String(unit) = unit else {
                return Err(Rejection::WrongType {
                    field: format!("units.{metric}"),
                    expected: "a string",
                });
            };
            number =
                to_canonical(&metric, unit, number).map_err(|expected| Rejection::WrongUnit {
                    metric: metric.clone(),
                    unit: unit.clone(),
                    expected,
                })?;
        }
        if values.iter().any(|(name, _)| *name == metric) {
            return Err(Rejection::InvalidField {
                field: "values",
                reason: "the same metric twice (under two names)",
            });
        }
        values.push((metric, number));
    }
    Ok(values)
}

fn location_of(obj: &mut Map<String, Value>) -> Result<Option<Location>, Rejection> {
    let lat = obj.remove("lat").filter(|v| !v.is_null());
    let lon = obj.remove("lon").filter(|v| !v.is_null());
    match (lat, lon) {
        (None, None) => Ok(None),
        (Some(lat), Some(lon)) => {
            let (Some(lat), Some(lon)) = (lat.as_f64(), lon.as_f64()) else {
                return Err(Rejection::InvalidLocation("lat/lon must be numbers".into()));
            };
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(Rejection::InvalidLocation(format!(
                    "({lat}, {lon}) is out of range"
                )));
            }
            Ok(Some(Location { lat, lon }))
        }
        _ => Err(Rejection::InvalidLocation(
            "lat and lon must come together".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_between_locations() {
        let a = Location {
            lat: 10.0,
            lon: 105.7,
        };
        let b = Location {
            lat: 11.0,
            lon: 105.7,
        };
        // One degree of latitude on a 6,371 km sphere: 111.195 km.
        assert!((a.distance_m(&b) - 111_194.9).abs() < 1.0);
        assert_eq!(a.distance_m(&a), 0.0);
    }

    const NOW: i64 = 1_795_000_000_000;

    fn decode(text: &str) -> Result<Event, Rejection> {
        decode_envelope(text.as_bytes(), Some(NOW), &DecodeLimits::default())
    }

    #[test]
    fn decodes_a_reading_with_units_and_status() {
        let e = decode(
            r#"{"source":"CT-KCN-01","kind":"discharge","ts":"2026-11-17T08:00:00+07:00",
               "values":{"cod":82.5,"temperature":95},"units":{"temperature":"°F"},
               "status":"01","lat":10.03,"lon":105.78}"#,
        )
        .unwrap();
        assert_eq!(e.kind, Kind::Discharge);
        assert_eq!(e.status, StationStatus::Calibrating);
        assert_eq!(e.value("cod"), Some(82.5));
        assert!((e.value("temperature").unwrap() - 35.0).abs() < 1e-9);
        assert_eq!(e.location.unwrap().lat, 10.03);
    }

    #[test]
    fn decodes_a_camera_event() {
        let e = decode(
            r#"{"source":"CAM-7","kind":"camera","ts":1795000000000,"event":"fire_smoke",
               "confidence":0.91,"attrs":{"plate":"65A-123.45"}}"#,
        )
        .unwrap();
        assert_eq!(e.camera_event.as_deref(), Some("fire_smoke"));
        assert_eq!(e.value("confidence"), Some(0.91));
        assert_eq!(e.attr_text("plate").as_deref(), Some("65A-123.45"));
    }

    #[test]
    fn every_bad_input_has_its_own_reason() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "malformed_json"),
            ("[1,2]", "not_an_object"),
            (
                r#"{"kind":"air","ts":1795000000000,"values":{"pm25":1}}"#,
                "missing_field",
            ),
            (
                r#"{"source":5,"kind":"air","ts":1795000000000,"values":{"pm25":1}}"#,
                "wrong_type",
            ),
            (
                r#"{"source":"a","kind":"air","ts":1795000000000,"values":{"pm25":"high"}}"#,
                "not_a_number",
            ),
            (
                r#"{"source":"a","kind":"air","ts":1795000000000,"values":{"pm25":"NaN"}}"#,
                "non_finite",
            ),
            (
                r#"{"source":"a","kind":"air","ts":"soon","values":{"pm25":1}}"#,
                "invalid_timestamp",
            ),
            (
                r#"{"source":"a","kind":"air","ts":"2031-01-01T00:00:00Z","values":{"pm25":1}}"#,
                "future_timestamp",
            ),
            (
                r#"{"source":"a","kind":"volcano","ts":1795000000000,"values":{"x":1}}"#,
                "unknown_kind",
            ),
            (
                r#"{"source":"a","kind":"air","ts":1795000000000,"values":{"pm25":1},"status":"07"}"#,
                "unknown_status",
            ),
            (
                r#"{"source":"a","kind":"air","ts":1795000000000,"values":{}}"#,
                "empty_values",
            ),
            (
                r#"{"source":"a","kind":"camera","ts":1795000000000,"event":"crowd","confidence":3}"#,
                "confidence_out_of_range",
            ),
            (
                r#"{"source":"a","kind":"air","ts":1795000000000,"values":{"pm25":1},"lat":91,"lon":0}"#,
                "invalid_location",
            ),
            (
                r#"{"source":"a","kind":"air","ts":1795000000000,"values":{"pm25":1},"units":{"pm25":"ppm"}}"#,
                "wrong_unit",
            ),
            (
                r#"{"source":"","kind":"air","ts":1795000000000,"values":{"pm25":1}}"#,
                "invalid_field",
            ),
        ];
        for (text, code) in cases {
            let err = decode(text).expect_err(text);
            assert_eq!(err.code(), *code, "{text}: {err}");
        }
    }

    #[test]
    fn huge_payloads_are_refused_before_parsing() {
        let big = vec![b' '; 10 * 1024 * 1024];
        let err = decode_envelope(&big, None, &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.code(), "oversize");
    }

    #[test]
    fn arrays_decode_element_by_element() {
        let out = decode_envelopes(
            br#"[{"source":"a","kind":"air","ts":1795000000000,"values":{"pm25":1}}, {"source":"b"}]"#,
            Some(NOW),
            &DecodeLimits::default(),
        );
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().code(), "missing_field");
    }
}
