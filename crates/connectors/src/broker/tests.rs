//! The embedded broker with real clients: who may connect, what passes the front (topic
//! rules, TLS), and large payloads.

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
