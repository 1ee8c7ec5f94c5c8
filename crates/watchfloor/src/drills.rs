//! `watchfloor drills check`: a drill directory checked against the city's stations and
//! communes, the rules its outcomes name and the playbook steps they time.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use watchfloor_drills::{Drill, Known};
use watchfloor_engine::{RuleError, RuleErrors};

/// What drill scripts are checked against: the stations and communes of the city beside
/// the rules in `rules`, the rule ids, and the steps of the playbooks in `playbooks`
/// (none: no steps).
pub fn known(rules: &Path, playbooks: Option<&Path>) -> Result<Known, RuleErrors> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        RuleErrors(vec![RuleError {
            file: what.to_string(),
            line: 0,
            column: 0,
            message: format!("drills are checked against it, and it does not load:\n{e}"),
        }])
    };
    let (set, city) =
        watchfloor_city::load_rules(rules).map_err(|e| fail(&rules.display().to_string(), &e))?;
    let steps = match playbooks {
        Some(dir) => crate::playbooks::load(dir, rules)
            .map_err(|e| fail(&dir.display().to_string(), &e))?
            .playbooks
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| (p.id.clone(), s.id.clone())))
            .collect(),
        None => Vec::new(),
    };
    Ok(Known {
        stations: city
            .as_ref()
            .map(|c| c.stations.iter().map(|s| s.id.clone()).collect())
            .unwrap_or_default(),
        zones: city
            .as_ref()
            .map(|c| c.zones.zones.iter().map(|z| z.id.clone()).collect())
            .unwrap_or_default(),
        rules: set.rules.iter().map(|r| r.id.clone()).collect(),
        steps,
    })
}

/// Loads `dir` checked against the rules (and city) in `rules` and the playbooks in
/// `playbooks`.
pub fn load(dir: &Path, rules: &Path, playbooks: Option<&Path>) -> Result<Vec<Drill>, RuleErrors> {
    watchfloor_drills::load_dir(dir, &known(rules, playbooks)?)
}

/// The scripts of `dir` (file name, text), every one checked, for the centre.
pub fn scripts(dir: &Path, known: &Known) -> Result<Vec<(String, String)>, RuleErrors> {
    let drills = watchfloor_drills::load_dir(dir, known)?;
    drills
        .into_iter()
        .map(|d| {
            let text = std::fs::read_to_string(&d.file).map_err(|e| {
                RuleErrors(vec![RuleError {
                    file: d.file.clone(),
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }])
            })?;
            Ok((d.file, text))
        })
        .collect()
}

/// `watchfloor drills check <dir> --rules <dir> --playbooks <dir>`.
pub fn check(dir: &Path, rules: &Path, playbooks: &Path) -> Result<ExitCode> {
    match load(dir, rules, Some(playbooks)) {
        Ok(drills) => {
            let injects: usize = drills.iter().map(|d| d.injects.len()).sum();
            let outcomes: usize = drills.iter().map(|d| d.outcomes.len()).sum();
            println!(
                "ok: {} drills ({injects} injects, {outcomes} expected outcomes) in {}",
                drills.len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(crate::problems(&errors)),
    }
}
