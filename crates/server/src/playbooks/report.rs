//! The playbooks part of the daily report: per playbook and step, in the caller's scope,
//! what the day's timelines say — steps started, completed, breached, and the median and
//! longest time from a step's start to its completion (both within the day) — and the runs
//! started and finished that day.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use watchfloor_store::{RunRow, Store, StoreError};

use crate::auth::Account;

#[derive(Default)]
struct Step {
    started: u64,
    completed: u64,
    breached: u64,
    seconds: Vec<f64>,
}

/// The day starting at `from` (epoch ms, 24 h).
pub(crate) async fn day(store: &Store, who: &Account, from: i64) -> Result<Value, StoreError> {
    let events = store.run_events_between(from, from + 86_400_000).await?;
    let mut runs: HashMap<String, Option<RunRow>> = HashMap::new();
    let mut steps: BTreeMap<(String, String), Step> = BTreeMap::new();
    let mut started_at: HashMap<(String, String), i64> = HashMap::new();
    let (mut runs_started, mut runs_finished) = (
        BTreeMap::<String, u64>::new(),
        BTreeMap::<String, u64>::new(),
    );
    for e in events {
        if !runs.contains_key(&e.run) {
            let row = store.run(&e.run).await?;
            runs.insert(e.run.clone(), row);
        }
        let Some(run) = runs.get(&e.run).and_then(Option::as_ref) else {
            continue;
        };
        let sectors: Vec<String> = run.sectors.split_whitespace().map(str::to_string).collect();
        if !who.sees(run.zone.as_deref(), None, &sectors) {
            continue;
        }
        match (e.step, e.event.as_str()) {
            (None, "run_started") => *runs_started.entry(run.playbook.clone()).or_default() += 1,
            (None, "run_finished") => *runs_finished.entry(run.playbook.clone()).or_default() += 1,
            (Some(step), event) => {
                let s = steps
                    .entry((run.playbook.clone(), step.clone()))
                    .or_default();
                match event {
                    "started" => {
                        s.started += 1;
                        started_at.insert((e.run.clone(), step), e.at);
                    }
                    "breached" => s.breached += 1,
                    "completed" | "chosen" | "approved" | "rejected" => {
                        s.completed += 1;
                        if let Some(t) = started_at.get(&(e.run.clone(), step)) {
                            s.seconds.push((e.at - t) as f64 / 1000.0);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let rows: Vec<Value> = steps
        .into_iter()
        .map(|((playbook, step), mut s)| {
            s.seconds.sort_by(f64::total_cmp);
            let median = (!s.seconds.is_empty()).then(|| s.seconds[s.seconds.len() / 2]);
            json!({"playbook": playbook, "step": step, "started": s.started, "completed": s.completed,
                   "breached": s.breached, "median_seconds": median, "max_seconds": s.seconds.last()})
        })
        .collect();
    Ok(json!({"runs_started": runs_started, "runs_finished": runs_finished, "steps": rows}))
}
