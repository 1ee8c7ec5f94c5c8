//! The embedded MQTT broker (rumqttd) for a one-machine setup: `watchfloor broker` and the
//! demo. rumqttd starts its own threads, so it runs on a plain `std::thread`, never inside
//! a tokio task.
//!
//! Authentication: with a users file (`[[user]] name, password_sha256`, the SHA-256 of
//! `watchfloor-mqtt:<name>:<password>` in hex: salted by the name, never the password
//! itself) every client must give a known name and its password; anonymous and wrong ones
//! are refused at CONNECT, and a client id must be its user's (the name or `<name>-…`), so
//! no account can take over another's session. rumqttd has no topic ACLs: with the embedded
//! broker, authentication is all there is; where a station must be kept to its own topic,
//! use Mosquitto with an ACL file (docs/operations.md).

use std::collections::HashMap;

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
    /// Who may connect (name → [`password_hash`]); `None`: anyone (a closed test setup).
    pub users: Option<HashMap<String, String>>,
}

/// The stored form of `user`'s `password`: SHA-256 of `watchfloor-mqtt:<user>:<password>`,
/// hex.
pub fn password_hash(user: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("watchfloor-mqtt:{user}:{password}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// At most `max` bytes of `text`, for logs.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Reads a users file: `[[user]]` tables with `name` and `password_sha256`.
pub fn load_users(path: &std::path::Path) -> Result<HashMap<String, String>, BrokerError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        user: Vec<User>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct User {
        name: String,
        password_sha256: String,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| BrokerError(format!("{}: {e}", path.display())))?;
    let file: File =
        toml::from_str(&text).map_err(|e| BrokerError(format!("{}: {e}", path.display())))?;
    let mut users = HashMap::new();
    for u in file.user {
        if u.password_sha256.len() != 64
            || !u.password_sha256.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(BrokerError(format!(
                "{}: user {}: password_sha256 is 64 hex digits",
                path.display(),
                u.name
            )));
        }
        users.insert(u.name, u.password_sha256.to_ascii_lowercase());
    }
    if users.is_empty() {
        return Err(BrokerError(format!("{}: no [[user]]", path.display())));
    }
    Ok(users)
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
    let mut broker_config: rumqttd::Config =
        toml::from_str(&toml_text).map_err(|e| BrokerError(e.to_string()))?;
    if let Some(users) = config.users.clone() {
        let users = std::sync::Arc::new(users);
        for server in broker_config.v4.iter_mut().flat_map(|v| v.values_mut()) {
            let users = users.clone();
            server
                .connections
                .set_auth_handler(move |client: String, user: String, password: String| {
                // A client id is its user's (the name, or `<name>-…`): nobody can take over
                // another account's session (rumqttd replaces a connection with the same id).
                let own_id = client == user || client.starts_with(&format!("{user}-"));
                let known = own_id
                    && users
                        .get(&user)
                        .is_some_and(|hash| *hash == password_hash(&user, &password));
                if !known {
                    tracing::warn!(
                        user = %crate::broker::clip(&user, 64),
                        "MQTT connection refused: unknown user, wrong password or another user's client id"
                    );
                }
                async move { known }
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{ConnectReturnCode, Event, MqttOptions, Packet, QoS};
    use std::time::Duration;

    /// What CONNECT as `credentials` gets: the CONNACK code, or `None` (refused by closing).
    async fn connect(port: u16, credentials: Option<(&str, &str)>) -> Option<ConnectReturnCode> {
        let id = credentials.map_or("anonymous".to_string(), |(u, _)| format!("{u}-test"));
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((u, p)) = credentials {
            options.set_credentials(u, p);
        }
        let (_client, mut events) = rumqttc::AsyncClient::new(options, 10);
        let polled = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => return Some(ack.code),
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Some(code),
                    Err(_) => return None,
                }
            }
        })
        .await;
        polled.unwrap_or(None)
    }

    #[tokio::test]
    async fn only_known_users_with_their_password_connect() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut users = HashMap::new();
        users.insert(
            "CT-AIR-01".to_string(),
            password_hash("CT-AIR-01", "s3cret"),
        );
        start_embedded_broker(&EmbeddedBrokerConfig {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            max_payload_size: 1024 * 1024,
            max_inflight: 100,
            users: Some(users),
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let accepted = |c: Option<ConnectReturnCode>| c == Some(ConnectReturnCode::Success);
        assert!(!accepted(connect(port, None).await), "anonymous");
        assert!(
            !accepted(connect(port, Some(("CT-AIR-01", "guess"))).await),
            "a wrong password"
        );
        assert!(
            !accepted(connect(port, Some(("CT-AIR-02", "s3cret"))).await),
            "an unknown user"
        );
        assert!(
            accepted(connect(port, Some(("CT-AIR-01", "s3cret"))).await),
            "the station"
        );
        // The right password with another account's client id: refused.
        let mut options = MqttOptions::new("watchfloor-centre", "127.0.0.1", port);
        options.set_credentials("CT-AIR-01", "s3cret");
        let (_c, mut events) = rumqttc::AsyncClient::new(options, 10);
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => {
                        return a.code != ConnectReturnCode::Success
                    }
                    Ok(_) => {}
                    Err(_) => return true,
                }
            }
        })
        .await
        .unwrap_or(true);
        assert!(refused, "another account's client id");
        // The station publishes and a subscriber (also authenticated) gets it.
        let mut options = MqttOptions::new("CT-AIR-01-sub", "127.0.0.1", port);
        options.set_credentials("CT-AIR-01", "s3cret");
        let (sub, mut events) = rumqttc::AsyncClient::new(options, 10);
        sub.subscribe("ioc/air/CT-AIR-01/telemetry", QoS::AtLeastOnce)
            .await
            .unwrap();
        let mut options = MqttOptions::new("CT-AIR-01", "127.0.0.1", port);
        options.set_credentials("CT-AIR-01", "s3cret");
        let (publisher, mut pub_events) = rumqttc::AsyncClient::new(options, 10);
        tokio::spawn(async move { while pub_events.poll().await.is_ok() {} });
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            let mut sent = false;
            loop {
                match events.poll().await.unwrap() {
                    Event::Incoming(Packet::SubAck(_)) if !sent => {
                        sent = true;
                        publisher
                            .publish("ioc/air/CT-AIR-01/telemetry", QoS::AtLeastOnce, false, "x")
                            .await
                            .unwrap();
                    }
                    Event::Incoming(Packet::Publish(p)) => return p.payload,
                    _ => {}
                }
            }
        })
        .await
        .expect("the reading arrives");
        assert_eq!(&got[..], b"x");
    }

    #[test]
    fn a_users_file_holds_hashes_only() {
        let dir = std::env::temp_dir().join(format!("wf-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        std::fs::write(
            &path,
            format!(
                "[[user]]\nname = \"a\"\npassword_sha256 = \"{}\"\n",
                password_hash("a", "p")
            ),
        )
        .unwrap();
        assert_eq!(load_users(&path).unwrap()["a"], password_hash("a", "p"));
        std::fs::write(&path, "[[user]]\nname = \"a\"\npassword_sha256 = \"p\"\n").unwrap();
        assert!(load_users(&path)
            .unwrap_err()
            .to_string()
            .contains("64 hex"));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A 2 MB reading (the probe's) is taken by the broker with its acknowledgement and the
    /// device's connection survives; the pipeline's own limit then dead-letters it.
    #[tokio::test]
    async fn a_large_payload_keeps_the_connection() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        start_embedded_broker(&EmbeddedBrokerConfig {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            max_payload_size: 16 * 1024 * 1024,
            max_inflight: 100,
            users: None,
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut options = MqttOptions::new("big", "127.0.0.1", port);
        options.set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 10);
        let big = vec![b'x'; 2 * 1024 * 1024];
        let acks = tokio::time::timeout(Duration::from_secs(20), async {
            let mut acks = 0;
            let mut sent = false;
            loop {
                match events.poll().await.expect("the connection survives") {
                    Event::Incoming(Packet::ConnAck(_)) if !sent => {
                        sent = true;
                        client
                            .publish(
                                "ioc/camera/CT-CAM-01/telemetry",
                                QoS::AtLeastOnce,
                                false,
                                big.clone(),
                            )
                            .await
                            .unwrap();
                        client
                            .publish(
                                "ioc/camera/CT-CAM-01/telemetry",
                                QoS::AtLeastOnce,
                                false,
                                "small",
                            )
                            .await
                            .unwrap();
                    }
                    Event::Incoming(Packet::PubAck(_)) => {
                        acks += 1;
                        if acks == 2 {
                            return acks;
                        }
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("both acknowledged");
        assert_eq!(acks, 2);
    }
}
