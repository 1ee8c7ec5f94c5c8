//! The MQTT source: a persistent QoS 1 session with manual acknowledgements, feeding the
//! pipeline's bounded queue. Acknowledgements go through their own task (never the polling
//! task: the rumqttc deadlock); the broker redelivers whatever was not acknowledged.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{Event as MqttEvent, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;

use super::{enqueue, Ack, Inbound, MQTT_MAX_PACKET};
use crate::stats::PipelineStats;

/// An MQTT source as configured.
pub(super) struct MqttSource {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub topics: Vec<String>,
    pub inflight: u16,
    /// Account and TLS.
    pub login: crate::mqtt::MqttLogin,
}

impl super::Source for MqttSource {
    fn start(self: Box<Self>, context: super::SourceContext) -> Result<(), super::SourceError> {
        let MqttSource {
            host,
            port,
            client_id,
            topics,
            inflight,
            login,
        } = *self;
        spawn_mqtt_source(
            context.index,
            (host, port, login),
            client_id,
            topics,
            inflight,
            context.queue,
            context.stats,
        );
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_mqtt_source(
    index: usize,
    (host, port, login): (String, u16, crate::mqtt::MqttLogin),
    client_id: String,
    topics: Vec<String>,
    inflight: u16,
    tx: mpsc::Sender<Inbound>,
    stats: Arc<PipelineStats>,
) {
    tokio::spawn(async move {
        let mut options = MqttOptions::new(client_id.clone(), host, port);
        options.set_keep_alive(Duration::from_secs(15));
        login.apply(&mut options);
        // A persistent session: the broker keeps our subscription and queues QoS 1
        // messages while we are away; we acknowledge only after processing.
        options.set_clean_session(false);
        options.set_manual_acks(true);
        options.set_inflight(inflight);
        options.set_max_packet_size(MQTT_MAX_PACKET, 1024 * 1024);
        let (client, mut event_loop) = crate::mqtt::mqtt_client(options, 256);
        // Acks go through their own task; their number is bounded by the messages in
        // flight (queue capacity + one batch).
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Publish>();
        let acker = client.clone();
        tokio::spawn(async move {
            while let Some(publish) = ack_rx.recv().await {
                if let Err(e) = acker.ack(&publish).await {
                    tracing::warn!(error = %e, "ack failed; the broker will redeliver");
                }
            }
        });
        // Which connection of the session a message came on (from 1): a message already
        // logged that comes again on a later connection is a redelivery, DUP flag or not
        // (a broker restored from its persistence resends without it).
        let mut connection: u32 = 0;
        loop {
            match event_loop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    connection += 1;
                    tracing::info!(source = %client_id, "mqtt source connected");
                    // Never issue requests from the polling task: it could wait on a full
                    // request channel that only this task drains.
                    let (subscriber, topics) = (client.clone(), topics.clone());
                    tokio::spawn(async move {
                        for topic in topics {
                            if let Err(e) = subscriber.subscribe(topic, QoS::AtLeastOnce).await {
                                tracing::warn!(error = %e, "subscribe failed");
                            }
                        }
                    });
                }
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                    tracing::info!(source = %client_id, "mqtt source subscribed");
                }
                Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let topic = publish.topic.clone();
                    let payload = publish.payload.clone();
                    let ack = if publish.qos == QoS::AtMostOnce {
                        Ack::None
                    } else {
                        Ack::Mqtt(ack_tx.clone(), Box::new(publish), connection)
                    };
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
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(source = %client_id, error = %e, "mqtt source disconnected, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
}
