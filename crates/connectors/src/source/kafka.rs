//! The Kafka source (cargo feature `kafka`, librdkafka bundled by rdkafka): a consumer
//! group member feeding the pipeline's queue.
//!
//! At-least-once: the consumer stores a message's offset only after the alerts it caused
//! are acknowledged by every output (`enable.auto.offset.store=false`); stored offsets are
//! committed periodically and, before partitions are revoked in a rebalance, after the
//! messages already taken from those partitions have been processed. Scale-out is the
//! consumer group: more Watchfloor instances with the same `group_id` share the partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::mpsc;

use super::{enqueue, Ack, ChannelEvent, Inbound, SourceError};
use crate::stats::PipelineStats;

/// Watchfloor's defaults for a client, then the pipeline's own `options` over them.
pub(crate) fn client_config(
    defaults: &[(&str, &str)],
    options: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in options {
        config.set(key, value);
    }
    config
}

/// Messages taken from each partition and not yet acknowledged, so a rebalance can wait
/// for them before it commits and gives the partition away.
#[derive(Default)]
pub struct InFlight {
    counts: Mutex<HashMap<(String, i32), u64>>,
    drained: Condvar,
}

impl InFlight {
    fn taken(&self, topic: &str, partition: i32) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((topic.to_string(), partition)).or_insert(0) += 1;
        }
    }

    fn done(&self, topic: &str, partition: i32, messages: u64) {
        if let Ok(mut counts) = self.counts.lock() {
            if let Some(n) = counts.get_mut(&(topic.to_string(), partition)) {
                *n = n.saturating_sub(messages);
            }
            self.drained.notify_all();
        }
    }

    fn wait_drained(&self, partitions: &[(String, i32)], limit: Duration) -> bool {
        let Ok(counts) = self.counts.lock() else {
            return false;
        };
        let result = self.drained.wait_timeout_while(counts, limit, |counts| {
            partitions
                .iter()
                .any(|p| counts.get(p).copied().unwrap_or(0) > 0)
        });
        result.is_ok_and(|(_, timeout)| !timeout.timed_out())
    }
}

/// Commits what was processed before partitions are revoked.
pub struct GroupContext {
    in_flight: Arc<InFlight>,
    /// Index of the source, and where assignments and revocations are told to the engine
    /// (its per-partition watermarks).
    source: usize,
    channels: Option<mpsc::UnboundedSender<ChannelEvent>>,
}

impl GroupContext {
    fn tell(&self, partitions: &[(String, i32)], open: bool) {
        if let Some(channels) = &self.channels {
            for (_, partition) in partitions {
                let _ = channels.send(ChannelEvent {
                    source: self.source,
                    partition: *partition,
                    open,
                });
            }
        }
    }
}

impl ClientContext for GroupContext {
    /// librdkafka's own log lines, in Watchfloor's log (its `debug` setting adds more).
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as Level;
        match level {
            Level::Emerg | Level::Alert | Level::Critical | Level::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            Level::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            Level::Notice | Level::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            Level::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    /// Errors of the client as a whole (broker down, all brokers unreachable, …).
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            // Drain: let the engine finish what it already took from these partitions.
            if !self
                .in_flight
                .wait_drained(&partitions, Duration::from_secs(30))
            {
                tracing::warn!(
                    "rebalance: messages still in flight after 30 s; they will be redelivered"
                );
            }
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                // Nothing processed since the last commit: nothing to commit.
                Err(rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset,
                )) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "commit before rebalance failed; the new owner re-reads from the last commit")
                }
            }
            self.tell(&partitions, false);
            tracing::info!(?partitions, "partitions revoked after commit");
        } else if let Rebalance::Assign(list) = rebalance {
            let partitions: Vec<(String, i32)> = list
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            self.tell(&partitions, true);
            tracing::info!(?partitions, "partitions assigned");
        }
    }
}

/// Acknowledgement of one Kafka message: store its offset for the next commit.
pub struct KafkaAck {
    consumer: Arc<StreamConsumer<GroupContext>>,
    in_flight: Arc<InFlight>,
    topic: String,
    partition: i32,
    offset: i64,
    /// Counted out of the in-flight numbers already (by [`KafkaAck::ack_all`]).
    released: bool,
}

impl Drop for KafkaAck {
    /// A message dropped unacknowledged (a clean stop with messages still queued) leaves
    /// the in-flight count, so the final rebalance does not wait for it; its offset is not
    /// stored, so the partition's next reader gets it again.
    fn drop(&mut self) {
        if !self.released {
            self.in_flight.done(&self.topic, self.partition, 1);
        }
    }
}

