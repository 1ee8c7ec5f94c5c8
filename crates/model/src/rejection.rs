//! Why an envelope was refused: one typed reason per rejection, with a stable code for
//! counters and dead-letter records.

use thiserror::Error;

/// The reason a message was not accepted. Every variant has a stable [`Rejection::code`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rejection {
    /// The payload is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    Oversize { size: usize, limit: usize },
    /// The bytes are not valid JSON (or not UTF-8).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The JSON is valid but not an object.
    #[error("envelope must be a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    /// A metric value is not a number (a string, null, an object…).
    #[error("value of `{metric}` is not a number")]
    NotANumber { metric: String },
    /// A metric value is NaN or infinite (sent as a string such as "NaN" or out of range).
    #[error("value of `{metric}` is NaN or infinite")]
    NonFinite { metric: String },
    /// `ts` is neither RFC 3339 nor epoch milliseconds, or outside 2000–2100.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// `ts` is further in the future than the allowed clock skew.
    #[error("timestamp {ts_ms} is {ahead_ms} ms ahead of the clock (limit {limit_ms} ms)")]
    FutureTimestamp {
        ts_ms: i64,
        ahead_ms: i64,
        limit_ms: i64,
    },
    /// `kind` is not one Watchfloor knows.
    #[error("unknown kind `{0}`")]
    UnknownKind(String),
    /// `status` is not `00`, `01` or `02`.
    #[error("unknown station status `{0}`")]
    UnknownStatus(String),
    /// A reading carries no values.
    #[error("reading has no values")]
    EmptyValues,
    /// Camera confidence outside 0..=1.
    #[error("confidence {0} is outside 0..1")]
    ConfidenceOutOfRange(f64),
    /// Latitude/longitude missing its pair or out of range.
    #[error("invalid location: {0}")]
    InvalidLocation(String),
    /// A unit that cannot be converted to the metric's canonical unit.
    #[error("unit `{unit}` is not valid for `{metric}` (expected {expected})")]
    WrongUnit {
        metric: String,
        unit: String,
        expected: &'static str,
    },
    /// An empty or over-long source id, or a field too long to be real.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    /// A line of a station data file (Circular 10/2021) that does not parse.
    #[error("line {line}: {reason}")]
    MalformedLine { line: usize, reason: String },
    /// Event time is behind the watermark by more than the allowed lateness.
    #[error("late event: {behind_ms} ms behind the watermark, allowed lateness {allowed_ms} ms")]
    Late { behind_ms: i64, allowed_ms: i64 },
    /// The same source sent the same kind of event with the same timestamp again.
    #[error("duplicate event: same source, kind and timestamp as an earlier one")]
    Duplicate,
    /// The station is not in the city's station registry.
    #[error("station `{0}` is not in the station registry")]
    UnknownStation(String),
    /// The envelope names another station than the topic it came on (a source bound to
    /// its topic: `source_topic_level`).
    #[error("station `{sent}` on the topic of station `{topic}`")]
    TopicMismatch { sent: String, topic: String },
    /// The station is registered as another kind of station.
    #[error("station `{station}` is registered as `{registered}`, not `{sent}`")]
    KindMismatch {
        station: String,
        registered: &'static str,
        sent: &'static str,
    },
}

impl Rejection {
    /// Stable snake_case code for counters, metrics labels and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Oversize { .. } => "oversize",
            Rejection::MalformedJson(_) => "malformed_json",
            Rejection::NotAnObject => "not_an_object",
            Rejection::MissingField(_) => "missing_field",
            Rejection::WrongType { .. } => "wrong_type",
            Rejection::NotANumber { .. } => "not_a_number",
            Rejection::NonFinite { .. } => "non_finite",
            Rejection::InvalidTimestamp(_) => "invalid_timestamp",
            Rejection::FutureTimestamp { .. } => "future_timestamp",
            Rejection::UnknownKind(_) => "unknown_kind",
            Rejection::UnknownStatus(_) => "unknown_status",
            Rejection::EmptyValues => "empty_values",
            Rejection::ConfidenceOutOfRange(_) => "confidence_out_of_range",
            Rejection::InvalidLocation(_) => "invalid_location",
            Rejection::WrongUnit { .. } => "wrong_unit",
            Rejection::InvalidField { .. } => "invalid_field",
            Rejection::MalformedLine { .. } => "malformed_line",
            Rejection::Late { .. } => "late",
            Rejection::Duplicate => "duplicate",
            Rejection::UnknownStation(_) => "unknown_station",
            Rejection::KindMismatch { .. } => "kind_mismatch",
            Rejection::TopicMismatch { .. } => "topic_mismatch",
        }
    }

    /// Every code, in a fixed order: for pre-registering counters at zero.
    pub const ALL_CODES: [&'static str; 22] = [
        "oversize",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
        "not_a_number",
        "non_finite",
        "invalid_timestamp",
        "future_timestamp",
        "unknown_kind",
        "unknown_status",
        "empty_values",
        "confidence_out_of_range",
        "invalid_location",
        "wrong_unit",
        "invalid_field",
        "malformed_line",
        "late",
        "duplicate",
        "unknown_station",
        "kind_mismatch",
        "topic_mismatch",
    ];
}
