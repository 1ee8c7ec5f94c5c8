//! The authenticated embedded broker, end to end (issue 17): `watchfloor broker` with a
//! users file holding topic rules and a TLS certificate from a test authority. An anonymous
//! client, a wrong password, a plain-TCP client and a client trusting another authority are
//! refused; a station publishes on its own topic only (a reading on another station's topic
//! is acknowledged, so the device does not resend it, but reaches nobody); a station cannot
//! subscribe to the city's telemetry; a `watchfloor run` pipeline logs in over TLS with its
//! own account (password from the environment) and reads what the stations may send.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};
use support::mosquitto::wait_for_port;
use support::{free_port, scratch, wait_until, watchfloor_binary, Killed};
use watchfloor_connectors::broker::password_hash;
use watchfloor_connectors::MqttLogin;

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("users.toml");
    let user = |name: &str, extra: &str| {
        format!(
            "[[user]]\nname = \"{name}\"\npassword_sha256 = \"{}\"\n{extra}\n",
            password_hash(name, &format!("{name}-pw"))
        )
    };
    std::fs::write(
        &path,
        format!(
            "[acl]\npublish = [\"ioc/+/%u/telemetry\"]\n\n{}{}{}",
            user("CT-AIR-01", ""),
            user("CT-AIR-02", ""),
            user(
                "watchfloor",
                "subscribe = [\"ioc/#\"]\npublish = [\"ioc/alerts/#\"]"
            ),
        ),
    )
    .unwrap();
    path
}

/// `watchfloor broker` with the users file and `ca`'s server certificate, its log in
/// `broker.log`: its port and process.
fn start_broker(dir: &std::path::Path, ca: &support::tls::Authority) -> (u16, Killed) {
    let port = free_port();
    let broker = Killed(
        Command::new(watchfloor_binary())
            .args(["broker", "--port", &port.to_string(), "--users"])
            .arg(users_file(dir))
            .arg("--tls-cert")
            .arg(&ca.cert)
            .arg("--tls-key")
            .arg(&ca.key)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("broker.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    (port, broker)
}

/// A client of the broker at `port` as `user` (password `<user>-pw`), over TLS trusting
/// `ca`.
fn client(
    port: u16,
    id: &str,
    user: Option<&str>,
    ca: &std::path::Path,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(15));
    let login = MqttLogin {
        credentials: user.map(|u| (u.to_string(), format!("{u}-pw"))),
        tls: Some(watchfloor_connectors::tls::client_config(Some(ca)).unwrap()),
    };
    login.apply(&mut options);
    AsyncClient::new(options, 100)
}

/// The CONNACK code the client gets, or `None` when the connection fails before one.
async fn connack(events: &mut EventLoop) -> Option<ConnectReturnCode> {
    tokio::time::timeout(Duration::from_secs(10), async {
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

#[test]
fn a_station_publishes_only_on_its_own_topic_over_tls() {
    let dir = scratch("broker-security", "acl");
    let ca = support::tls::authority(&dir, "city");
    let stranger = support::tls::authority(&dir, "stranger");
    let (port, _broker) = start_broker(&dir, &ca);
    let runtime = support::runtime();
    runtime.block_on(async {
        // Refused: anonymous, a wrong password, plain TCP, an untrusted certificate.
        let (_c, mut events) = client(port, "anonymous", None, &ca.ca);
        assert_ne!(
            connack(&mut events).await,
            Some(ConnectReturnCode::Success),
            "anonymous"
        );
        let mut options = MqttOptions::new("CT-AIR-01", "127.0.0.1", port);
        options.set_credentials("CT-AIR-01", "guess");
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(
                watchfloor_connectors::tls::client_config(Some(&ca.ca)).unwrap(),
            ),
        ));
        let (_c, mut events) = AsyncClient::new(options, 10);
        assert_ne!(
            connack(&mut events).await,
            Some(ConnectReturnCode::Success),
            "a wrong password"
        );
        let mut options = MqttOptions::new("CT-AIR-01", "127.0.0.1", port);
        options.set_credentials("CT-AIR-01", "CT-AIR-01-pw");
        let (_c, mut events) = AsyncClient::new(options, 10);
        assert_eq!(
            connack(&mut events).await,
            None,
            "plain TCP on the TLS port"
        );
        let (_c, mut events) = client(port, "CT-AIR-01", Some("CT-AIR-01"), &stranger.ca);
        assert_eq!(
            connack(&mut events).await,
            None,
            "a certificate of another authority"
        );

        // The centre's account reads the whole city.
        let (centre, mut centre_events) =
            client(port, "watchfloor-probe", Some("watchfloor"), &ca.ca);
        assert_eq!(
            connack(&mut centre_events).await,
            Some(ConnectReturnCode::Success)
        );
        centre.subscribe("ioc/#", QoS::AtLeastOnce).await.unwrap();
        let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
        let (suback_tx, mut suback_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match centre_events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = got_tx.send((
                            p.topic.clone(),
                            String::from_utf8_lossy(&p.payload).to_string(),
                        ));
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let _ = suback_tx.send(ack.return_codes);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let codes = tokio::time::timeout(Duration::from_secs(10), suback_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)),
            "{codes:?}"
        );

        // The station: its own topic passes, another station's is acknowledged and dropped,
        // the city's telemetry is not its to read; the connection survives all of it.
        let (station, mut station_events) = client(port, "CT-AIR-01", Some("CT-AIR-01"), &ca.ca);
        assert_eq!(
            connack(&mut station_events).await,
            Some(ConnectReturnCode::Success)
        );
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match station_events.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        let _ = ack_tx.send(packet);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = ack_tx.send(Packet::Disconnect);
                        panic!("the station's connection dropped: {e}");
                    }
                }
            }
        });
        for (topic, payload) in [
            ("ioc/air/CT-AIR-01/telemetry", "own-1"),
            ("ioc/air/CT-AIR-02/telemetry", "forged"),
            ("ioc/alerts/critical/fire", "forged-alert"),
            ("ioc/air/CT-AIR-01/telemetry", "own-2"),
        ] {
            station
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        station.subscribe("ioc/#", QoS::AtLeastOnce).await.unwrap();
        let mut pubacks = 0;
        let mut refused_subscription = false;
        tokio::time::timeout(Duration::from_secs(10), async {
            while pubacks < 4 || !refused_subscription {
                match ack_rx.recv().await.unwrap() {
                    Packet::PubAck(_) => pubacks += 1,
                    Packet::SubAck(ack) => {
                        refused_subscription =
                            ack.return_codes == [rumqttc::SubscribeReasonCode::Failure];
                    }
                    Packet::Disconnect => panic!("disconnected"),
                    _ => {}
                }
            }
        })
        .await
        .expect("four PUBACKs and a refused SUBACK");
        assert!(refused_subscription);
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while seen.len() < 2 {
                seen.push(got_rx.recv().await.unwrap());
            }
        })
        .await
        .expect("the station's own readings arrive");
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok(more) = got_rx.try_recv() {
            seen.push(more);
        }
        assert_eq!(
            seen,
            vec![
                (
                    "ioc/air/CT-AIR-01/telemetry".to_string(),
                    "own-1".to_string()
                ),
                (
                    "ioc/air/CT-AIR-01/telemetry".to_string(),
                    "own-2".to_string()
                ),
            ],
            "only the station's own topic reaches the centre"
        );
    });
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap();
    assert!(log.contains("refused by the topic rules"), "{log}");
}

