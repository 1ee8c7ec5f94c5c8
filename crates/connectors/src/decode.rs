//! Payload decoding per source format: the JSON envelope, or Circular 10/2021 station lines
//! whose station id is a topic level.

use watchfloor_model::{
    decode_envelopes, decode_tt10, DecodeLimits, Event, Kind, Rejection, Tt10Context,
};

use crate::config::PayloadFormat;

/// A source's decoder, resolved once from its configuration.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// JSON envelopes.
    Json,
    /// TT10 lines; station id from a topic level.
    Tt10 {
        /// Topic level (0-based) holding the station id.
        station_topic_level: usize,
        /// Kind of the stations.
        kind: Kind,
        /// Datalogger offset from UTC, seconds.
        utc_offset_seconds: i32,
    },
}

impl Decoder {
    /// The decoder for a configured format (the config was validated, so the kind parses).
    pub fn from_format(format: &PayloadFormat) -> Decoder {
        match format {
            PayloadFormat::Json => Decoder::Json,
            PayloadFormat::Tt10 {
                station_topic_level,
                kind,
                utc_offset_hours,
            } => Decoder::Tt10 {
                station_topic_level: *station_topic_level,
                kind: Kind::parse(kind).unwrap_or(Kind::Discharge),
                utc_offset_seconds: utc_offset_hours * 3600,
            },
        }
    }

    /// Decodes one payload received on `topic`.
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        now: Option<i64>,
        limits: &DecodeLimits,
    ) -> Vec<Result<Event, Rejection>> {
        match self {
            Decoder::Json => decode_envelopes(payload, now, limits),
            Decoder::Tt10 {
                station_topic_level,
                kind,
                utc_offset_seconds,
            } => {
                let Some(station) = topic
                    .split('/')
                    .nth(*station_topic_level)
                    .filter(|s| !s.is_empty())
                else {
                    return vec![Err(Rejection::InvalidField {
                        field: "topic",
                        reason: "no station id at the configured topic level",
                    })];
                };
                let ctx = Tt10Context {
                    station: station.to_string(),
                    kind: *kind,
                    utc_offset_seconds: *utc_offset_seconds,
                };
                decode_tt10(payload, &ctx, now, limits)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tt10_takes_the_station_from_the_topic() {
        let d = Decoder::Tt10 {
            station_topic_level: 2,
            kind: Kind::Discharge,
            utc_offset_seconds: 7 * 3600,
        };
        let out = d.decode(
            "ioc/tt10/CT-TN-01",
            b"COD\t171.5\tmg/l\t20261127103500\t00\n",
            None,
            &DecodeLimits::default(),
        );
        assert_eq!(out[0].as_ref().unwrap().source, "CT-TN-01");
        let out = d.decode(
            "ioc/tt10",
            b"COD\t1\tmg/l\t20261127103500\t00\n",
            None,
            &DecodeLimits::default(),
        );
        assert_eq!(out[0].as_ref().unwrap_err().code(), "invalid_field");
    }

    #[test]
    fn a_configured_tt10_format_reads_local_time_at_its_utc_offset() {
        let line = b"COD\t171.5\tmg/l\t20261127103500\t00\n";
        let ts = |hours: i32| {
            let d = Decoder::from_format(&PayloadFormat::Tt10 {
                station_topic_level: 2,
                kind: "discharge".into(),
                utc_offset_hours: hours,
            });
            d.decode("ioc/tt10/CT-TN-01", line, None, &DecodeLimits::default())[0]
                .as_ref()
                .unwrap()
                .ts
        };
        // 10:35 in Vietnam (UTC+7) is 03:35 UTC; at UTC+2, 08:35 UTC.
        assert_eq!(ts(7), 1_795_750_500_000, "2026-11-27T03:35:00Z");
        assert_eq!(ts(7), ts(0) - 7 * 3_600_000);
        assert_eq!(ts(2), ts(0) - 2 * 3_600_000);
        assert!(matches!(
            Decoder::from_format(&PayloadFormat::Json),
            Decoder::Json
        ));
    }
}
