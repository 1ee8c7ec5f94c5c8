//! The Python webhook receiver of the tests (`tests/webhooks/receiver.py`: every signature
//! checked with the independent `standardwebhooks` package from PyPI, answers by a
//! schedule, each request recorded as a JSON line), over plain HTTP or TLS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::tls::Authority;
use super::{wait_until, Killed};

/// A receiver on `port` recording to `dir/record`, answering by `schedule` (see the
/// script), checking signatures with `secrets`; with TLS under `tls`'s server certificate.
pub fn start(
    dir: &Path,
    port: u16,
    record: &str,
    schedule: &str,
    secrets: &[&str],
    tls: Option<&Authority>,
) -> Killed {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/webhooks/receiver.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(port.to_string())
        .arg(secrets.join(","))
        .arg(dir.join(record))
        .arg(schedule)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{record}.log"))).unwrap());
    if let Some(a) = tls {
        command
            .env("RECEIVER_CERT", &a.cert)
            .env("RECEIVER_KEY", &a.key);
    }
    let child = command
        .spawn()
        .expect("python3 with standardwebhooks (scripts/test installs it)");
    wait_until("the receiver to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Killed(child)
}

/// What the receiver recorded so far, one JSON value per request.
pub fn records(dir: &Path, record: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(record))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
