//! Payload decoding per source format: the JSON envelope, or Circular 10/2021 station lines
//! whose station id is a topic level.

use watchfloor_model::{
    decode_envelopes, decode_tt10, DecodeLimits, Event, Kind, Rejection, Tt10Context,
};

use crate::config::PayloadFormat;

/// A source's decoder, resolved once from its configuration.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// JSON envelopes; with `source_topic_level`, each one's `source` must be that level of
    /// the topic it came on.
    Json {
        /// Topic level (0-based) the envelope's `source` must equal.
        source_topic_level: Option<usize>,
    },
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
            PayloadFormat::Json { source_topic_level } => Decoder::Json {
                source_topic_level: *source_topic_level,
            },
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
            Decoder::Json {
                source_topic_level: None,
            } => decode_envelopes(payload, now, limits),
            Decoder::Json {
                source_topic_level: Some(level),
            } => {
                let bound = topic.split('/').nth(*level).unwrap_or_default();
                decode_envelopes(payload, now, limits)
                    .into_iter()
                    .map(|r| {
                        r.and_then(|event| {
                            if event.source == bound {
                                Ok(event)
                            } else {
                                Err(Rejection::TopicMismatch {
                                    sent: event.source,
                                    topic: bound.to_string(),
                                })
                            }
                        })
                    })
                    .collect()
            }
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
            Decoder::from_format(&PayloadFormat::Json {
                source_topic_level: None
            }),
            Decoder::Json { .. }
        ));
    }

    #[test]
    fn a_bound_source_refuses_a_reading_for_another_stations_topic() {
        let d = Decoder::from_format(&PayloadFormat::Json {
            source_topic_level: Some(2),
        });
        let reading = |source: &str| {
            format!(
                r#"{{"source":"{source}","kind":"air","ts":1795712400000,"values":{{"pm25":12.0}}}}"#
            )
        };
        let limits = DecodeLimits::default();
        let own = d.decode(
            "ioc/air/CT-AIR-01/telemetry",
            reading("CT-AIR-01").as_bytes(),
            None,
            &limits,
        );
        assert!(own[0].is_ok(), "{own:?}");
        let other = d.decode(
            "ioc/air/CT-AIR-02/telemetry",
            reading("CT-AIR-01").as_bytes(),
            None,
            &limits,
        );
        let e = other[0].as_ref().unwrap_err();
        assert_eq!(e.code(), "topic_mismatch");
        assert!(e.to_string().contains("CT-AIR-02"), "{e}");
        // An array on one topic: each element checked.
        let both = format!("[{},{}]", reading("CT-AIR-01"), reading("CT-AIR-02"));
        let out = d.decode(
            "ioc/air/CT-AIR-01/telemetry",
            both.as_bytes(),
            None,
            &limits,
        );
        assert!(out[0].is_ok() && out[1].as_ref().is_err_and(|e| e.code() == "topic_mismatch"));
    }
}
