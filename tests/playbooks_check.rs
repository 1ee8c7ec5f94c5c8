//! End-to-end: `watchfloor playbooks check` passes the shipped playbooks (checked against
//! the shipped rules and sectors) and refuses a broken copy with its `file:line`; `run
//! --check` refuses a pipeline whose `[server] playbooks` directory is broken.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn watchfloor(args: &[&str], extra: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(args)
        .args(extra)
        .output()
        .expect("watchfloor runs")
}

fn check(dir: &Path) -> Output {
    watchfloor(
        &["playbooks", "check"],
        &[dir, Path::new("--rules"), &root().join("alert-rules")],
    )
}

/// A copy of the shipped playbooks with `flood.yaml` edited by `edit`.
fn broken(name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchfloor-pb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    for entry in std::fs::read_dir(root().join("playbooks")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap();
        let text = if name == "flood.yaml" {
            edit(&text)
        } else {
            text
        };
        std::fs::write(dir.join("playbooks").join(name), text).unwrap();
    }
    dir
}

#[test]
fn the_shipped_playbooks_pass_and_a_broken_one_is_refused_where_it_is_broken() {
    let out = check(&root().join("playbooks"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 8 playbooks"));

    let flood = std::fs::read_to_string(root().join("playbooks/flood.yaml")).unwrap();
    let line_of = |needle: &str| flood.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases: Vec<(&str, String, String, usize)> = vec![
        (
            "kind",
            "kind: decision".into(),
            "kind: vote".into(),
            line_of("kind: decision"),
        ),
        (
            "rule",
            "rules: [flood_early_warning,".into(),
            "rules: [flood_early_warnin,".into(),
            line_of("rules: [flood_early_warning"),
        ),
        (
            "due",
            "due: 30m\n      done_with: number".into(),
            "due: half an hour\n      done_with: number".into(),
            line_of("due: 30m"),
        ),
        (
            "branch",
            "next: [approve_evacuation]".into(),
            "next: [approve_evacuaton]".into(),
            line_of("next: [approve_evacuation]"),
        ),
    ];
    for (name, from, to, line) in cases {
        let dir = broken(name, |t| t.replacen(&from, &to, 1));
        let out = check(&dir.join("playbooks"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(
            err.contains(&format!("flood.yaml:{line}:")),
            "{name}: wanted flood.yaml:{line}: in {err}"
        );
    }

    // `run --check` with the broken directory in `[server] playbooks`.
    let dir = broken("run-check", |t| {
        t.replacen("kind: decision", "kind: vote", 1)
    });
    let pipeline = demo_pipeline("playbooks".as_ref(), &root().join("drills"));
    std::fs::write(dir.join("demo.toml"), pipeline).unwrap();
    let out = watchfloor(&["run", "--check", "--pipeline"], &[&dir.join("demo.toml")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown step kind `vote`"),
        "{err}"
    );
    std::fs::write(dir.join("playbooks/flood.yaml"), &flood).unwrap();
    let out = watchfloor(&["run", "--check", "--pipeline"], &[&dir.join("demo.toml")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shipped_drills_pass_and_a_broken_one_is_refused_where_it_is_broken() {
    let drills = |dir: &Path| {
        watchfloor(
            &["drills", "check"],
            &[
                dir,
                Path::new("--rules"),
                &root().join("alert-rules"),
                Path::new("--playbooks"),
                &root().join("playbooks"),
            ],
        )
    };
    let out = drills(&root().join("drills"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 4 drills"));
    let dir = std::env::temp_dir().join(format!("watchfloor-drills-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flood = std::fs::read_to_string(root().join("drills/flood.yaml")).unwrap();
    let line = flood
        .lines()
        .position(|l| l.contains("station: CT-HY-01"))
        .unwrap()
        + 1;
    std::fs::write(
        dir.join("flood.yaml"),
        flood.replace("station: CT-HY-01", "station: CT-HY-99"),
    )
    .unwrap();
    let out = drills(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!("flood.yaml:{line}:"))
            && err.contains("unknown station `CT-HY-99`"),
        "{err}"
    );

    // `run --check` with the broken directory in `[server] drills`.
    let pipeline = demo_pipeline(&root().join("playbooks"), &dir);
    std::fs::write(dir.join("demo.toml"), pipeline).unwrap();
    let out = watchfloor(&["run", "--check", "--pipeline"], &[&dir.join("demo.toml")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown station `CT-HY-99`"),
        "{err}"
    );
}

/// The demo pipeline file with its paths absolute, its playbooks and drills from the given
/// folders (a relative one stays relative to the copy).
fn demo_pipeline(playbooks: &Path, drills: &Path) -> String {
    std::fs::read_to_string(root().join("pipelines/demo.toml"))
        .unwrap()
        .replace(
            "rules = \"../alert-rules\"",
            &format!("rules = {:?}", root().join("alert-rules")),
        )
        .replace(
            "accounts = \"demo-accounts.toml\"",
            &format!(
                "accounts = {:?}",
                root().join("pipelines/demo-accounts.toml")
            ),
        )
        .replace(
            "indicators = \"../indicators\"",
            &format!("indicators = {:?}", root().join("indicators")),
        )
        .replace(
            "playbooks = \"../playbooks\"",
            &format!("playbooks = {playbooks:?}"),
        )
        .replace("drills = \"../drills\"", &format!("drills = {drills:?}"))
}
