//! One-off records to a named topic, outside the pipeline's alert outputs: what the
//! playbooks' notify steps send to Kafka. [`RecordPublisher`] is the seam (the server knows
//! the trait, not the transport); [`KafkaPublisher`] (cargo feature `kafka`) is the real one.
//!
//! Invariants: `publish` returns `Ok` only once the broker confirmed the record (its
//! delivery report came back); a failure says why and nothing is retried here (the caller's
//! outbox tries again with the same key, so a receiver can drop a repeat).

use std::future::Future;
use std::pin::Pin;

/// What `publish` returns.
pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Sends one record to a topic and waits for the broker's confirmation.
pub trait RecordPublisher: Send + Sync {
    /// Sends `payload` keyed by `key` to `topic`.
    fn publish<'a>(&'a self, topic: &'a str, key: &'a str, payload: &'a [u8]) -> PublishFuture<'a>;
}

#[cfg(feature = "kafka")]
pub use kafka::KafkaPublisher;

#[cfg(feature = "kafka")]
mod kafka {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rdkafka::producer::{FutureProducer, FutureRecord};

    use super::{PublishFuture, RecordPublisher};
    use crate::source::kafka::client_config;

    /// An idempotent Kafka producer for one-off records (the settings of the pipeline's
    /// Kafka output it was made from, `options` over them).
    pub struct KafkaPublisher {
        producer: FutureProducer,
    }

    impl KafkaPublisher {
        /// A producer for the cluster at `brokers`.
        pub fn open(
            brokers: &str,
            options: &BTreeMap<String, String>,
        ) -> Result<KafkaPublisher, String> {
            let defaults = [
                ("bootstrap.servers", brokers),
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "0"),
                ("batch.num.messages", "1"),
                // Under the notifier's 10 s attempt limit: a record it gave up on is not
                // delivered late beside its retry.
                ("message.timeout.ms", "8000"),
            ];
            let producer: FutureProducer = client_config(&defaults, options)
                .create()
                .map_err(|e| format!("Kafka producer for {brokers}: {e}"))?;
            Ok(KafkaPublisher { producer })
        }
    }

    impl RecordPublisher for KafkaPublisher {
        fn publish<'a>(
            &'a self,
            topic: &'a str,
            key: &'a str,
            payload: &'a [u8],
        ) -> PublishFuture<'a> {
            Box::pin(async move {
                let record = FutureRecord::to(topic).key(key).payload(payload);
                self.producer
                    .send(record, Duration::from_secs(5))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| format!("Kafka topic {topic}: {e}"))
            })
        }
    }
}
