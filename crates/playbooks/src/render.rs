//! Notify templates: `{placeholder}` replaced by the subject's data as it is when the step
//! starts (its send time), so a message sent after an escalation says the new severity.
//! Unknown placeholders are refused when the playbook loads (`compile.rs`); here they are
//! left as written.

use crate::run::Subject;

/// Renders `template` for `subject` in run `run`, step `step` of playbook `playbook`.
pub fn render(template: &str, subject: &Subject, run: &str, step: &str, playbook: &str) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &rest[open + 1..open + close];
        match value(name, subject, run, step, playbook) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn value(name: &str, s: &Subject, run: &str, step: &str, playbook: &str) -> Option<String> {
    Some(match name {
        "alert_id" => s.alert_id.clone().unwrap_or_default(),
        "rule" => s.rule.clone(),
        "key" => s.key.clone(),
        "zone" => s.zone.clone().unwrap_or_default(),
        "zone_name" => s
            .zone_name
            .clone()
            .or_else(|| s.zone.clone())
            .unwrap_or_default(),
        "severity" => s.severity.as_str().to_string(),
        "state" => match s.state {
            watchfloor_model::AlertState::Firing => "firing".into(),
            watchfloor_model::AlertState::Resolved => "resolved".into(),
        },
        "value" => s
            .value
            .map(|v| format!("{}", (v * 100.0).round() / 100.0))
            .unwrap_or_default(),
        "message" => s.message.clone(),
        "run" => run.to_string(),
        "step" => step.to_string(),
        "playbook" => playbook.to_string(),
        other => {
            return other
                .strip_prefix("labels.")
                .map(|l| s.labels.get(l).cloned().unwrap_or_default())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchfloor_model::{AlertState, Severity};

    #[test]
    fn fills_every_placeholder_and_keeps_unknown_ones() {
        let s = Subject {
            alert_id: Some("a1".into()),
            rule: "flood_alarm_2".into(),
            key: "CT-WL-01".into(),
            zone: Some("ninh_kieu".into()),
            zone_name: Some("Ninh Kiều".into()),
            sectors: vec![],
            severity: Severity::Critical,
            fired_severity: Severity::Major,
            state: AlertState::Firing,
            value: Some(2.456),
            message: "m".into(),
            labels: [("alarm_level".to_string(), "2".to_string())].into(),
            exercise: None,
        };
        assert_eq!(
            render("{severity} at {key} in {zone_name} ({value} m, level {labels.alarm_level}) {nope} {run}/{step}", &s, "r", "st", "p"),
            "critical at CT-WL-01 in Ninh Kiều (2.46 m, level 2) {nope} r/st"
        );
        assert_eq!(render("no brace {", &s, "r", "s", "p"), "no brace {");
    }
}
