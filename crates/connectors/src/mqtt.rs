//! One way to open an MQTT client connection, shared by sources, outputs and tools.

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions};

/// An MQTT client with Nagle's algorithm off: an alert or an acknowledgement is one small
/// packet that must leave now, not after the peer's delayed ACK (up to 40 ms on Linux).
pub fn mqtt_client(options: MqttOptions, request_capacity: usize) -> (AsyncClient, EventLoop) {
    let (client, mut event_loop) = AsyncClient::new(options, request_capacity);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    event_loop.set_network_options(network);
    (client, event_loop)
}
