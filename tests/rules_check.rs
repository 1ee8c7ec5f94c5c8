//! End-to-end: `watchfloor rules check` on the shipped rules and on broken files.

#[path = "support/fs.rs"]
mod fs_support;
use fs_support::copy_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["rules", "check"])
        .arg(dir)
        .output()
        .expect("watchfloor runs")
}

fn broken_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchfloor-rules-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lookups")).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

#[test]
fn shipped_rules_pass() {
    for dir in ["alert-rules", "tests/data/rules"] {
        let out = check(&root().join(dir));
        assert!(
            out.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    }
}

/// Each broken file, and the `file:line` plus words the error must carry.
const BROKEN: &[(&str, &str, &str, &str)] = &[
    (
        "yaml_syntax",
        "rules:\n  - id: a\n    match: { kind: air\n    severity: minor\n",
        ":4:",
        "",
    ),
    (
        "unknown_field",
        "rules:\n  - id: a\n    match: { kind: air }\n    absence: 5m\n    severty: minor\n",
        ":5:",
        "severty",
    ),
    (
        "bad_condition",
        "rules:\n  - id: a\n    match: { kind: air }\n    aggregates: { pm: avg(pm25) }\n    condition: pm >> 3\n    severity: minor\n",
        ":5:",
        "cannot parse",
    ),
    (
        "unknown_name",
        "rules:\n  - id: a\n    match: { kind: air }\n    aggregates: { pm: avg(pm25) }\n    condition: pm25 > 3\n    severity: minor\n",
        ":5:",
        "unknown name `pm25`",
    ),
    (
        "bad_window",
        "rules:\n  - id: a\n    match: { kind: air }\n    window: { type: sliding, size: 1h, slide: 7m }\n    aggregates: { pm: avg(pm25) }\n    condition: pm > 3\n    severity: minor\n",
        ":4:",
        "multiple of `slide`",
    ),
    (
        "bad_duration",
        "rules:\n  - id: a\n    match: { kind: air }\n    absence: soon\n    severity: minor\n",
        ":4:",
        "not a duration",
    ),
    (
        "bad_aggregate",
        "rules:\n  - id: a\n    match: { kind: air }\n    aggregates: { pm: median(pm25) }\n    condition: pm > 3\n    severity: minor\n",
        ":4:",
        "unknown aggregate `median`",
    ),
    (
        "bad_kind",
        "rules:\n  - id: a\n    match: { kind: volcano }\n    absence: 5m\n    severity: minor\n",
        ":3:",
        "unknown kind `volcano`",
    ),
    (
        "bad_template",
        "rules:\n  - id: a\n    match: { kind: air }\n    absence: 5m\n    severity: minor\n    message: \"{station} quiet\"\n",
        ":6:",
        "unknown placeholder",
    ),
    (
        "missing_severity",
        "rules:\n  - id: a\n    match: { kind: air }\n    absence: 5m\n",
        ":2:",
        "severity",
    ),
];

#[test]
fn every_broken_file_fails_with_file_and_line() {
    for (name, text, line, words) in BROKEN {
        let dir = broken_dir(name, &[("good.yaml", "rules:\n  - id: fine\n    match: { kind: air }\n    absence: 5m\n    severity: minor\n"), ("broken.yaml", text)]);
        let out = check(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} passed but must fail");
        let located = format!("broken.yaml{line}");
        assert!(
            stderr.contains(&located),
            "{name}: expected `{located}` in:\n{stderr}"
        );
        assert!(
            stderr.contains(words),
            "{name}: expected `{words}` in:\n{stderr}"
        );
        assert!(
            !stderr.contains("good.yaml"),
            "{name}: the good file has no problem:\n{stderr}"
        );
    }
}

#[test]
fn a_bad_lookup_table_fails_with_its_line() {
    let dir = broken_dir(
        "bad_lookup",
        &[(
            "ok.yaml",
            "rules:\n  - id: a\n    match: { kind: air }\n    absence: 5m\n    severity: minor\n",
        )],
    );
    std::fs::write(
        dir.join("lookups/stations.csv"),
        "source,cod_max\nA,75\nB,lots\n",
    )
    .unwrap();
    let out = check(&dir);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stations.csv:3:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn duplicate_ids_across_files_point_at_both() {
    let rule =
        "rules:\n  - id: same\n    match: { kind: air }\n    absence: 5m\n    severity: minor\n";
    let dir = broken_dir("dup", &[("a.yaml", rule), ("b.yaml", rule)]);
    let out = check(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("b.yaml:2:") && stderr.contains("a.yaml:2"),
        "{stderr}"
    );
}

#[test]
fn a_missing_directory_is_an_error_not_a_pass() {
    let out = check(Path::new("/nonexistent/watchfloor-rules"));
    assert!(!out.status.success());
}

#[test]
fn sectors_name_known_kinds_and_rules_and_rules_name_known_sectors() {
    let base =
        std::env::temp_dir().join(format!("watchfloor-rules-{}-sectors", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let sectors = std::fs::read_to_string(root().join("alert-rules/city/sectors.csv")).unwrap();
    let line_of = |id: &str| {
        1 + sectors
            .lines()
            .position(|l| l.starts_with(&format!("{id},")))
            .unwrap()
    };
    // (case, the sectors file, a rule file added, the error's place, its words)
    let transport = line_of("transport");
    let cases = [
        (
            "unknown_rule",
            sectors.replace("camera_wrong_way camera_congestion camera_accident\n", "camera_wrong_way camera_congestoin camera_accident\n"),
            None,
            format!("sectors.csv:{transport}:"),
            "sector `transport` names unknown rule `camera_congestoin`".to_string(),
        ),
        (
            "unknown_kind",
            sectors.replace("Department of Construction,traffic camera,", "Department of Construction,traffic drone,"),
            None,
            format!("sectors.csv:{transport}:"),
            "unknown station kind `drone`".to_string(),
        ),
        (
            "unknown_label",
            sectors.clone(),
            Some("rules:\n  - id: extra\n    match: { kind: air }\n    absence: 5m\n    severity: minor\n    labels: { sector: finance }\n"),
            "extra.yaml:2:".to_string(),
            "label `sector` names unknown sector `finance`".to_string(),
        ),
    ];
    for (name, sectors_text, extra, place, words) in cases {
        assert!(
            extra.is_some() || sectors_text != sectors,
            "{name}: the edit no longer applies to sectors.csv"
        );
        let dir = base.join(name);
        copy_dir(&root().join("alert-rules"), &dir);
        std::fs::write(dir.join("city/sectors.csv"), sectors_text).unwrap();
        if let Some(text) = extra {
            std::fs::write(dir.join("extra.yaml"), text).unwrap();
        }
        let out = check(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} passed but must fail");
        assert!(
            stderr.contains(&place) && stderr.contains(&words),
            "{name}: expected `{place}` … `{words}` in:\n{stderr}"
        );
    }
}