/// A `watchfloor run` pipeline logs in over TLS with its account (its password from the
/// environment) and reads a station's reading; the forged one never reaches it.
#[test]
fn a_pipeline_reads_through_tls_with_its_account() {
    let dir = scratch("broker-security", "pipeline");
    let ca = support::tls::authority(&dir, "city");
    let (port, _broker) = start_broker(&dir, &ca);
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules");
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "tls"
rules = "{rules}"

[[source]]
type = "mqtt"
host = "localhost"
port = {port}
client_id = "watchfloor"
topics = ["ioc/+/+/telemetry"]
format = "json"
username = "watchfloor"
password_env = "WF_TEST_MQTT_PASSWORD"
ca_file = "city-ca.pem"

[[output]]
type = "file"
path = "alerts.ndjson"

[dead_letter]
type = "file"
path = "dead.ndjson"
"#,
            rules = rules.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("run.log")).unwrap();
    let _run = Killed(
        Command::new(watchfloor_binary())
            .args(["run", "--pipeline"])
            .arg(&pipeline)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("WF_TEST_MQTT_PASSWORD", "watchfloor-pw")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let runtime = support::runtime();
    runtime.block_on(async {
        let (station, mut events) = client(port, "CT-AIR-01", Some("CT-AIR-01"), &ca.ca);
        assert_eq!(connack(&mut events).await, Some(ConnectReturnCode::Success));
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        // Garbage on purpose: each reading the pipeline gets is a dead letter we can see.
        let dead = dir.join("dead.ndjson");
        wait_until(
            "the pipeline reads the station",
            Duration::from_secs(30),
            || {
                let _ = futures_util::FutureExt::now_or_never(station.publish(
                    "ioc/air/CT-AIR-01/telemetry",
                    QoS::AtLeastOnce,
                    false,
                    "own-garbage",
                ));
                let _ = futures_util::FutureExt::now_or_never(station.publish(
                    "ioc/air/CT-AIR-02/telemetry",
                    QoS::AtLeastOnce,
                    false,
                    "forged-garbage",
                ));
                std::fs::read_to_string(&dead).is_ok_and(|d| d.contains("own-garbage"))
            },
        );
        let dead = std::fs::read_to_string(&dead).unwrap();
        assert!(!dead.contains("forged-garbage"), "{dead}");
    });
}
