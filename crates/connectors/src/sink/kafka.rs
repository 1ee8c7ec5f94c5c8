//! The Kafka alert sink (cargo feature `kafka`): an idempotent producer keyed by
//! `alert_id` (a dead letter by its reason); a record is confirmed once its delivery report
//! came back, and what failed is sent again.

use std::collections::BTreeMap;

use rdkafka::producer::{FutureProducer, FutureRecord};
use watchfloor_model::AlertTransition;

use super::{AlertSink, OutputError, SinkFuture};
use crate::source::kafka::client_config;

/// An idempotent producer keyed by `alert_id`; `flush` waits for every delivery report
/// and re-sends what failed.
pub struct KafkaOutput {
    producer: FutureProducer,
    topic: String,
    pending: Vec<(String, Vec<u8>, rdkafka::producer::DeliveryFuture)>,
}

impl KafkaOutput {
    /// Creates the producer. By default one record per batch (`linger.ms=0`,
    /// `batch.num.messages=1`), which brokers such as tansu 0.6 need for correct offsets;
    /// `options` override any setting.
    pub fn open(
        brokers: &str,
        topic: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<KafkaOutput, OutputError> {
        let producer_settings = [
            ("bootstrap.servers", brokers),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
            ("message.timeout.ms", "30000"),
        ];
        let producer: FutureProducer = client_config(&producer_settings, options)
            .create()
            .map_err(|e| OutputError::Kafka(e.to_string()))?;
        Ok(KafkaOutput {
            producer,
            topic: topic.to_string(),
            pending: Vec::new(),
        })
    }

    /// Queues one record keyed by `key`.
    pub fn send(&mut self, key: &str, payload: Vec<u8>) -> Result<(), OutputError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(&payload);
        let future = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| OutputError::Kafka(e.to_string()))?;
        self.pending.push((key.to_string(), payload, future));
        Ok(())
    }

    /// Waits for every queued record to be acknowledged by the broker.
    pub async fn flush(&mut self) -> Result<(), OutputError> {
        let pending = std::mem::take(&mut self.pending);
        let mut failed = Vec::new();
        for (key, payload, future) in pending {
            match future.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    tracing::warn!(error = %e, "kafka delivery failed; will re-send");
                    failed.push((key, payload));
                }
                Err(_) => failed.push((key, payload)),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        let count = failed.len();
        for (key, payload) in failed {
            self.send(&key, payload)?;
        }
        Err(OutputError::Kafka(format!(
            "{count} record(s) not delivered; re-sent"
        )))
    }
}

impl AlertSink for KafkaOutput {
    fn send_alert<'a>(&'a mut self, transition: &'a AlertTransition) -> SinkFuture<'a> {
        let line = serde_json::to_vec(transition).expect("transitions serialise");
        Box::pin(async move { self.send(&transition.alert_id, line) })
    }

    fn send_record<'a>(&'a mut self, record: &'a serde_json::Value) -> SinkFuture<'a> {
        let line = serde_json::to_vec(record).expect("records serialise");
        let reason = record["reason"].as_str().unwrap_or("unknown").to_string();
        Box::pin(async move { self.send(&reason, line) })
    }

    fn flush(&mut self) -> SinkFuture<'_> {
        Box::pin(KafkaOutput::flush(self))
    }
}
