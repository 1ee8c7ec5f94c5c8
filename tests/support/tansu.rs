//! tansu 0.6.0, a Kafka-protocol broker, for the end-to-end tests (`cargo install tansu
//! --version 0.6.0 --locked --features dynostore`; `scripts/test` installs it): in memory,
//! on a free port, with 4-partition topics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::Value;

use super::{free_port, wait_until, Killed};

/// Partitions of every topic created here.
pub const PARTITIONS: i32 = 4;

fn binary() -> PathBuf {
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cargo/bin/tansu");
    if cached.exists() {
        cached
    } else {
        PathBuf::from("tansu")
    }
}

/// A tansu broker with `topics`; its log goes to `dir/tansu.log`. Returns the broker (killed
/// when dropped) and its `host:port`.
pub fn start(dir: &Path, topics: &[&str]) -> (Killed, String) {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("tansu.log")).unwrap();
    let child = Command::new(binary())
        .args(["broker", "--storage-engine", "memory://tansu/", "--listener-url", &url, "--advertised-listener-url", &url])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("tansu must be installed (cargo install tansu --version 0.6.0 --locked --features dynostore); scripts/test installs it");
    let guard = Killed(child);
    wait_until("tansu to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    for topic in topics {
        let status = Command::new(binary())
            .args([
                "topic",
                "create",
                "--broker",
                &url,
                "--partitions",
                &PARTITIONS.to_string(),
                topic,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {topic}");
    }
    (guard, format!("127.0.0.1:{port}"))
}

/// Every record of `topic`, read from the start until it stays quiet for 3 s.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Value> {
    read_topic_raw(brokers, topic)
        .iter()
        .map(|p| serde_json::from_slice(p).unwrap())
        .collect()
}

/// Every record's payload of `topic`, read from the start until it stays quiet for 3 s.
pub fn read_topic_raw(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("verify-{topic}-{}", super::now_ms()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut records = Vec::new();
    let (start, mut quiet) = (Instant::now(), Instant::now());
    while quiet.elapsed() < Duration::from_secs(3) && start.elapsed() < Duration::from_secs(60) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet = Instant::now();
                records.push(m.payload().unwrap_or_default().to_vec());
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    records
}
