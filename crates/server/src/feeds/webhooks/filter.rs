//! Which alerts a subscription gets: rules, packs, lowest severity, communes, and whether
//! drills' alerts are included (never unless asked).
//!
//! Invariants: an empty list lets everything through; exercise alerts pass only with
//! `exercises: true`.

use serde::{Deserialize, Serialize};

use watchfloor_model::{Severity, EXERCISE_LABEL};
use watchfloor_store::AlertRow;

/// A subscription's filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only these rules.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only these packs (`labels.pack`).
    #[serde(default)]
    pub packs: Vec<String>,
    /// Only at or above this severity.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only alerts in these communes/wards.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Drills' alerts too.
    #[serde(default)]
    pub exercises: bool,
}

impl Filter {
    /// Does `alert` pass?
    pub fn matches(&self, alert: &AlertRow) -> bool {
        (self.rules.is_empty() || self.rules.contains(&alert.rule))
            && (self.packs.is_empty()
                || alert
                    .labels
                    .get("pack")
                    .is_some_and(|p| self.packs.contains(p)))
            && self.min_severity.is_none_or(|m| alert.severity >= m)
            && (self.zones.is_empty()
                || alert.ward.as_ref().is_some_and(|w| self.zones.contains(w)))
            && (self.exercises || !alert.labels.contains_key(EXERCISE_LABEL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, severity: Severity, ward: &str, exercise: bool) -> AlertRow {
        let mut labels =
            std::collections::BTreeMap::from([("pack".to_string(), "camera".to_string())]);
        if exercise {
            labels.insert(EXERCISE_LABEL.into(), "drill-1".into());
        }
        AlertRow {
            alert_id: "a".into(),
            rule: rule.into(),
            key: "k".into(),
            state: "firing".into(),
            severity,
            fired_at: 0,
            updated_at: 0,
            resolved_at: None,
            value: None,
            message: String::new(),
            labels,
            ward: Some(ward.into()),
            district: None,
            sectors: Vec::new(),
            kind: None,
            location: None,
            ack: None,
            assignee: None,
        }
    }

    #[test]
    fn each_field_narrows_and_exercises_only_when_asked() {
        let all = Filter::default();
        assert!(all.matches(&alert("fire", Severity::Minor, "long_hoa", false)));
        assert!(!all.matches(&alert("fire", Severity::Minor, "long_hoa", true)));
        let drills = Filter {
            exercises: true,
            ..Filter::default()
        };
        assert!(drills.matches(&alert("fire", Severity::Minor, "long_hoa", true)));
        let f = Filter {
            rules: vec!["fire".into()],
            packs: vec!["camera".into()],
            min_severity: Some(Severity::Major),
            zones: vec!["long_hoa".into()],
            exercises: false,
        };
        assert!(f.matches(&alert("fire", Severity::Major, "long_hoa", false)));
        assert!(!f.matches(&alert("flood", Severity::Major, "long_hoa", false)));
        assert!(!f.matches(&alert("fire", Severity::Minor, "long_hoa", false)));
        assert!(!f.matches(&alert("fire", Severity::Critical, "tan_an", false)));
    }
}
