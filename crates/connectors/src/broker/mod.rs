//! The embedded MQTT broker (rumqttd) for a one-machine setup: `watchfloor broker` and the
//! demo. rumqttd starts its own threads, so it runs on a plain `std::thread`, never inside
//! a tokio task.
//!
//! Authentication: with a users file ([`users`]) every client must give a known name and
//! its password; anonymous and wrong ones are refused at CONNECT, and a client id must be
//! its user's (the name or `<name>-…`), so no account can take over another's session.
//! Topic rules and TLS: rumqttd has neither, so with a users file or a certificate,
//! rumqttd listens on a loopback port and [`front`] takes the clients: it ends TLS, holds
//! each PUBLISH and SUBSCRIBE to the user's rights and counts packets over the size limit.
//! (The demo's broker, loopback only and without users, is rumqttd alone.)

pub mod acl;
pub mod front;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

pub use front::{acl_refusals, oversize_refusals};
pub use users::{load_users, password_hash, BrokerUsers};

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
    /// Who may connect, and their topic rights; `None`: anyone, any topic (a closed test
    /// setup).
    pub users: Option<BrokerUsers>,
    /// TLS on `listen`: the certificate chain and its private key (PEM files).
    pub tls: Option<BrokerTls>,
}

/// The broker's certificate and key.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// PEM certificate chain, the broker's first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Starts the broker on its own thread (and its front on another, when it has topic rules
/// or TLS) and returns the broker's thread handle. The broker runs until the process ends.
pub fn start_embedded_broker(
    config: &EmbeddedBrokerConfig,
) -> Result<std::thread::JoinHandle<()>, BrokerError> {
    let acl = config.users.as_ref().and_then(|u| u.acl.clone());
    // An authenticated broker faces a network: the front counts what rumqttd would drop
    // silently (packets over the size limit) even without rules or TLS.
    let needs_front = config.users.is_some() || config.tls.is_some();
    // Fail early, with a clear message, if the port is taken; the front keeps this socket.
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| BrokerError(format!("cannot listen on {}: {e}", config.listen)))?;
    let broker_listen = if needs_front {
        let inner = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BrokerError(format!("no loopback port for the broker: {e}")))?;
        let tls = match &config.tls {
            Some(files) => {
                Some(crate::tls::server_acceptor(&files.cert, &files.key).map_err(BrokerError)?)
            }
            None => None,
        };
        start_front(
            listener,
            front::Front {
                acl,
                tls,
                upstream: inner,
                // rumqttd refuses a packet longer than this: the front counts it first.
                max_packet: config.max_payload_size,
            },
        )?;
        inner
    } else {
        drop(listener);
        config.listen
    };
    let broker_config = rumqttd_config(config, broker_listen)?;
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

/// The front's own thread and runtime (the broker may run where there is no tokio).
fn start_front(listener: std::net::TcpListener, front: front::Front) -> Result<(), BrokerError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| BrokerError(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mqtt-front")
        .enable_all()
        .build()
        .map_err(|e| BrokerError(format!("the MQTT front's runtime: {e}")))?;
    std::thread::Builder::new()
        .name("mqtt-front".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => front::serve(listener, Arc::new(front)).await,
                    Err(e) => tracing::error!(error = %e, "MQTT front stopped"),
                }
            })
        })
        .map(|_| ())
        .map_err(|e| BrokerError(e.to_string()))
}

/// rumqttd's settings: one MQTT 3.1.1 listener on `listen`, with the users' password check.
fn rumqttd_config(
    config: &EmbeddedBrokerConfig,
    listen: SocketAddr,
) -> Result<rumqttd::Config, BrokerError> {
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
        payload = config.max_payload_size,
        inflight = config.max_inflight,
    );
    let mut broker_config: rumqttd::Config =
        toml::from_str(&toml_text).map_err(|e| BrokerError(e.to_string()))?;
    if let Some(users) = &config.users {
        let passwords = Arc::new(users.passwords.clone());
        for server in broker_config.v4.iter_mut().flat_map(|v| v.values_mut()) {
            let passwords = passwords.clone();
            server
                .connections
                .set_auth_handler(move |client: String, user: String, password: String| {
                // A client id is its user's (the name, or `<name>-…`): nobody can take over
                // another account's session (rumqttd replaces a connection with the same id).
                let own_id = client == user || client.starts_with(&format!("{user}-"));
                let known = own_id
                    && passwords
                        .get(&user)
                        .is_some_and(|hash| *hash == password_hash(&user, &password));
                if !known {
                    tracing::warn!(
                        user = %front::clip(&user, 64),
                        "MQTT connection refused: unknown user, wrong password or another user's client id"
                    );
                }
                async move { known }
            });
        }
    }
    Ok(broker_config)
}

#[cfg(test)]
mod tests;
