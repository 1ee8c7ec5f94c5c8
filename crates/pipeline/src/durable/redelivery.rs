//! Recognising input the broker sends again after it was already made durable: a message
//! that is in the write-ahead log, but whose acknowledgement never reached the broker
//! (a crash, or a reconnect, between the log's fsync and the PUBACK or offset commit).
//!
//! - Kafka: exact. The next offset per (source, topic, partition) that the log or the
//!   checkpoint already holds; anything below it is a redelivery.
//! - MQTT has no offsets. A message whose (source, topic, payload) digest is among the last
//!   `capacity` logged messages is a redelivery when it carries the DUP flag (MQTT 3.1.1
//!   §3.3.1.1), or when it was logged on an earlier connection of the session (a broker
//!   restored from its persistence resends without the flag; after a restart of Watchfloor
//!   every logged message is from an earlier connection). An identical message on the
//!   same connection without the flag is a station really sending a reading twice: it is
//!   processed and gets its `duplicate` dead letter.
//!
//! The digest memory holds the log's records from before the last checkpoint (the segment
//! the log keeps for this) and everything after it; it is bounded by `capacity`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use super::record::{InputRecord, Origin};

/// What the pipeline already made durable, to recognise it when it comes again.
#[derive(Debug)]
pub struct Redelivery {
    capacity: usize,
    order: VecDeque<u64>,
    /// Digest → (how many of the remembered messages have it, the connection of the last).
    digests: HashMap<u64, (u32, u32)>,
    kafka_next: BTreeMap<(u16, String, i32), i64>,
}

fn digest(source: u16, topic: &str, payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

impl Redelivery {
    /// Remembers up to `capacity` MQTT messages.
    pub fn new(capacity: usize) -> Redelivery {
        Redelivery {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            digests: HashMap::new(),
            kafka_next: BTreeMap::new(),
        }
    }

    /// Was this message made durable before (so it must not be processed again)?
    pub fn is_redelivered(&self, record: &InputRecord<'_>) -> bool {
        match record.origin {
            Origin::Kafka { partition, offset } => self
                .kafka_next
                .get(&(record.source, record.topic.to_string(), partition))
                .is_some_and(|next| offset < *next),
            Origin::Mqtt { dup, connection } => self
                .digests
                .get(&digest(record.source, &record.topic, &record.payload))
                .is_some_and(|(_, logged_on)| dup || *logged_on != connection),
            Origin::None => false,
        }
    }

    /// Notes a message made durable (appended to the log).
    pub fn remember(&mut self, record: &InputRecord<'_>) {
        match record.origin {
            Origin::Kafka { partition, offset } => {
                let next = self
                    .kafka_next
                    .entry((record.source, record.topic.to_string(), partition))
                    .or_insert(0);
                *next = (*next).max(offset + 1);
            }
            Origin::Mqtt { connection, .. } => {
                let d = digest(record.source, &record.topic, &record.payload);
                let entry = self.digests.entry(d).or_insert((0, connection));
                entry.0 += 1;
                entry.1 = connection;
                self.order.push_back(d);
                if self.order.len() > self.capacity {
                    let old = self.order.pop_front().expect("over capacity");
                    if let Some((n, _)) = self.digests.get_mut(&old) {
                        *n -= 1;
                        if *n == 0 {
                            self.digests.remove(&old);
                        }
                    }
                }
            }
            Origin::None => {}
        }
    }

    /// The Kafka positions, for the checkpoint (`kafka:<source>:<partition>:<topic>` →
    /// next offset; the topic last, since it may hold colons).
    pub fn positions(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.kafka_next
            .iter()
            .map(|((s, t, p), next)| (format!("kafka:{s}:{p}:{t}"), next.to_string()))
    }

    /// Takes the Kafka positions back from a checkpoint's map.
    pub fn restore_positions(&mut self, map: &BTreeMap<String, String>) {
        for (key, value) in map {
            let mut parts = key.splitn(4, ':');
            if let (Some("kafka"), Some(s), Some(p), Some(topic), Ok(next)) = (
                parts.next(),
                parts.next().and_then(|s| s.parse().ok()),
                parts.next().and_then(|p| p.parse().ok()),
                parts.next(),
                value.parse::<i64>(),
            ) {
                let entry = self
                    .kafka_next
                    .entry((s, topic.to_string(), p))
                    .or_insert(0);
                *entry = (*entry).max(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqtt(payload: &'static str, dup: bool) -> InputRecord<'static> {
        on(payload, dup, 1)
    }

    fn on(payload: &'static str, dup: bool, connection: u32) -> InputRecord<'static> {
        InputRecord {
            source: 0,
            now: 0,
            origin: Origin::Mqtt { dup, connection },
            topic: "t".into(),
            payload: payload.as_bytes().into(),
        }
    }

    fn kafka(partition: i32, offset: i64) -> InputRecord<'static> {
        InputRecord {
            source: 1,
            now: 0,
            origin: Origin::Kafka { partition, offset },
            topic: "t".into(),
            payload: b"x".as_slice().into(),
        }
    }

    #[test]
    fn an_mqtt_redelivery_is_recognised_only_with_the_dup_flag_and_within_capacity() {
        let mut r = Redelivery::new(2);
        r.remember(&mqtt("a", false));
        assert!(r.is_redelivered(&mqtt("a", true)));
        assert!(
            !r.is_redelivered(&mqtt("a", false)),
            "a station's own repeat"
        );
        assert!(!r.is_redelivered(&mqtt("b", true)));
        r.remember(&mqtt("b", false));
        r.remember(&mqtt("c", false));
        assert!(
            !r.is_redelivered(&mqtt("a", true)),
            "forgotten past capacity"
        );
        assert!(r.is_redelivered(&mqtt("b", true)));
    }

    #[test]
    fn an_mqtt_message_logged_on_an_earlier_connection_is_a_redelivery_without_the_flag() {
        let mut r = Redelivery::new(10);
        r.remember(&on("a", false, 1));
        assert!(
            !r.is_redelivered(&on("a", false, 1)),
            "same connection: the station's repeat"
        );
        assert!(
            r.is_redelivered(&on("a", false, 2)),
            "resent after a reconnect"
        );
        // Read back from the log after a restart (connection 0): any later copy.
        let mut restarted = Redelivery::new(10);
        restarted.remember(&on("b", false, 0));
        assert!(restarted.is_redelivered(&on("b", false, 1)));
    }

    #[test]
    fn kafka_offsets_below_the_logged_ones_are_redeliveries_and_survive_the_checkpoint() {
        let mut r = Redelivery::new(1);
        r.remember(&kafka(2, 10));
        assert!(r.is_redelivered(&kafka(2, 10)));
        assert!(!r.is_redelivered(&kafka(2, 11)));
        assert!(!r.is_redelivered(&kafka(3, 0)));
        let mut other_topic = kafka(2, 3);
        other_topic.topic = "ns:other".into();
        assert!(!r.is_redelivered(&other_topic), "offsets are per topic");
        r.remember(&other_topic);
        let map: BTreeMap<String, String> = r.positions().collect();
        assert_eq!(map["kafka:1:2:t"], "11");
        assert_eq!(map["kafka:1:2:ns:other"], "4");
        let mut back = Redelivery::new(1);
        back.restore_positions(&map);
        assert!(back.is_redelivered(&kafka(2, 10)));
        assert!(!back.is_redelivered(&kafka(2, 11)));
        assert!(back.is_redelivered(&other_topic));
    }
}
