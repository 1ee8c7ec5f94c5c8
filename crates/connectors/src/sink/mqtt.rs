//! The MQTT sink: publishes at QoS 1 on a persistent session; the broker's
//! acknowledgements are counted by the sink's own event-loop task, so a publish is
//! confirmed without the pipeline waiting a round trip per batch. The topic may use
//! `{severity}` and `{rule}` (alerts) or `{reason}` (dead letters).
//!
//! A broker that comes back without our session (restarted without persistence) has
//! dropped every publish it had not acknowledged, and rumqttc drops its own copies: the
//! sink says so ([`AlertSink::take_lost`]) and its caller publishes them again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::Notify;
use watchfloor_model::AlertTransition;

use super::{AlertSink, OutputError, SinkFuture};

/// How long `flush` waits for broker acknowledgements before reporting a retryable error.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// An MQTT publisher whose acknowledgements are counted by its event-loop task.
pub struct MqttSink {
    client: AsyncClient,
    topic: String,
    published: u64,
    acked: Arc<AtomicU64>,
    acked_signal: Arc<Notify>,
    session_lost: Arc<std::sync::atomic::AtomicBool>,
}

impl MqttSink {
    /// Connects (in the background; publishes queue until the broker is there).
    pub fn open(
        host: &str,
        port: u16,
        client_id: &str,
        topic: &str,
        max_payload: usize,
        login: &crate::mqtt::MqttLogin,
    ) -> MqttSink {
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(15));
        login.apply(&mut options);
        options.set_clean_session(false);
        options.set_max_packet_size(max_payload + 64 * 1024, max_payload * 2 + 64 * 1024);
        options.set_inflight(1000);
        let (client, mut event_loop) = crate::mqtt::mqtt_client(options, 1024);
        let acked = Arc::new(AtomicU64::new(0));
        let acked_signal = Arc::new(Notify::new());
        let session_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counter, signal, lost) = (acked.clone(), acked_signal.clone(), session_lost.clone());
        tokio::spawn(async move {
            let mut connected_before = false;
            loop {
                match event_loop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                        if connected_before && !ack.session_present {
                            tracing::warn!("mqtt output: the broker lost our session; unacknowledged alerts are published again");
                            lost.store(true, Ordering::Release);
                        }
                        connected_before = true;
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Release);
                        signal.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "mqtt output connection lost, reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        MqttSink {
            client,
            topic: topic.to_string(),
            published: 0,
            acked,
            acked_signal,
            session_lost,
        }
    }

    async fn publish(&mut self, topic: String, line: Vec<u8>) -> Result<(), OutputError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, line)
            .await?;
        self.published += 1;
        Ok(())
    }
}

impl AlertSink for MqttSink {
    fn send_alert<'a>(&'a mut self, transition: &'a AlertTransition) -> SinkFuture<'a> {
        let line = serde_json::to_vec(transition).expect("transitions serialise");
        let topic = self
            .topic
            .replace("{severity}", transition.severity.as_str())
            .replace("{rule}", &transition.rule);
        Box::pin(self.publish(topic, line))
    }

    fn send_record<'a>(&'a mut self, record: &'a serde_json::Value) -> SinkFuture<'a> {
        let line = serde_json::to_vec(record).expect("records serialise");
        let reason = record["reason"].as_str().unwrap_or("unknown");
        let topic = self.topic.replace("{reason}", reason);
        Box::pin(self.publish(topic, line))
    }

    fn send_payload<'a>(
        &'a mut self,
        _key: &'a str,
        vars: &'a [(&'a str, &'a str)],
        payload: Vec<u8>,
    ) -> SinkFuture<'a> {
        let mut topic = self.topic.clone();
        for (name, value) in vars {
            topic = topic.replace(&format!("{{{name}}}"), value);
        }
        Box::pin(self.publish(topic, payload))
    }

    fn handed_over(&self) -> u64 {
        self.published
    }

    fn confirmed(&self, mark: u64) -> bool {
        self.acked.load(Ordering::Acquire) >= mark
    }

    fn flush_local(&mut self) -> SinkFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    fn take_lost(&mut self) -> bool {
        if !self.session_lost.swap(false, Ordering::AcqRel) {
            return false;
        }
        // Nothing published before now will be acknowledged: count afresh from here.
        self.published = self.acked.load(Ordering::Acquire);
        true
    }

    fn flush(&mut self) -> SinkFuture<'_> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
            loop {
                let notified = self.acked_signal.notified();
                let acked = self.acked.load(Ordering::Acquire);
                if acked >= self.published {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Err(OutputError::Unacknowledged(
                        self.published - acked,
                        ACK_TIMEOUT,
                    ));
                }
            }
        })
    }
}
