//! Playbook files (`playbooks/*.yaml`, one playbook per file): the format and its parsing.
//!
//! Invariants of a loaded [`Playbook`]: step ids are unique (parallel members included);
//! every step kind, role, scope, severity, evidence, condition and duration is known and
//! well formed; every step named (`next`, branches, `start`, escalations, timeouts,
//! `when_resolved`) exists; every step is reachable; every cycle passes through a `wait`
//! (`graph.rs`); notify templates name only known placeholders. `version` is a digest of
//! the file's text: a run pins it, so editing the file never changes a run in progress.

use std::collections::BTreeMap;

use marked_yaml::Spanned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use watchfloor_engine::duration::parse_duration_ms;
use watchfloor_engine::rule::{locate, parse_yaml};
use watchfloor_engine::RuleError;
use watchfloor_model::Severity;

/// A text in Vietnamese and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// Vietnamese.
    pub vi: String,
    /// English.
    pub en: String,
}

/// The account roles that may be given steps (viewers and integrators never act).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An operator (of the alert's commune, or of the city).
    Operator,
    /// An administrator (the duty leader).
    Admin,
}

/// Where the person given a step works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// The alert's (or the incident's) commune or ward.
    Commune,
    /// The whole city.
    City,
}

/// Who a step is for: a role, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    /// The role.
    pub role: Role,
    /// Where.
    pub scope: Reach,
}

/// What a task needs to count as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "choices")]
pub enum Evidence {
    /// Nothing but the click.
    None,
    /// A note (free text).
    Note,
    /// One of these choices.
    Choice(Vec<String>),
    /// A number.
    Number,
    /// An attachment reference (a document number, a file link).
    Attachment,
}

/// Where a notify step (or an escalation) sends its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// An MQTT topic (placeholders allowed).
    Mqtt(String),
    /// A Kafka topic.
    Kafka(String),
    /// A webhook URL.
    Webhook(String),
    /// The people of a role: shown on their screens (the `runs` channel).
    People(Assignee),
}

/// What a `wait` waits for besides time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The alert resolved.
    Resolved,
    /// The alert's severity reached this.
    SeverityAtLeast(Severity),
    /// Another rule fired in the alert's commune.
    RuleFires(String),
}

/// What happens when a step passes its due time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Tell these people.
    pub notify: Option<Assignee>,
    /// Raise the alert's severity to this (never lowers it).
    pub raise_severity: Option<Severity>,
    /// Start these steps.
    pub start: Vec<String>,
}

/// A decision's branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// Its id (what the operator's choice is recorded as).
    pub id: String,
    /// What the button says.
    pub title: Text,
    /// The steps it starts.
    pub next: Vec<String>,
}

/// What a step is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    /// A manual action.
    Task {
        /// What to do.
        title: Text,
        /// Who does it.
        assignee: Assignee,
        /// Due this long after the step starts.
        due_ms: Option<i64>,
        /// What counts as done.
        evidence: Evidence,
        /// What a breach does.
        on_breach: Escalation,
    },
    /// A message sent through an output, rendered from the alert's data at send time.
    Notify {
        /// Where.
        to: Destination,
        /// The message (placeholders: `{severity}`, `{zone}`…).
        message: Text,
    },
    /// A pause: for a duration, or until a condition with a timeout.
    Wait {
        /// Done after this long.
        duration_ms: Option<i64>,
        /// Done when this holds.
        until: Option<Condition>,
        /// With `until`: give up after this long.
        timeout_ms: Option<i64>,
        /// With `until`: the steps a timeout starts (default: `next`).
        on_timeout: Option<Vec<String>>,
    },
    /// The operator picks a branch.
    Decision {
        /// The question.
        title: Text,
        /// Who decides.
        assignee: Assignee,
        /// Due this long after the step starts.
        due_ms: Option<i64>,
        /// The branches.
        branches: Vec<Branch>,
        /// What a breach does.
        on_breach: Escalation,
    },
    /// A named role must approve before the next steps.
    Approval {
        /// What is approved.
        title: Text,
        /// Who approves.
        approver: Assignee,
        /// Due this long after the step starts.
        due_ms: i64,
        /// What happens when it is not given in time.
        on_breach: Escalation,
        /// The steps a refusal starts (none: the path ends).
        on_reject: Vec<String>,
    },
    /// Members that run at once; the group is done when every member is.
    Parallel {
        /// The members' ids.
        members: Vec<String>,
    },
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within the playbook.
    pub id: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: StepKind,
    /// The steps that start when it is done (none: the path ends; parallel members have
    /// none, their group goes on).
    pub next: Vec<String>,
    /// The parallel group it belongs to.
    pub group: Option<String>,
    /// Its line in the file.
    pub line: usize,
}

