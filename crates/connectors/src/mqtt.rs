//! One way to open an MQTT client connection, shared by sources, outputs and tools, and
//! how it logs in: an account (the password from the environment, never from a file) and
//! TLS (the server's certificate always verified).

use std::path::Path;
use std::sync::Arc;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions, TlsConfiguration, Transport};
use tokio_rustls::rustls::ClientConfig;

/// How a client logs in to its broker.
#[derive(Clone, Default)]
pub struct MqttLogin {
    /// Username and password, for an authenticated broker.
    pub credentials: Option<(String, String)>,
    /// TLS, with the authorities it trusts; `None`: plain TCP.
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for MqttLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLogin")
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl MqttLogin {
    /// The login of a configured client: `username` with the password in the environment
    /// variable `password_env`, and TLS when `tls` is set or a `ca_file` is given.
    pub fn from_config(
        username: Option<&str>,
        password_env: Option<&str>,
        tls: bool,
        ca_file: Option<&Path>,
    ) -> Result<MqttLogin, String> {
        let credentials = crate::config::mqtt_credentials(username, password_env)?;
        let tls = if tls || ca_file.is_some() {
            Some(crate::tls::client_config(ca_file)?)
        } else {
            None
        };
        Ok(MqttLogin { credentials, tls })
    }

    /// Sets the account and the transport on `options`.
    pub fn apply(&self, options: &mut MqttOptions) {
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user, password);
        }
        if let Some(config) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                config.clone(),
            )));
        }
    }
}

/// An MQTT client with Nagle's algorithm off: an alert or an acknowledgement is one small
/// packet that must leave now, not after the peer's delayed ACK (up to 40 ms on Linux).
pub fn mqtt_client(options: MqttOptions, request_capacity: usize) -> (AsyncClient, EventLoop) {
    let (client, mut event_loop) = AsyncClient::new(options, request_capacity);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    event_loop.set_network_options(network);
    (client, event_loop)
}
