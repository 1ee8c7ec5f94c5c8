//! Watchfloor emergency drills: scripted exercises.
//!
//! `drills/*.yaml` (one drill per file, `spec.rs`) are validated with `file:line` errors;
//! `schedule.rs` turns the master list of injects into timed actions and keeps the drill's
//! clock (speed factor, pause, resume); `score.rs` turns what was observed into the
//! after-action findings. The host (the centre) injects, marks everything the drill causes
//! as an exercise, and stores the drill and its report.
//!
//! Invariants: nothing here does I/O or reads a clock.

pub mod schedule;
pub mod score;
pub mod spec;

use std::path::Path;

use watchfloor_engine::{RuleError, RuleErrors};

pub use schedule::{plan, Action, Clock, Planned};
pub use score::{score, Findings, Observed, Rating, SeenAlert, SeenStep, Verdict};
pub use spec::{Drill, Known};

/// Loads every `*.yaml`/`*.yml` drill of `dir`, in name order; every problem reported.
pub fn load_dir(dir: &Path, known: &Known) -> Result<Vec<Drill>, RuleErrors> {
    let io = |p: &Path, e: std::io::Error| {
        RuleErrors(vec![RuleError {
            file: p.display().to_string(),
            line: 0,
            column: 0,
            message: e.to_string(),
        }])
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut drills: Vec<Drill> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
        match spec::compile(&file.display().to_string(), &text, known) {
            Ok(d) => {
                if let Some(first) = drills.iter().find(|x| x.id == d.id) {
                    errors.push(RuleError {
                        file: d.file.clone(),
                        line: 1,
                        column: 1,
                        message: format!("drill `{}` is already defined in {}", d.id, first.file),
                    });
                } else {
                    drills.push(d);
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(drills)
    } else {
        Err(RuleErrors(errors))
    }
}
