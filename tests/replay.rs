//! End-to-end: `watchfloor replay` on the sample dataset in tests/data/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchfloor-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn replay(extra: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "tests/data/rules",
            "--input",
            "tests/data/sample.ndjson",
        ])
        .args(extra)
        .output()
        .expect("watchfloor runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn transitions(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn sample_alerts_match_the_expected_incidents() {
    let out = replay(&[]);
    let got: Vec<(String, String, String, String, String)> = transitions(&out.stdout)
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_string();
            (s("rule"), s("key"), s("state"), s("severity"), s("at"))
        })
        .collect();
    let row = |rule: &str, key: &str, state: &str, sev: &str, at: &str| {
        (
            rule.to_string(),
            key.to_string(),
            state.to_string(),
            sev.to_string(),
            format!("2026-11-17T{at}:00.000Z"),
        )
    };
    // Written by hand from the scenario in tests/data/make_sample.py.
    let want = vec![
        // CAM-01 sees fire at 00:42 (CAM-02's 0.4 confidence does not count).
        row("camera_fire_smoke", "CAM-01", "firing", "critical", "00:42"),
        // CT-TN-03 last reported at 00:55; 15 minutes of silence.
        row("station_offline", "CT-TN-03", "firing", "minor", "01:10"),
        // No new detection for 30 minutes.
        row(
            "camera_fire_smoke",
            "CAM-01",
            "resolved",
            "critical",
            "01:12",
        ),
        // pH crash at 01:30 and 01:35, normal again at 01:40.
        row(
            "discharge_ph_out_of_range",
            "CT-TN-02",
            "firing",
            "major",
            "01:30",
        ),
        row(
            "discharge_ph_out_of_range",
            "CT-TN-02",
            "resolved",
            "major",
            "01:40",
        ),
        // CT-TN-03 is back at 02:00.
        row("station_offline", "CT-TN-03", "resolved", "minor", "02:00"),
        // CT-TN-01's hour 01:00–02:00 averages 160 > Cmax 135 (the calibration readings of
        // 500 at 00:20 and 00:25 are excluded, so hour 0 stays at 60).
        row(
            "discharge_cod_hourly_mean",
            "CT-TN-01",
            "firing",
            "major",
            "02:00",
        ),
        row(
            "discharge_cod_hourly_mean",
            "CT-TN-01",
            "firing",
            "critical",
            "02:30",
        ),
        // Hour 02:00–03:00 averages 100 < 0.9 × 135: resolved at the window end.
        row(
            "discharge_cod_hourly_mean",
            "CT-TN-01",
            "resolved",
            "critical",
            "03:00",
        ),
    ];
    assert_eq!(got, want);

    let all = transitions(&out.stdout);
    let cod: Vec<&serde_json::Value> = all
        .iter()
        .filter(|t| t["rule"] == "discharge_cod_hourly_mean")
        .collect();
    assert_eq!(cod[0]["value"], 160.0);
    assert_eq!(cod[0]["window_start"], "2026-11-17T01:00:00.000Z");
    assert_eq!(cod[0]["window_end"], "2026-11-17T02:00:00.000Z");
    assert_eq!(
        cod[0]["message"],
        "COD hourly mean 160.0 mg/L at CT-TN-01 exceeds Cmax 135 mg/L"
    );
    assert_eq!(cod[0]["labels"]["pack"], "discharge");
    assert!(
        cod.iter().all(|t| t["alert_id"] == cod[0]["alert_id"]),
        "one id for the whole incident"
    );
}

#[test]
fn replay_is_byte_for_byte_deterministic_and_matches_the_golden_file() {
    let first = replay(&[]);
    let second = replay(&[]);
    assert_eq!(first.stdout, second.stdout);
    let golden = root().join("tests/data/sample.expected.ndjson");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &first.stdout).unwrap();
    }
    let expected = std::fs::read(&golden).expect("golden file (regenerate with UPDATE_GOLDEN=1)");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn rejected_and_late_events_go_to_the_dead_letter_file_with_their_reason() {
    let dir = scratch("dead-letter");
    let dead = dir.join("dead.ndjson");
    let out = replay(&["--dead-letter", dead.to_str().unwrap()]);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<(u64, &str)> = records
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (36, "malformed_json"),
            (37, "non_finite"),
            (38, "unknown_kind"),
            (39, "future_timestamp"),
            (45, "duplicate"),
            (104, "late"),
        ]
    );
    assert!(records[0]["raw"]
        .as_str()
        .unwrap()
        .starts_with("{\"source\":\"CT-TN-09\""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("98 events accepted, 6 rejected"),
        "{stderr}"
    );
}

#[test]
fn replay_reads_standard_input_and_writes_a_file() {
    let dir = scratch("stdin");
    let output = dir.join("alerts.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "tests/data/rules",
            "--input",
            "-",
            "--output",
            output.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sample = std::fs::read(root().join("tests/data/sample.ndjson")).unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&sample).unwrap();
    assert!(child.wait().unwrap().success());
    let from_file = replay(&[]).stdout;
    assert_eq!(std::fs::read(&output).unwrap(), from_file);
}

#[test]
fn a_broken_rule_directory_stops_replay_with_located_errors() {
    let dir = scratch("broken-replay");
    std::fs::write(
        dir.join("bad.yaml"),
        "rules:\n  - id: x\n    match: { kind: air }\n    severity: loud\n    absence: 5m\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["replay", "--rules", dir.to_str().unwrap(), "--input", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:4:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
