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

/// The destinations `library`'s notify steps need that `outputs` (and this build) cannot
/// reach: a Kafka topic without a Kafka alert output, an MQTT topic without an MQTT one.
pub fn unreachable(
    library: &Library,
    outputs: &[watchfloor_connectors::config::OutputConfig],
) -> Vec<String> {
    use watchfloor_connectors::config::OutputConfig;
    use watchfloor_playbooks::spec::Destination;
    let kafka = cfg!(feature = "kafka")
        && outputs
            .iter()
            .any(|o| matches!(o, OutputConfig::Kafka { .. }));
    let mqtt = outputs
        .iter()
        .any(|o| matches!(o, OutputConfig::Mqtt { .. }));
    let mut out = Vec::new();
    for pb in &library.playbooks {
        for step in &pb.steps {
            if let watchfloor_playbooks::StepKind::Notify { to, .. } = &step.kind {
                match to {
                    Destination::Kafka(t) if !kafka => out.push(format!(
                        "playbook {} step {}: Kafka topic {t}, but the pipeline has no Kafka alert output{}",
                        pb.id,
                        step.id,
                        if cfg!(feature = "kafka") { "" } else { " (and this build no Kafka)" }
                    )),
                    Destination::Mqtt(t) if !mqtt => out.push(format!(
                        "playbook {} step {}: MQTT topic {t}, but the pipeline has no MQTT alert output",
                        pb.id, step.id
                    )),
                    _ => {}
                }
            }
        }
    }
    out
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
