//! A scripted city scenario (`tests/scenarios/<name>.toml`) simulated with `watchfloor
//! simulate` and replayed through the shipped rules with `watchfloor replay`: the alert
//! transitions, in event time, as JSON records.

use std::path::Path;
use std::process::Command;

/// Simulates `scenario` with `seed` for `duration` and replays it (from `root`).
pub fn simulate_and_replay(
    root: &Path,
    scenario: &str,
    seed: u64,
    duration: &str,
) -> Vec<serde_json::Value> {
    let dir = super::scratch("scenario", scenario);
    let telemetry = dir.join("telemetry.ndjson");
    let alerts = dir.join("alerts.ndjson");
    let bin = env!("CARGO_BIN_EXE_watchfloor");
    let script = root.join(format!("tests/scenarios/{scenario}.toml"));
    let sim = Command::new(bin)
        .current_dir(root)
        .args([
            "simulate",
            "--seed",
            &seed.to_string(),
            "--duration",
            duration,
            "--script",
        ])
        .arg(script)
        .arg("--output")
        .arg(&telemetry)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let replay = Command::new(bin)
        .current_dir(root)
        .args(["replay", "--rules", "alert-rules", "--input"])
        .arg(&telemetry)
        .arg("--output")
        .arg(&alerts)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
