//! tansu 0.6.0, a Kafka-protocol broker, for the end-to-end tests (`cargo install tansu
//! --version 0.6.0 --locked --features dynostore`; `scripts/test` installs it): in memory,
//! on a free port, with 4-partition topics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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
