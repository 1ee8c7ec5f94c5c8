//! Runs in event time: a notify renders the alert as it is when sent; a due step breaches
//! once and escalates once; a run stored and taken back fires its timers on time, nothing
//! twice; a re-fire continues the alert's run; a parallel group waits for every member; a
//! reload leaves runs on the version they started with.

use watchfloor_model::{AlertState, Severity};
use watchfloor_playbooks::{Action, Actor, Book, Effect, Known, Library, Run, Subject};

const MIN: i64 = 60_000;

const PLAYBOOK: &str = r#"playbook:
  id: spill
  name: { vi: "Sự cố", en: "Spill" }
  trigger: { rules: [cod_high] }
  steps:
    - id: check
      kind: task
      title: { vi: "Kiểm tra", en: "Check" }
      assignee: { role: operator }
      due: 5m
      on_breach: { notify: { role: admin, scope: city }, raise_severity: critical }
      next: [hold]
    - id: hold
      kind: wait
      for: 10m
      next: [tell, both]
    - id: tell
      kind: notify
      to: { webhook: "https://example.org/hook" }
      message: { vi: "{severity} tại {key}", en: "{severity} at {key}" }
    - id: both
      kind: parallel
      steps:
        - { id: a, kind: task, title: { vi: a, en: a }, assignee: { role: operator } }
        - { id: b, kind: task, title: { vi: b, en: b }, assignee: { role: operator } }
"#;

fn book(text: &str) -> Book {
    Book::new(
        Library::from_sources(&[("spill.yaml".into(), text.into())], &Known::default()).unwrap(),
    )
}

fn alert(severity: Severity, state: AlertState) -> Subject {
    Subject {
        alert_id: Some("A1".into()),
        rule: "cod_high".into(),
        key: "CT-DIS-09".into(),
        zone: Some("long_hoa".into()),
        zone_name: None,
        sectors: vec![],
        severity,
        fired_severity: Severity::Major,
        state,
        value: Some(210.0),
        message: String::new(),
        labels: Default::default(),
        exercise: None,
    }
}

fn operator() -> Actor {
    Actor {
        name: "op".into(),
        role: "operator".into(),
        communes: Some(vec!["long_hoa".into()]),
    }
}

fn done() -> Action {
    Action::Complete {
        value: None,
        note: None,
    }
}

#[test]
fn a_breach_escalates_once_and_a_notify_renders_the_alert_when_it_is_sent() {
    let mut book = book(PLAYBOOK);
    let t0 = 1_800_000_000_000;
    book.on_transition(alert(Severity::Major, AlertState::Firing), t0);
    assert_eq!(book.next_due(), Some(t0 + 5 * MIN));
    assert!(book.tick(t0 + 5 * MIN - 1).events.is_empty(), "not due yet");
    let out = book.tick(t0 + 5 * MIN);
    let raised: Vec<_> = out
        .effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::RaiseSeverity {
                    severity: Severity::Critical,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(raised.len(), 1, "{:?}", out.effects);
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Notify { id, .. } if id == "spill:A1/check/1/breach")));
    assert!(
        book.tick(t0 + 60 * MIN).events.is_empty(),
        "a breach fires once"
    );
    // The engine carries out the escalation: the alert is critical now.
    book.on_transition(alert(Severity::Critical, AlertState::Firing), t0 + 6 * MIN);
    book.act("spill:A1", "check", done(), &operator(), t0 + 7 * MIN)
        .unwrap();
    let out = book.tick(t0 + 17 * MIN);
    let texts: Vec<(String, String)> = out
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { id, text, .. } => Some((id.clone(), text.en.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [(
            "spill:A1/tell/1".to_string(),
            "critical at CT-DIS-09".to_string()
        )]
    );
}

#[test]
fn a_stored_run_fires_its_timers_on_time_after_a_restart_and_nothing_twice() {
    let t0 = 1_800_000_000_000;
    let mut first = book(PLAYBOOK);
    first.on_transition(alert(Severity::Major, AlertState::Firing), t0);
    first
        .act("spill:A1", "check", done(), &operator(), t0 + MIN)
        .unwrap();
    // Stored as JSON (what the store keeps), the process killed, a new book restored.
    let stored: Vec<String> = first
        .runs()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let versions: Vec<_> = first.playbooks().map(|p| (**p).clone()).collect();
    drop(first);
    let mut second = book(PLAYBOOK);
    second.restore(
        versions,
        stored
            .iter()
            .map(|s| serde_json::from_str::<Run>(s).unwrap())
            .collect(),
    );
    assert_eq!(
        second.next_due(),
        Some(t0 + 11 * MIN),
        "the wait's due time came back"
    );
    assert!(second.tick(t0 + 11 * MIN - 1).effects.is_empty());
    let out = second.tick(t0 + 11 * MIN);
    assert_eq!(out.effects.len(), 1, "{:?}", out.effects);
    assert!(
        second.tick(t0 + 11 * MIN).effects.is_empty(),
        "nothing fires twice"
    );
    // The breach time had passed while the check was done: no breach after the restart.
    assert!(second.run("spill:A1").unwrap().steps["check"]
        .breached_at
        .is_none());
}

