//! `playbooks check`'s refusals, each with its `file:line`: an unknown step kind, an
//! unknown role, a step no path reaches, a cycle without a wait, a branch naming a missing
//! step, a due time that is not a duration — and the other mistakes a playbook writer makes.

use watchfloor_playbooks::{Known, Library};

/// A valid playbook; each test breaks one line of it.
const GOOD: &str = r#"playbook:
  id: p
  name: { vi: "P", en: "P" }
  trigger: { rules: [r1], min_severity: major }
  steps:
    - id: check
      kind: task
      title: { vi: "Kiểm tra", en: "Check" }
      assignee: { role: operator, scope: commune }
      due: 10m
      next: [decide]
    - id: decide
      kind: decision
      title: { vi: "Quyết định", en: "Decide" }
      assignee: { role: operator }
      branches:
        - { id: a, title: { vi: "A", en: "A" }, next: [tell] }
        - { id: b, title: { vi: "B", en: "B" }, next: [pause] }
    - id: tell
      kind: notify
      to: { mqtt: "ioc/notify/{zone}" }
      message: { vi: "{severity} {key}", en: "{severity} {key}" }
    - id: pause
      kind: wait
      for: 5m
      next: [decide]
"#;

fn known() -> Known {
    Known {
        rules: vec!["r1".into(), "r2".into()],
        sectors: vec!["environment".into()],
    }
}

fn errors(text: &str) -> Vec<String> {
    match Library::from_sources(&[("pb.yaml".into(), text.into())], &known()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn refused(text: &str, line: usize, words: &str) {
    let got = errors(text);
    assert!(
        got.iter()
            .any(|e| e.starts_with(&format!("pb.yaml:{line}:")) && e.contains(words)),
        "expected pb.yaml:{line}: … {words}; got {got:#?}"
    );
}

#[test]
fn the_good_playbook_loads_with_its_cycle_through_a_wait() {
    assert_eq!(errors(GOOD), Vec::<String>::new());
    let lib = Library::from_sources(&[("pb.yaml".into(), GOOD.into())], &known()).unwrap();
    let pb = lib.get("p").unwrap();
    assert_eq!(pb.start, vec!["check"]);
    assert_eq!(pb.steps.len(), 4);
    assert_eq!(pb.version.len(), 12);
}

#[test]
fn an_unknown_step_kind_is_refused_at_its_line() {
    refused(
        &GOOD.replace("kind: notify", "kind: email"),
        20,
        "unknown step kind `email`",
    );
}

#[test]
fn an_unknown_role_is_refused_at_its_line() {
    refused(
        &GOOD.replace(
            "role: operator, scope: commune",
            "role: mayor, scope: commune",
        ),
        9,
        "unknown role `mayor`",
    );
    refused(
        &GOOD.replace("assignee: { role: operator }", "assignee: { role: viewer }"),
        15,
        "cannot act",
    );
}

#[test]
fn a_step_no_path_reaches_is_refused() {
    // Branch b no longer leads to `pause`: nothing does.
    refused(
        &GOOD.replace("next: [pause]", "next: [tell]"),
        23,
        "step `pause` is never reached",
    );
}

#[test]
fn a_cycle_without_a_wait_is_refused() {
    let text = GOOD.replace("next: [pause] }", "next: [check] }");
    // `pause` is now unreachable too; the cycle check + reachability both speak.
    let got = errors(&text);
    assert!(
        got.iter()
            .any(|e| e.contains("form a cycle without a wait") && e.starts_with("pb.yaml:6:")),
        "{got:#?}"
    );
}

#[test]
fn a_branch_naming_a_missing_step_is_refused() {
    refused(
        &GOOD.replace("next: [tell] }", "next: [tel] }"),
        17,
        "no step `tel`",
    );
}

#[test]
fn a_due_time_that_is_not_a_duration_is_refused() {
    refused(
        &GOOD.replace("due: 10m", "due: soon"),
        10,
        "`soon` is not a duration",
    );
    refused(&GOOD.replace("due: 10m", "due: 10"), 10, "needs a unit");
}

#[test]
fn other_mistakes_are_refused_where_they_are() {
    refused(
        &GOOD.replace("rules: [r1]", "rules: [r9]"),
        4,
        "unknown rule `r9`",
    );
    refused(
        &GOOD.replace("{severity} {key}\", en", "{severity} {station}\", en"),
        22,
        "unknown placeholder `{station}`",
    );
    refused(
        &GOOD.replace("      for: 5m\n", ""),
        24,
        "needs either `for`",
    );
    refused(
        &GOOD.replace(
            "  - id: decide\n      kind: decision",
            "  - id: check\n      kind: decision",
        ),
        12,
        "already defined at line 6",
    );
    refused(
        &GOOD.replace("min_severity: major", "min_severity: urgent"),
        4,
        "unknown severity `urgent`",
    );
    refused(
        &GOOD.replace("  trigger: { rules: [r1], min_severity: major }\n", ""),
        2,
        "needs a `trigger` or `manual: true`",
    );
    refused(&format!("{GOOD}    - id: ok\n      kind: approval\n      title: {{ vi: a, en: a }}\n      approver: {{ role: admin }}\n"), 28, "never hang");
}

#[test]
fn every_problem_of_a_file_is_reported_not_only_the_first() {
    let text = GOOD
        .replace("kind: notify", "kind: email")
        .replace("due: 10m", "due: soon");
    assert_eq!(errors(&text).len(), 2, "{:#?}", errors(&text));
}
