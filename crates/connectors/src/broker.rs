//! The embedded MQTT broker (rumqttd) for a one-machine setup: `watchfloor broker` and the
//! demo. rumqttd starts its own threads, so it runs on a plain `std::thread`, never inside
//! a tokio task.

use std::net::SocketAddr;

use thiserror::Error;

/// The broker could not be configured or started.
#[derive(Debug, Error)]
#[error("embedded broker: {0}")]
pub struct BrokerError(String);

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedBrokerConfig {
    /// Address to listen on (e.g. 127.0.0.1:1883).
    pub listen: SocketAddr,
    /// Largest payload accepted from a client.
    pub max_payload_size: usize,
    /// QoS 1 messages a publisher may have in flight per connection. (What the broker
    /// sends a subscriber unacknowledged is fixed by rumqttd at 100 per connection, so a
    /// subscriber's rate is 100 over its acknowledgement round trip.)
    pub max_inflight: usize,
}

/// Starts the broker on its own thread and returns the thread handle. The broker runs
/// until the process ends.
pub fn start_embedded_broker(
    config: &EmbeddedBrokerConfig,
) -> Result<std::thread::JoinHandle<()>, BrokerError> {
    let toml_text = format!(
        r#"
id = 0

[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{listen}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {payload}
    max_inflight_count = {inflight}
    dynamic_filters = true
"#,
        listen = config.listen,
        payload = config.max_payload_size,
        inflight = config.max_inflight,
    );
    let broker_config: rumqttd::Config =
        toml::from_str(&toml_text).map_err(|e| BrokerError(e.to_string()))?;
    // Fail early, with a clear message, if the port is taken.
    std::net::TcpListener::bind(config.listen)
        .map_err(|e| BrokerError(format!("cannot listen on {}: {e}", config.listen)))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(broker_config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError(e.to_string()))
}
