//! A real Mosquitto for the end-to-end tests (`apt-get install mosquitto`; `scripts/test`
//! installs it), on a free port, that can be stopped and started again on the same port
//! with its persistent sessions kept (persistence on, saved at a clean stop).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running Mosquitto; killed when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    conf: PathBuf,
    /// Its port.
    pub port: u16,
}

fn binary() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

impl Mosquitto {
    /// Starts one holding any number of queued and in-flight messages per session, with
    /// its state saved in `dir` at a clean stop.
    pub fn start(dir: &Path) -> Mosquitto {
        let port = super::free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 0\nmax_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut broker = Mosquitto {
            child: None,
            conf,
            port,
        };
        broker.restart();
        broker
    }

    /// Starts it again after [`Mosquitto::stop`].
    pub fn restart(&mut self) {
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "mosquitto must be installed (apt-get install mosquitto); scripts/test installs it",
            );
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// A clean stop (SIGTERM: it saves its sessions and queued messages), waited for.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