impl Step {
    /// The kind's name, as written.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            StepKind::Task { .. } => "task",
            StepKind::Notify { .. } => "notify",
            StepKind::Wait { .. } => "wait",
            StepKind::Decision { .. } => "decision",
            StepKind::Approval { .. } => "approval",
            StepKind::Parallel { .. } => "parallel",
        }
    }

    /// Its title (the notify's message for a notify; the id for a wait or a group).
    pub fn title(&self) -> Text {
        match &self.kind {
            StepKind::Task { title, .. }
            | StepKind::Decision { title, .. }
            | StepKind::Approval { title, .. } => title.clone(),
            StepKind::Notify { message, .. } => message.clone(),
            _ => Text {
                vi: self.id.clone(),
                en: self.id.clone(),
            },
        }
    }

    /// Who acts on it (tasks, decisions, approvals).
    pub fn assignee(&self) -> Option<Assignee> {
        match &self.kind {
            StepKind::Task { assignee, .. } | StepKind::Decision { assignee, .. } => {
                Some(*assignee)
            }
            StepKind::Approval { approver, .. } => Some(*approver),
            _ => None,
        }
    }

    /// Its due time after it starts.
    pub fn due_ms(&self) -> Option<i64> {
        match &self.kind {
            StepKind::Task { due_ms, .. } | StepKind::Decision { due_ms, .. } => *due_ms,
            StepKind::Approval { due_ms, .. } => Some(*due_ms),
            _ => None,
        }
    }

    /// Its escalation on breach.
    pub fn on_breach(&self) -> Option<&Escalation> {
        match &self.kind {
            StepKind::Task { on_breach, .. }
            | StepKind::Decision { on_breach, .. }
            | StepKind::Approval { on_breach, .. } => Some(on_breach),
            _ => None,
        }
    }
}

/// When a playbook starts by itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Any of these rules (empty: any rule).
    pub rules: Vec<String>,
    /// Every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// At least this severe.
    pub min_severity: Option<Severity>,
    /// Only in these communes (empty: anywhere).
    pub zones: Vec<String>,
    /// Only once the alert is above the severity it fired with.
    pub escalated_only: bool,
}

/// What a run does when its alert resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhenResolved {
    /// Close the open steps (as no longer needed); otherwise they go on.
    pub finish: bool,
    /// Steps started by the all-clear (e.g. file the report).
    pub start: Vec<String>,
}

/// One playbook, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playbook {
    /// Stable id.
    pub id: String,
    /// Its name.
    pub name: Text,
    /// Its sector (an alert's run is seen by that sector's centres).
    pub sector: Option<String>,
    /// When it starts by itself (none: by hand only).
    pub trigger: Option<Trigger>,
    /// May be started by hand on a reported incident (no alert).
    pub manual: bool,
    /// The steps a run starts with.
    pub start: Vec<String>,
    /// The all-clear.
    pub when_resolved: WhenResolved,
    /// Every step, parallel members included, in file order.
    pub steps: Vec<Step>,
    /// A digest of the file's text.
    pub version: String,
    /// The file it came from.
    pub file: String,
}

