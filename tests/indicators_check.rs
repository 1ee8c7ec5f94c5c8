//! End-to-end: `watchfloor indicators check` on the shipped set and on broken files, each
//! refused with its `file:line` and the reason; and `run --check` refusing a pipeline whose
//! indicators are broken.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["indicators", "check"])
        .arg(dir)
        .arg("--rules")
        .arg(root().join("alert-rules"))
        .output()
        .expect("watchfloor runs")
}

fn dir_with(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchfloor-ind-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("set.yaml"), text).unwrap();
    dir
}

/// A valid indicator; each broken case changes one line of it.
const GOOD: &str = "indicators:
  - id: compliance
    name: { vi: Tuân thủ, en: Compliance }
    unit: \"%\"
    owner: { vi: Sở NN&MT, en: DAE }
    sector: environment
    period: live
    from: stations
    kinds: [discharge]
    value: 100.0 * compliant / stations
    bands: { better: higher, green: 95, amber: 80 }
    scopes: [city, commune]
";

#[test]
fn the_shipped_set_passes() {
    let out = check(&root().join("indicators"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok: 11 indicators"), "{stdout}");
    let out = check(&dir_with("good", GOOD));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn broken_indicators_are_refused_with_file_and_line() {
    // (case, line to replace, replacement, line reported, words of the reason)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "unknown_source",
            "    from: stations",
            "    from: satellites",
            ":8:",
            "unknown source `satellites`",
        ),
        (
            "bad_expression",
            "    value: 100.0 * compliant / stations",
            "    value: 100.0 * compliant /",
            ":10:",
            "cannot parse",
        ),
        (
            "unknown_variable",
            "    value: 100.0 * compliant / stations",
            "    value: 100.0 * complaint / stations",
            ":10:",
            "complaint",
        ),
        (
            "band_not_ordered",
            "    bands: { better: higher, green: 95, amber: 80 }",
            "    bands: { better: higher, green: 80, amber: 95 }",
            ":11:",
            "not ordered",
        ),
        (
            "unknown_scope",
            "    scopes: [city, commune]",
            "    scopes: [city, province]",
            ":12:",
            "unknown scope `province`",
        ),
        (
            "unknown_sector",
            "    sector: environment",
            "    sector: finance",
            ":6:",
            "unknown sector `finance`",
        ),
        (
            "unknown_kind",
            "    kinds: [discharge]",
            "    kinds: [dischage]",
            ":9:",
            "unknown station kind `dischage`",
        ),
        (
            "unknown_period",
            "    period: live",
            "    period: weekly",
            ":7:",
            "unknown period `weekly`",
        ),
        (
            "unknown_metric",
            "    from: stations\n    kinds: [discharge]",
            "    from: stream\n    metric: pm2.5\n    kinds: [discharge]",
            ":9:",
            "unknown metric `pm2.5`",
        ),
    ];
    for (name, from, to, line, words) in cases {
        assert!(
            GOOD.contains(from),
            "{name}: the case must change a line of GOOD"
        );
        let dir = dir_with(name, &GOOD.replace(from, to));
        let out = check(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        let expected = format!("{}{line}", dir.join("set.yaml").display());
        assert!(
            stderr.contains(&expected),
            "{name}: no `{expected}` in {stderr}"
        );
        assert!(stderr.contains(words), "{name}: no `{words}` in {stderr}");
    }
    // Two indicators with one id: the second is refused, naming the first.
    let twice = format!("{GOOD}{}", GOOD.trim_start_matches("indicators:\n"));
    let out = check(&dir_with("twice", &twice));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(":13:") && stderr.contains("already defined at"),
        "{stderr}"
    );
}

#[test]
fn run_check_refuses_a_pipeline_whose_indicators_are_broken() {
    let dir = dir_with(
        "run_check",
        &GOOD.replace("    from: stations", "    from: satellites"),
    );
    let accounts = root().join("pipelines/demo-accounts.toml");
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"ind-check\"\nrules = \"{}\"\n\n[[source]]\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = 1\nclient_id = \"ind-check\"\ntopics = [\"t/#\"]\nformat = \"json\"\n\n[[output]]\ntype = \"file\"\npath = \"alerts.ndjson\"\n\n[dead_letter]\ntype = \"file\"\npath = \"dead.ndjson\"\n\n[server]\nlisten = \"127.0.0.1:0\"\naccounts = \"{}\"\nindicators = \".\"\n\n[store]\nurl = \"sqlite:{}\"\n",
            root().join("alert-rules").display(),
            accounts.display(),
            dir.join("incidents.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["run", "--check", "--pipeline"])
        .arg(&pipeline)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("set.yaml:8:") && stderr.contains("unknown source"),
        "{stderr}"
    );
    // The same pipeline with the shipped indicators passes.
    std::fs::write(dir.join("set.yaml"), GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["run", "--check", "--pipeline"])
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
