//! `watchfloor playbooks check` and the playbook loading `run --check` and the centre share:
//! a playbook directory checked against the rules its triggers and waits name and the
//! sectors of the city (`city/sectors.csv`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use watchfloor_engine::{RuleError, RuleErrors};
use watchfloor_playbooks::{Known, Library};

/// Loads `dir` checked against the rules (and city) in `rules`.
pub fn load(dir: &Path, rules: &Path) -> Result<Library, RuleErrors> {
    let (set, city) = watchfloor_city::load_rules(rules).map_err(|e| {
        RuleErrors(vec![RuleError {
            file: rules.display().to_string(),
            line: 0,
            column: 0,
            message: format!("the rules playbooks are checked against do not load:\n{e}"),
        }])
    })?;
    let known = Known {
        rules: set.rules.iter().map(|r| r.id.clone()).collect(),
        sectors: city
            .map(|c| c.sectors.all().iter().map(|s| s.id.clone()).collect())
            .unwrap_or_default(),
    };
    Library::load_dir(dir, &known)
}

/// `watchfloor playbooks check <dir> --rules <dir>`.
pub fn check(dir: &Path, rules: &Path) -> Result<ExitCode> {
    match load(dir, rules) {
        Ok(library) => {
            let steps: usize = library.playbooks.iter().map(|p| p.steps.len()).sum();
            println!(
                "ok: {} playbooks ({steps} steps) in {}",
                library.playbooks.len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(crate::problems(&errors)),
    }
}