impl KafkaAck {
    /// Marks processed messages: for each consumer one offset store holding, per partition,
    /// the next offset to read, then the messages leave the in-flight count a rebalance
    /// waits on. (librdkafka's older single-offset `rd_kafka_offset_store` adds 1 itself;
    /// passing it `offset + 1` once committed one past, and a partition's next owner skipped
    /// a message at every hand-over.)
    pub fn ack_all(acks: impl IntoIterator<Item = KafkaAck>) {
        /// One consumer's share of the batch: per (topic, partition), the next offset to
        /// read and how many messages are done.
        struct ConsumerBatch {
            consumer: Arc<StreamConsumer<GroupContext>>,
            in_flight: Arc<InFlight>,
            partitions: HashMap<(String, i32), (i64, u64)>,
        }
        let mut batches: Vec<ConsumerBatch> = Vec::new();
        for mut ack in acks {
            ack.released = true;
            let batch = match batches
                .iter()
                .position(|b| Arc::ptr_eq(&b.consumer, &ack.consumer))
            {
                Some(i) => &mut batches[i],
                None => {
                    batches.push(ConsumerBatch {
                        consumer: ack.consumer.clone(),
                        in_flight: ack.in_flight.clone(),
                        partitions: HashMap::new(),
                    });
                    batches.last_mut().expect("just pushed")
                }
            };
            let (next, messages) = batch
                .partitions
                .entry((std::mem::take(&mut ack.topic), ack.partition))
                .or_insert((0, 0));
            *next = (*next).max(ack.offset + 1);
            *messages += 1;
        }
        for batch in batches {
            let mut list = rdkafka::TopicPartitionList::new();
            for ((topic, partition), (next, _)) in &batch.partitions {
                if let Err(e) =
                    list.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*next))
                {
                    tracing::warn!(error = %e, "offset not stored; the input will be redelivered");
                }
            }
            if let Err(e) = batch.consumer.store_offsets(&list) {
                // A partition was revoked meanwhile: its new owner re-reads from the commit.
                tracing::debug!(error = %e, "offsets not stored");
            }
            for ((topic, partition), (_, messages)) in &batch.partitions {
                batch.in_flight.done(topic, *partition, *messages);
            }
        }
    }

    /// Where the message came from: (partition, offset).
    pub fn position(&self) -> (i32, i64) {
        (self.partition, self.offset)
    }
}

/// A Kafka consumer-group source as configured.
pub(super) struct KafkaSource {
    pub brokers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub options: BTreeMap<String, String>,
}

impl super::Source for KafkaSource {
    fn start(self: Box<Self>, context: super::SourceContext) -> Result<(), SourceError> {
        spawn_kafka_source(
            context.index,
            &self.brokers,
            &self.group_id,
            &self.topics,
            &self.options,
            context.queue,
            context.channels,
            context.stats,
        )
    }
}

/// Starts a consumer-group source; messages go to `tx` (waiting when it is full, which
/// stops fetching once librdkafka's bounded prefetch queue is full).
#[allow(clippy::too_many_arguments)]
fn spawn_kafka_source(
    index: usize,
    brokers: &str,
    group_id: &str,
    topics: &[String],
    options: &BTreeMap<String, String>,
    tx: mpsc::Sender<Inbound>,
    channels: mpsc::UnboundedSender<ChannelEvent>,
    stats: Arc<PipelineStats>,
) -> Result<(), SourceError> {
    let in_flight = Arc::new(InFlight::default());
    let group_settings = [
        ("bootstrap.servers", brokers),
        ("group.id", group_id),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "500"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", "10000"),
        ("queued.max.messages.kbytes", "16384"),
    ];
    let consumer: StreamConsumer<GroupContext> = client_config(&group_settings, options)
        .create_with_context(GroupContext {
            in_flight: in_flight.clone(),
            source: index,
            channels: Some(channels),
        })
        .map_err(|e| SourceError::Kafka(e.to_string()))?;
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|e| SourceError::Kafka(e.to_string()))?;
    let consumer = Arc::new(consumer);
    tokio::spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(message) => {
                    stats
                        .received
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let topic = message.topic().to_string();
                    let (partition, offset) = (message.partition(), message.offset());
                    let payload = Bytes::copy_from_slice(message.payload().unwrap_or_default());
                    drop(message);
                    in_flight.taken(&topic, partition);
                    let ack = Ack::Kafka(KafkaAck {
                        consumer: consumer.clone(),
                        in_flight: in_flight.clone(),
                        topic: topic.clone(),
                        partition,
                        offset,
                        released: false,
                    });
                    let inbound = Inbound {
                        source: index,
                        topic,
                        payload,
                        ack,
                    };
                    if !enqueue(&tx, &stats, inbound).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka source error; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    /// Acknowledging messages 0..5 of a partition commits 5, the next offset to read: a
    /// partition's next owner (or a restarted instance) resumes exactly after them.
    #[tokio::test]
    async fn acknowledged_messages_commit_the_next_offset_to_read() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("telemetry", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        for i in 0..5 {
            producer
                .send(
                    BaseRecord::to("telemetry")
                        .key("s")
                        .payload(&format!("{i}")),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let consumer: StreamConsumer<GroupContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "acks")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(GroupContext {
                in_flight: Arc::default(),
                source: 0,
                channels: None,
            })
            .unwrap();
        consumer.subscribe(&["telemetry"]).unwrap();
        let consumer = Arc::new(consumer);
        let mut acks = Vec::new();
        for expected in 0..5 {
            let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
                .await
                .expect("a message within 20 s")
                .unwrap();
            assert_eq!(message.offset(), expected);
            acks.push(KafkaAck {
                consumer: consumer.clone(),
                in_flight: Arc::default(),
                topic: "telemetry".into(),
                partition: message.partition(),
                offset: message.offset(),
                released: false,
            });
        }
        // Acknowledged in two batches, as the pipeline releases them.
        let later = acks.split_off(2);
        KafkaAck::ack_all(acks);
        KafkaAck::ack_all(later);
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        let committed = consumer.committed(Duration::from_secs(10)).unwrap();
        let offset = committed
            .find_partition("telemetry", 0)
            .expect("partition 0 committed")
            .offset();
        assert_eq!(offset, rdkafka::Offset::Offset(5));
    }
}
