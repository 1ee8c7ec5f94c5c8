//! Runs as store rows and screen views, and back: a run's state is its JSON; the pinned
//! playbook versions are their files' texts (compiled again at restore, without the rule
//! checks: a pinned version stays runnable even if a rule it names was removed since).

use serde_json::{json, Value};

use watchfloor_playbooks::{Book, Effect, Known, Library, Playbook, Run, RunEvent, StepKind};
use watchfloor_store::{OutboxRow, PlaybookVersionRow, RunEventRow, RunRow, Store, StoreError};

use super::RunView;

/// Finished runs kept in memory (and restored) this long.
pub(crate) const FINISHED_KEPT_MS: i64 = 7 * 86_400_000;

pub(crate) fn run_row(run: &Run) -> RunRow {
    RunRow {
        id: run.id.clone(),
        playbook: run.playbook.clone(),
        version: run.version.clone(),
        alert_id: run.subject.alert_id.clone(),
        zone: run.subject.zone.clone(),
        sectors: format!(" {} ", run.subject.sectors.join(" ")),
        exercise: run.subject.exercise.clone(),
        started_at: run.started_at,
        finished_at: run.finished_at,
        next_due: run.next_due(),
        state: serde_json::to_string(run).expect("runs serialise"),
    }
}

pub(crate) fn event_row(e: &RunEvent) -> RunEventRow {
    RunEventRow {
        run: e.run.clone(),
        seq: e.seq as i64,
        at: e.at,
        step: e.step.clone(),
        event: e.event.clone(),
        actor: e.by.clone(),
        value: e.value.as_ref().map(|v| v.to_string()),
        note: e.note.clone(),
    }
}

/// The deterministic id of an effect.
pub(crate) fn effect_id(effect: &Effect) -> String {
    match effect {
        Effect::Notify { id, .. } => id.clone(),
        Effect::RaiseSeverity {
            run,
            alert_id,
            severity,
        } => format!("{run}/raise/{alert_id}/{}", severity.as_str()),
    }
}

pub(crate) fn outbox_row(effect: &Effect, now: i64) -> OutboxRow {
    let run = match effect {
        Effect::Notify { run, .. } | Effect::RaiseSeverity { run, .. } => run.clone(),
    };
    OutboxRow {
        id: effect_id(effect),
        run,
        effect: serde_json::to_string(effect).expect("effects serialise"),
        created_at: now,
        done_at: None,
        attempts: 0,
        last_error: None,
    }
}

pub(crate) fn version_rows(library: &Library) -> Vec<PlaybookVersionRow> {
    library
        .playbooks
        .iter()
        .zip(&library.texts)
        .map(|(pb, (_, text))| PlaybookVersionRow {
            playbook: pb.id.clone(),
            version: pb.version.clone(),
            file: pb.file.clone(),
            text: text.clone(),
        })
        .collect()
}

/// Takes back the runs (unfinished, or finished within [`FINISHED_KEPT_MS`]) and the
/// versions they pinned.
pub(crate) async fn restore(store: &Store, book: &mut Book, now: i64) -> Result<usize, StoreError> {
    let mut versions: Vec<Playbook> = Vec::new();
    for v in store.playbook_versions().await? {
        match Library::from_sources(&[(v.file.clone(), v.text.clone())], &Known::default()) {
            Ok(lib) => versions.extend(lib.playbooks.iter().map(|p| (**p).clone())),
            Err(e) => {
                tracing::error!(playbook = %v.playbook, version = %v.version, error = %e, "a stored playbook version no longer loads")
            }
        }
    }
    let mut runs = Vec::new();
    for row in store.runs_since(now - FINISHED_KEPT_MS).await? {
        match serde_json::from_str::<Run>(&row.state) {
            Ok(run) => runs.push(run),
            Err(e) => tracing::error!(run = %row.id, error = %e, "a stored run does not read back"),
        }
    }
    let n = runs.len();
    book.restore(versions, runs);
    Ok(n)
}

fn step_json(run: &Run, pb: &Playbook, step: &watchfloor_playbooks::Step) -> Value {
    let state = run.steps.get(&step.id);
    let (branches, evidence) = match &step.kind {
        StepKind::Decision { branches, .. } => (
            branches
                .iter()
                .map(|b| json!({"id": b.id, "title": b.title}))
                .collect::<Vec<_>>(),
            Value::Null,
        ),
        StepKind::Task { evidence, .. } => (
            Vec::new(),
            serde_json::to_value(evidence).unwrap_or(Value::Null),
        ),
        _ => (Vec::new(), Value::Null),
    };
    let _ = pb;
    json!({
        "id": step.id,
        "kind": step.kind_name(),
        "title": step.title(),
        "assignee": step.assignee(),
        "group": step.group,
        "due_ms": step.due_ms(),
        "branches": branches,
        "evidence": evidence,
        "status": state.map(|s| s.status),
        "iteration": state.map(|s| s.iteration),
        "started_at": state.and_then(|s| s.started_at),
        "due_at": state.and_then(|s| s.due_at),
        "breached_at": state.and_then(|s| s.breached_at),
        "finished_at": state.and_then(|s| s.finished_at),
        "by": state.and_then(|s| s.by.clone()),
        "value": state.and_then(|s| s.value.clone()),
        "note": state.and_then(|s| s.note.clone()),
        "assigned_to": state.and_then(|s| s.assigned_to.clone()),
    })
}

/// A run as the screens get it.
pub(crate) fn view(run: &Run, pb: &Playbook) -> RunView {
    let s = &run.subject;
    let data = json!({
        "id": run.id,
        "playbook": run.playbook,
        "name": pb.name,
        "version": run.version,
        "alert_id": s.alert_id,
        "subject": {
            "rule": s.rule, "key": s.key, "zone": s.zone, "zone_name": s.zone_name,
            "severity": s.severity, "state": s.state, "message": s.message, "exercise": s.exercise,
            "sectors": s.sectors,
        },
        "started_at": run.started_at,
        "started_by": run.started_by,
        "finished_at": run.finished_at,
        "next_due": run.next_due(),
        "awaiting_all_clear": run.awaits_all_clear(pb),
        "steps": pb.steps.iter().map(|st| step_json(run, pb, st)).collect::<Vec<_>>(),
    });
    RunView {
        ward: s.zone.clone(),
        sectors: s.sectors.clone(),
        alert_id: s.alert_id.clone(),
        finished: run.finished_at.is_some(),
        data,
    }
}
