//! The Kafka alert sink (cargo feature `kafka`): an idempotent producer keyed by
//! `alert_id` (a dead letter by its reason); a record is confirmed once its delivery report
//! came back, and what failed is sent again.

use std::collections::{BTreeMap, VecDeque};

use rdkafka::producer::{FutureProducer, FutureRecord};
use watchfloor_model::AlertTransition;

use super::{AlertSink, OutputError, SinkFuture};
use crate::source::kafka::client_config;

/// An idempotent producer keyed by `alert_id`; `flush` waits for every delivery report
/// and re-sends what failed.
pub struct KafkaOutput {
    producer: FutureProducer,
    topic: String,
    /// Records not yet confirmed, oldest first. A record stays here until its delivery
    /// report says it is stored, so a `flush` cancelled midway (the pipeline's timeout
    /// on an operation) loses nothing.
    pending: VecDeque<Pending>,
}

/// A record handed to the producer (or still to hand: `future` is `None` after a failed
/// delivery or a refused send).
struct Pending {
    key: String,
    payload: Vec<u8>,
    future: Option<rdkafka::producer::DeliveryFuture>,
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
            pending: VecDeque::new(),
        })
    }

    fn produce(
        &self,
        key: &str,
        payload: &[u8],
    ) -> Result<rdkafka::producer::DeliveryFuture, OutputError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(payload);
        self.producer
            .send_result(record)
            .map_err(|(e, _)| OutputError::Kafka(e.to_string()))
    }

    /// Queues one record keyed by `key`.
    pub fn send(&mut self, key: &str, payload: Vec<u8>) -> Result<(), OutputError> {
        let future = self.produce(key, &payload)?;
        self.pending.push_back(Pending {
            key: key.to_string(),
            payload,
            future: Some(future),
        });
        Ok(())
    }

    /// Waits for every queued record to be acknowledged by the broker; what failed is
    /// sent again (and reported as an error, so the caller retries the flush).
    pub async fn flush(&mut self) -> Result<(), OutputError> {
        let mut failed = 0;
        for _ in 0..self.pending.len() {
            let front = self.pending.front_mut().expect("counted");
            let delivered = match front.future.as_mut() {
                Some(future) => match future.await {
                    Ok(Ok(_)) => true,
                    Ok(Err((e, _))) => {
                        tracing::warn!(error = %e, "kafka delivery failed; sending again");
                        false
                    }
                    Err(_) => false,
                },
                None => false,
            };
            let mut record = self.pending.pop_front().expect("counted");
            if delivered {
                continue;
            }
            failed += 1;
            record.future = self.produce(&record.key, &record.payload).ok();
            self.pending.push_back(record);
        }
        if failed == 0 {
            return Ok(());
        }
        Err(OutputError::Kafka(format!(
            "{failed} record(s) not delivered; sent again"
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

    fn send_payload<'a>(
        &'a mut self,
        key: &'a str,
        _vars: &'a [(&'a str, &'a str)],
        payload: Vec<u8>,
    ) -> SinkFuture<'a> {
        Box::pin(async move { self.send(key, payload) })
    }

    fn flush(&mut self) -> SinkFuture<'_> {
        Box::pin(KafkaOutput::flush(self))
    }
}