impl Playbook {
    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// The placeholders a notify message may use.
pub const PLACEHOLDERS: [&str; 12] = [
    "alert_id",
    "rule",
    "key",
    "zone",
    "zone_name",
    "severity",
    "state",
    "value",
    "message",
    "run",
    "step",
    "playbook",
];

// ---- the file format ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    pub playbook: PlaybookSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextSpec {
    pub vi: Spanned<String>,
    pub en: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssigneeSpec {
    pub role: Spanned<String>,
    #[serde(default)]
    pub scope: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerSpec {
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub min_severity: Option<Spanned<String>>,
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default)]
    pub escalated_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhenResolvedSpec {
    #[serde(default = "yes")]
    pub finish: bool,
    #[serde(default)]
    pub start: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EscalationSpec {
    #[serde(default)]
    pub notify: Option<AssigneeSpec>,
    #[serde(default)]
    pub raise_severity: Option<Spanned<String>>,
    #[serde(default)]
    pub start: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationSpec {
    #[serde(default)]
    pub mqtt: Option<Spanned<String>>,
    #[serde(default)]
    pub kafka: Option<Spanned<String>>,
    #[serde(default)]
    pub webhook: Option<Spanned<String>>,
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    #[serde(default)]
    pub scope: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UntilSpec {
    #[serde(default)]
    pub resolved: Option<bool>,
    #[serde(default)]
    pub severity_at_least: Option<Spanned<String>>,
    #[serde(default)]
    pub rule_fires: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BranchSpec {
    pub id: Spanned<String>,
    pub title: TextSpec,
    #[serde(default)]
    pub next: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    pub id: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub title: Option<TextSpec>,
    #[serde(default)]
    pub assignee: Option<AssigneeSpec>,
    #[serde(default)]
    pub approver: Option<AssigneeSpec>,
    #[serde(default)]
    pub due: Option<Spanned<String>>,
    #[serde(default)]
    pub done_with: Option<Spanned<String>>,
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub on_breach: Option<EscalationSpec>,
    #[serde(default)]
    pub to: Option<DestinationSpec>,
    #[serde(default)]
    pub message: Option<TextSpec>,
    #[serde(default, rename = "for")]
    pub duration: Option<Spanned<String>>,
    #[serde(default)]
    pub until: Option<Spanned<UntilSpec>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub on_timeout: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub branches: Vec<BranchSpec>,
    #[serde(default)]
    pub on_reject: Vec<Spanned<String>>,
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    #[serde(default)]
    pub next: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaybookSpec {
    pub id: Spanned<String>,
    pub name: TextSpec,
    #[serde(default)]
    pub sector: Option<Spanned<String>>,
    #[serde(default)]
    pub trigger: Option<Spanned<TriggerSpec>>,
    #[serde(default)]
    pub manual: bool,
    #[serde(default)]
    pub start: Vec<Spanned<String>>,
    #[serde(default)]
    pub when_resolved: Option<WhenResolvedSpec>,
    pub steps: Vec<StepSpec>,
}

/// Parses one file's text (errors located in `file`).
pub(crate) fn parse_file(file: &str, text: &str) -> Result<PlaybookSpec, RuleError> {
    parse_yaml::<FileSpec>(file, text).map(|f| f.playbook)
}

/// The version of a file's text: the first 12 hex digits of its SHA-256.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A duration field, positive.
pub(crate) fn duration(file: &str, field: &Spanned<String>, errors: &mut Vec<RuleError>) -> i64 {
    match parse_duration_ms(field) {
        Ok(ms) if ms > 0 => ms,
        Ok(_) => {
            errors.push(locate(file, field.span(), "a duration must be above zero"));
            0
        }
        Err(e) => {
            errors.push(locate(
                file,
                field.span(),
                format!("`{}` is not a duration: {e}", **field),
            ));
            0
        }
    }
}
