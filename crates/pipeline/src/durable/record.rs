//! The write-ahead log's record of one accepted message: everything needed to process it
//! again exactly as the first time (source, topic, bytes, the clock it was processed at)
//! and to recognise the broker sending it again (MQTT duplicate flag, Kafka offset).
//!
//! Operator actions that change engine state (acknowledge, resolve by hand) are logged too,
//! as [`OperatorAction`] records, and so are exercise commands (a drill's start, injected
//! readings, end: `3u8` · JSON), so a crash loses none of them either.
//!
//! Input layout (version 1): `1u8` · `source: u16` · `now: i64` · origin (`0` none, `1` MQTT +
//! `dup: u8`, `2` Kafka + `partition: i32` + `offset: i64`) · `topic_len: u32` · topic ·
//! payload (the rest). Integers little-endian.

use std::borrow::Cow;

/// Where a message came from, as far as redelivery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Not acknowledged to anyone (QoS 0).
    None,
    /// MQTT QoS 1; `dup` is the packet's duplicate flag (set on a redelivery).
    Mqtt {
        /// The DUP flag.
        dup: bool,
        /// The connection of the session it came on (1, 2, … in a process; 0 for a
        /// record read back from the log: an earlier process). Not written to the log.
        connection: u32,
    },
    /// A Kafka partition and offset.
    Kafka {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord<'a> {
    /// Index of the source in the pipeline file.
    pub source: u16,
    /// The clock (epoch ms) the message was processed at.
    pub now: i64,
    /// Where it came from.
    pub origin: Origin,
    /// Topic.
    pub topic: Cow<'a, str>,
    /// The bytes.
    pub payload: Cow<'a, [u8]>,
}

/// A log record that is not an input record of this version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("write-ahead log record unreadable: {0}")]
pub struct RecordError(pub &'static str);

const VERSION: u8 = 1;
const OPERATOR: u8 = 2;
const EXERCISE: u8 = 3;

/// An operator's action on the engine, logged before it is applied and answered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OperatorAction {
    /// An acknowledgement of a firing alert.
    Acknowledge {
        /// Alert id.
        id: String,
        /// Who, when, why.
        ack: watchfloor_engine::Acknowledgement,
    },
    /// A firing alert resolved by hand.
    Resolve {
        /// Alert id.
        id: String,
        /// When, epoch ms.
        at: i64,
    },
    /// A firing alert's severity raised by hand (a playbook's escalation).
    Raise {
        /// Alert id.
        id: String,
        /// To this.
        severity: watchfloor_model::Severity,
        /// When, epoch ms.
        at: i64,
    },
}

impl OperatorAction {
    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(OPERATOR);
        serde_json::to_writer(out, self).expect("an operator action serialises");
    }
}

/// Any record of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord<'a> {
    /// A message from a source.
    Input(InputRecord<'a>),
    /// An operator's action.
    Operator(OperatorAction),
    /// An exercise command (start, injected readings, end).
    Exercise(crate::exercise::ExerciseRecord),
}

impl crate::exercise::ExerciseRecord {
    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(EXERCISE);
        serde_json::to_writer(out, self).expect("an exercise record serialises");
    }
}

impl LogRecord<'_> {
    /// Reads any record back.
    pub fn decode(bytes: &[u8]) -> Result<LogRecord<'_>, RecordError> {
        match bytes.first() {
            Some(&OPERATOR) => serde_json::from_slice(&bytes[1..])
                .map(LogRecord::Operator)
                .map_err(|_| RecordError("operator action unreadable")),
            Some(&EXERCISE) => serde_json::from_slice(&bytes[1..])
                .map(LogRecord::Exercise)
                .map_err(|_| RecordError("exercise record unreadable")),
            _ => InputRecord::decode(bytes).map(LogRecord::Input),
        }
    }
}

impl InputRecord<'_> {
    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.source.to_le_bytes());
        out.extend_from_slice(&self.now.to_le_bytes());
        match self.origin {
            Origin::None => out.push(0),
            Origin::Mqtt { dup, .. } => {
                out.push(1);
                out.push(u8::from(dup));
            }
            Origin::Kafka { partition, offset } => {
                out.push(2);
                out.extend_from_slice(&partition.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.topic.len() as u32).to_le_bytes());
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// Reads a record back (borrowing from `bytes`).
    pub fn decode(bytes: &[u8]) -> Result<InputRecord<'_>, RecordError> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != VERSION {
            return Err(RecordError("unknown record version"));
        }
        let source = u16::from_le_bytes(r.array()?);
        let now = i64::from_le_bytes(r.array()?);
        let origin = match r.take(1)?[0] {
            0 => Origin::None,
            1 => Origin::Mqtt {
                dup: r.take(1)?[0] != 0,
                connection: 0,
            },
            2 => Origin::Kafka {
                partition: i32::from_le_bytes(r.array()?),
                offset: i64::from_le_bytes(r.array()?),
            },
            _ => return Err(RecordError("unknown origin")),
        };
        let topic_len = u32::from_le_bytes(r.array()?) as usize;
        let topic =
            std::str::from_utf8(r.take(topic_len)?).map_err(|_| RecordError("topic not UTF-8"))?;
        Ok(InputRecord {
            source,
            now,
            origin,
            topic: Cow::Borrowed(topic),
            payload: Cow::Borrowed(r.0),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError("record cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_origin_round_trips() {
        for origin in [
            Origin::None,
            Origin::Mqtt {
                dup: true,
                connection: 0,
            },
            Origin::Kafka {
                partition: 3,
                offset: 1 << 40,
            },
        ] {
            let record = InputRecord {
                source: 7,
                now: 1_790_000_000_123,
                origin,
                topic: "ioc/air/CT-01/telemetry".into(),
                payload: Cow::Borrowed(&[0xff, 0, b'{']),
            };
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(InputRecord::decode(&bytes).unwrap(), record);
            assert!(InputRecord::decode(&bytes[..10]).is_err());
        }
        assert!(InputRecord::decode(&[2]).is_err());
    }

    #[test]
    fn operator_actions_round_trip() {
        let action = OperatorAction::Acknowledge {
            id: "01ca561cd9289e63".into(),
            ack: watchfloor_engine::Acknowledgement {
                by: "op-1".into(),
                at: 42,
                note: Some("đang xử lý".into()),
            },
        };
        let mut bytes = Vec::new();
        action.encode(&mut bytes);
        assert_eq!(
            LogRecord::decode(&bytes).unwrap(),
            LogRecord::Operator(action)
        );
        assert!(LogRecord::decode(&[2, b'{']).is_err());
    }
}