#[test]
fn a_refire_continues_the_run_and_a_group_waits_for_every_member() {
    let t0 = 1_800_000_000_000;
    let mut book = book(PLAYBOOK);
    book.on_transition(alert(Severity::Major, AlertState::Firing), t0);
    book.act("spill:A1", "check", done(), &operator(), t0 + MIN)
        .unwrap();
    book.tick(t0 + 11 * MIN);
    book.act("spill:A1", "a", done(), &operator(), t0 + 12 * MIN)
        .unwrap();
    let run = book.run("spill:A1").unwrap();
    assert!(run.finished_at.is_none(), "b is still open");
    assert_eq!(
        run.steps["both"].status,
        watchfloor_playbooks::Status::Active
    );
    book.act("spill:A1", "b", done(), &operator(), t0 + 13 * MIN)
        .unwrap();
    assert_eq!(
        book.run("spill:A1").unwrap().finished_at,
        Some(t0 + 13 * MIN)
    );
    // Resolved then firing again: the same run goes on (its steps start again), no second run.
    book.on_transition(alert(Severity::Major, AlertState::Resolved), t0 + 20 * MIN);
    book.on_transition(alert(Severity::Major, AlertState::Firing), t0 + 30 * MIN);
    assert_eq!(book.runs().count(), 1);
    let run = book.run("spill:A1").unwrap();
    assert!(run.finished_at.is_none());
    assert_eq!(run.steps["check"].iteration, 2);
}

#[test]
fn a_reload_leaves_a_run_on_its_version() {
    let t0 = 1_800_000_000_000;
    let mut book = book(PLAYBOOK);
    book.on_transition(alert(Severity::Major, AlertState::Firing), t0);
    let pinned = book.run("spill:A1").unwrap().version.clone();
    let edited = PLAYBOOK.replace("due: 5m", "due: 1m");
    book.reload(
        Library::from_sources(&[("spill.yaml".into(), edited)], &Known::default()).unwrap(),
    );
    assert_ne!(book.playbooks().next().unwrap().version, pinned);
    assert_eq!(book.run("spill:A1").unwrap().version, pinned);
    assert_eq!(
        book.next_due(),
        Some(t0 + 5 * MIN),
        "the run keeps its 5-minute due time"
    );
}

#[test]
fn a_run_whose_version_did_not_come_back_has_no_timers() {
    let t0 = 1_800_000_000_000;
    let mut first = book(PLAYBOOK);
    first.on_transition(alert(Severity::Major, AlertState::Firing), t0);
    let runs: Vec<Run> = first.runs().cloned().collect();
    let mut second = Book::default();
    second.restore(Vec::new(), runs);
    assert_eq!(
        second.next_due(),
        None,
        "no version: nothing due (never a busy loop)"
    );
    assert!(second.tick(t0 + 60 * MIN).events.is_empty());
}

#[test]
fn an_aborted_exercise_ends_its_runs_and_starts_no_more() {
    let mut book = book(PLAYBOOK);
    let t0 = 1_800_000_000_000;
    let drill = |id: &str, exercise: &str| Subject {
        alert_id: Some(id.into()),
        exercise: Some(exercise.into()),
        ..alert(Severity::Major, AlertState::Firing)
    };
    book.on_transition(drill("X1", "drill-1"), t0);
    book.on_transition(drill("Y1", "drill-2"), t0);
    book.on_transition(alert(Severity::Major, AlertState::Firing), t0);
    let out = book.abort_exercise("drill-1", t0 + MIN, Some("leader".into()));
    assert!(out
        .events
        .iter()
        .any(|e| e.run == "spill:X1" && e.event == "run_aborted"));
    assert!(out.events.iter().any(|e| e.run == "spill:X1"
        && e.step.as_deref() == Some("check")
        && e.event == "skipped"));
    assert!(book.run("spill:X1").unwrap().is_finished());
    assert!(
        !book.run("spill:Y1").unwrap().is_finished(),
        "another drill"
    );
    assert!(!book.run("spill:A1").unwrap().is_finished(), "a real run");
    // A transition of the ended exercise that was queued before the end starts nothing.
    book.on_transition(drill("X2", "drill-1"), t0 + 2 * MIN);
    assert!(book.run("spill:X2").is_none());
    assert!(
        book.abort_exercise("drill-1", t0 + 3 * MIN, None)
            .events
            .is_empty(),
        "twice changes nothing"
    );
}
