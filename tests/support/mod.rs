//! Helpers shared by the end-to-end tests that run brokers and `watchfloor` processes.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An empty scratch directory for one test.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("watchfloor-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `done` until it holds, failing the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `measure` (how far it got, whether it is done) until it is done, failing the test
/// when it made no progress for `stall` (at most a minute): a long phase such as
/// publishing 100,000 messages is bounded by its progress, not by a guess at its total.
pub fn wait_progressing(what: &str, stall: Duration, mut measure: impl FnMut() -> (u64, bool)) {
    assert!(
        stall <= Duration::from_secs(60),
        "no wait longer than a minute"
    );
    let mut best = 0;
    let mut moved = Instant::now();
    loop {
        let (got, done) = measure();
        if done {
            return;
        }
        if got > best {
            best = got;
            moved = Instant::now();
        }
        assert!(
            moved.elapsed() < stall,
            "timed out waiting for {what}: stuck at {best} for {stall:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wall clock, epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A two-worker tokio runtime for the test's clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub mod centre;
pub mod equivalence;
pub mod http;
pub mod mosquitto;
pub mod receiver;
pub mod scenario;
pub mod tansu;
pub mod tls;

/// The `watchfloor` binary under test.
pub fn watchfloor_binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_watchfloor"))
}

/// `watchfloor run --pipeline <pipeline>` in the pipeline's folder, its log appended to
/// `<log>` beside it (so restarts keep one log), colours off.
pub fn run_pipeline(pipeline: &std::path::Path, log: &str) -> Killed {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pipeline.with_file_name(log))
        .unwrap();
    Killed(
        std::process::Command::new(watchfloor_binary())
            .args(["run", "--pipeline"])
            .arg(pipeline)
            .current_dir(pipeline.parent().unwrap())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap(),
    )
}

/// The log `run_pipeline` wrote so far.
pub fn log_of(pipeline: &std::path::Path, log: &str) -> String {
    std::fs::read_to_string(pipeline.with_file_name(log)).unwrap_or_default()
}
