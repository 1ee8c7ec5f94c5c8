//! Watchfloor scenario playbooks: the standard operating procedures an alert starts.
//!
//! `playbooks/*.yaml` (one playbook per file, `spec.rs` for the format) are validated with
//! `file:line` errors (`compile.rs`, `graph.rs`); a run (`run.rs`, `act.rs`) is a pure
//! state machine over the playbook version it pinned, with due times as data; the
//! [`Book`] (`book.rs`) starts runs on alerts and fires due times. The host (the server)
//! stores runs and their timelines, ticks the book and carries out its effects.
//!
//! Invariants: nothing here does I/O or reads a clock; the same inputs at the same times
//! give the same runs, timelines and effects.

mod act;
mod book;
mod compile;
pub mod graph;
mod render;
mod run;
pub mod spec;

use std::path::Path;
use std::sync::Arc;

use watchfloor_engine::{RuleError, RuleErrors};

pub use act::{may_act, ActError, Action, Actor};
pub use book::{triggers, Book};
pub use compile::Known;
pub use render::render;
pub use run::{Effect, Out, Run, RunEvent, Status, StepState, Subject};
pub use spec::{Playbook, Step, StepKind};

/// The playbooks of a directory.
#[derive(Debug, Default, Clone)]
pub struct Library {
    /// Every playbook, in file order.
    pub playbooks: Vec<Arc<Playbook>>,
    /// Each file's text by playbook id (stored with the runs that pin its version).
    pub texts: Vec<(String, String)>,
}

fn io_error(path: &Path, e: std::io::Error) -> RuleErrors {
    RuleErrors(vec![RuleError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: e.to_string(),
    }])
}

impl Library {
    /// Loads every `*.yaml`/`*.yml` file of `dir` (not recursive), in name order. Every
    /// problem of every file is reported.
    pub fn load_dir(dir: &Path, known: &Known) -> Result<Library, RuleErrors> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| io_error(&file, e))?;
            sources.push((file.display().to_string(), text));
        }
        Self::from_sources(&sources, known)
    }

    /// Compiles `(file name, text)` pairs.
    pub fn from_sources(
        sources: &[(String, String)],
        known: &Known,
    ) -> Result<Library, RuleErrors> {
        let mut errors = Vec::new();
        let mut library = Library::default();
        for (file, text) in sources {
            let spec = match spec::parse_file(file, text) {
                Ok(spec) => spec,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match compile::compile(file, &spec, spec::version_of(text), known) {
                Ok(pb) => {
                    if let Some(first) = library.playbooks.iter().find(|p| p.id == pb.id) {
                        errors.push(watchfloor_engine::rule::locate(
                            file,
                            spec.id.span(),
                            format!("playbook `{}` is already defined in {}", pb.id, first.file),
                        ));
                    } else {
                        library.texts.push((pb.id.clone(), text.clone()));
                        library.playbooks.push(Arc::new(pb));
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(library)
        } else {
            Err(RuleErrors(errors))
        }
    }

    /// A playbook by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Playbook>> {
        self.playbooks.iter().find(|p| p.id == id)
    }
}
