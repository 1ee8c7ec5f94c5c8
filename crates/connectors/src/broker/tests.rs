//! The embedded broker with real clients: who may connect, what passes the front (topic
//! rules, TLS), and large payloads.

use super::*;
use rumqttc::{ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What CONNECT as `credentials` gets: the CONNACK code, or `None` (refused by closing).
async fn connect(port: u16, credentials: Option<(&str, &str)>) -> Option<ConnectReturnCode> {
    let id = credentials.map_or("anonymous".to_string(), |(u, _)| format!("{u}-test"));
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    if let Some((u, p)) = credentials {
        options.set_credentials(u, p);
    }
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 10);
    connack(&mut events).await
}

/// The CONNACK code a client's event loop gets within 5 s, or `None` (closed, or nothing).
async fn connack(events: &mut rumqttc::EventLoop) -> Option<ConnectReturnCode> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Some(ack.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Some(code),
                Err(_) => return None,
            }
        }
    })
    .await
    .unwrap_or(None)
}

#[tokio::test]
async fn only_known_users_with_their_password_connect() {
    let port = free_port();
    let mut passwords = std::collections::HashMap::new();
    passwords.insert(
        "CT-AIR-01".to_string(),
        password_hash("CT-AIR-01", "s3cret"),
    );
    let users = BrokerUsers {
        passwords,
        acl: None,
    };
    start_embedded_broker(&EmbeddedBrokerConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        max_payload_size: 1024 * 1024,
        max_inflight: 100,
        users: Some(users),
        tls: None,
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
    assert!(
        !accepted(connack(&mut events).await),
        "another account's client id"
    );
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

/// A 2 MB reading (the probe's) is taken by the broker with its acknowledgement and the
/// device's connection survives; the pipeline's own limit then dead-letters it.
#[tokio::test]
async fn a_large_payload_keeps_the_connection() {
    let port = free_port();
    start_embedded_broker(&EmbeddedBrokerConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        max_payload_size: 16 * 1024 * 1024,
        max_inflight: 100,
        users: None,
        tls: None,
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

/// Over the limit at an authenticated broker: the front closes the connection and counts
/// it (rumqttd alone would drop it without a trace).
#[tokio::test]
async fn an_oversized_packet_is_counted() {
    let port = free_port();
    let mut passwords = std::collections::HashMap::new();
    passwords.insert("CT-CAM-01".to_string(), password_hash("CT-CAM-01", "pw"));
    start_embedded_broker(&EmbeddedBrokerConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        max_payload_size: 1024,
        max_inflight: 100,
        users: Some(BrokerUsers {
            passwords,
            acl: None,
        }),
        tls: None,
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = oversize_refusals();
    let mut options = MqttOptions::new("CT-CAM-01", "127.0.0.1", port);
    options.set_credentials("CT-CAM-01", "pw");
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 10);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .publish(
                            "ioc/camera/CT-CAM-01/telemetry",
                            QoS::AtLeastOnce,
                            false,
                            vec![b'x'; 200_000],
                        )
                        .await
                        .unwrap();
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is closed");
    assert_eq!(oversize_refusals(), before + 1);
}

/// A broker with topic rules (a station writes its own telemetry topic only) on a free port.
async fn broker_with_rules() -> u16 {
    let port = free_port();
    let mut passwords = std::collections::HashMap::new();
    passwords.insert("CT-AIR-01".to_string(), password_hash("CT-AIR-01", "pw"));
    let acl = acl::Acl {
        defaults: acl::Rights {
            publish: vec!["ioc/+/%u/telemetry".into()],
            subscribe: vec![],
        },
        users: std::collections::HashMap::new(),
    };
    start_embedded_broker(&EmbeddedBrokerConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        max_payload_size: 64 * 1024,
        max_inflight: 100,
        users: Some(BrokerUsers {
            passwords,
            acl: Some(acl),
        }),
        tls: None,
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    port
}

/// A will topic the user may not write is refused (CONNACK 5) only once the password was
/// right; with a wrong one the broker's refusal is all a stranger gets.
#[tokio::test]
async fn a_will_topic_is_refused_only_after_the_password() {
    let port = broker_with_rules().await;
    let with_will = |password: &str| {
        let mut options = MqttOptions::new("CT-AIR-01", "127.0.0.1", port);
        options.set_credentials("CT-AIR-01", password);
        options.set_last_will(rumqttc::LastWill::new(
            "ioc/alerts/critical/fake",
            "gone",
            QoS::AtLeastOnce,
            false,
        ));
        rumqttc::AsyncClient::new(options, 10)
    };
    let (_c, mut events) = with_will("guess");
    assert_eq!(
        connack(&mut events).await,
        None,
        "a wrong password: closed, nothing said"
    );
    let (_c, mut events) = with_will("pw");
    assert_eq!(
        connack(&mut events).await,
        Some(ConnectReturnCode::NotAuthorized),
        "the right password, a will topic not the station's"
    );
}

/// A PUBLISH on a topic with a wildcard is a protocol error: the connection is closed
/// (`ioc/+/CT-AIR-01/telemetry` would otherwise match the station's own pattern). rumqttc
/// will not send one, so the packets are written by hand.
#[tokio::test]
async fn a_wildcard_topic_name_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }
    fn packet(first: u8, body: Vec<u8>) -> Vec<u8> {
        assert!(body.len() < 128);
        let mut p = vec![first, body.len() as u8];
        p.extend(body);
        p
    }
    let port = broker_with_rules().await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut connect = string("MQTT");
    connect.extend([4, 0xC2, 0, 30]);
    for field in ["CT-AIR-01", "CT-AIR-01", "pw"] {
        connect.extend(string(field));
    }
    tcp.write_all(&packet(0x10, connect)).await.unwrap();
    let mut connack = [0u8; 4];
    tcp.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "logged in");
    let publish = |topic: &str| {
        let mut body = string(topic);
        body.extend([0, 1]); // packet id
        body.extend(b"x");
        packet(0x32, body)
    };
    // Its own topic: acknowledged.
    tcp.write_all(&publish("ioc/air/CT-AIR-01/telemetry"))
        .await
        .unwrap();
    let mut puback = [0u8; 4];
    tcp.read_exact(&mut puback).await.unwrap();
    assert_eq!(puback, [0x40, 2, 0, 1]);
    // A wildcard in the name: closed.
    tcp.write_all(&publish("ioc/+/CT-AIR-01/telemetry"))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("closed within 5 s");
    assert!(
        read.is_err() || rest.is_empty(),
        "nothing but the close: {rest:?}"
    );
}
