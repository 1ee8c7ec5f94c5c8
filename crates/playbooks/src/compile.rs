//! From a parsed file to a [`Playbook`]: every field checked, every problem reported with
//! its `file:line` (not only the first). The graph checks (names, reachability, cycles)
//! are in `graph.rs`.

use marked_yaml::Spanned;

use watchfloor_engine::rule::locate;
use watchfloor_engine::RuleError;
use watchfloor_model::Severity;

use crate::graph;
use crate::spec::{
    duration, Assignee, AssigneeSpec, Branch, Condition, Destination, DestinationSpec, Escalation,
    EscalationSpec, Evidence, Playbook, PlaybookSpec, Reach, Role, Step, StepKind, StepSpec, Text,
    TextSpec, Trigger, WhenResolved, PLACEHOLDERS,
};

/// What the checks know of the rest of the configuration.
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// Rule ids (empty: not checked).
    pub rules: Vec<String>,
    /// Sector ids (empty: not checked).
    pub sectors: Vec<String>,
}

struct Ctx<'a> {
    file: &'a str,
    errors: Vec<RuleError>,
}

impl Ctx<'_> {
    fn err(&mut self, span: &marked_yaml::Span, message: impl Into<String>) {
        self.errors.push(locate(self.file, span, message));
    }
}

/// Compiles one parsed playbook of `file` (whose text has `version`).
pub(crate) fn compile(
    file: &str,
    spec: &PlaybookSpec,
    version: String,
    known: &Known,
) -> Result<Playbook, Vec<RuleError>> {
    let mut ctx = Ctx {
        file,
        errors: Vec::new(),
    };
    let id = spec.id.to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        ctx.err(
            spec.id.span(),
            format!("playbook id `{id}` must be letters, digits and `_`"),
        );
    }
    if let Some(sector) = &spec.sector {
        if !known.sectors.is_empty() && !known.sectors.contains(sector) {
            ctx.err(
                sector.span(),
                format!(
                    "unknown sector `{}` ({})",
                    **sector,
                    known.sectors.join(", ")
                ),
            );
        }
    }
    let trigger = spec.trigger.as_ref().map(|t| trigger(&mut ctx, t, known));
    if trigger.is_none() && !spec.manual {
        ctx.err(
            spec.id.span(),
            "a playbook needs a `trigger` or `manual: true` (or both)",
        );
    }
    let mut steps = Vec::new();
    for s in &spec.steps {
        step(&mut ctx, s, None, &mut steps, known);
    }
    if spec.steps.is_empty() {
        ctx.err(spec.id.span(), "a playbook needs at least one step");
    }
    let names = |list: &[Spanned<String>]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let start = if spec.start.is_empty() {
        spec.steps
            .first()
            .map(|s| vec![s.id.to_string()])
            .unwrap_or_default()
    } else {
        names(&spec.start)
    };
    let when_resolved = spec.when_resolved.as_ref().map_or(
        WhenResolved {
            finish: true,
            start: Vec::new(),
        },
        |w| WhenResolved {
            finish: w.finish,
            start: names(&w.start),
        },
    );
    let playbook = Playbook {
        id,
        name: text(&spec.name),
        sector: spec.sector.as_ref().map(|s| s.to_string()),
        trigger,
        manual: spec.manual,
        start,
        when_resolved,
        steps,
        version,
        file: file.to_string(),
    };
    graph::check(file, spec, &playbook, &mut ctx.errors);
    if ctx.errors.is_empty() {
        Ok(playbook)
    } else {
        Err(ctx.errors)
    }
}

fn text(t: &TextSpec) -> Text {
    Text {
        vi: t.vi.to_string(),
        en: t.en.to_string(),
    }
}

fn severity(ctx: &mut Ctx<'_>, s: &Spanned<String>) -> Option<Severity> {
    let parsed = Severity::parse(s);
    if parsed.is_none() {
        ctx.err(
            s.span(),
            format!("unknown severity `{}` (info, minor, major, critical)", **s),
        );
    }
    parsed
}

fn trigger(ctx: &mut Ctx<'_>, t: &Spanned<crate::spec::TriggerSpec>, known: &Known) -> Trigger {
    for rule in &t.rules {
        if !known.rules.is_empty() && !known.rules.contains(rule) {
            ctx.err(rule.span(), format!("unknown rule `{}`", **rule));
        }
    }
    Trigger {
        rules: t.rules.iter().map(|r| r.to_string()).collect(),
        labels: t.labels.clone(),
        min_severity: t.min_severity.as_ref().and_then(|s| severity(ctx, s)),
        zones: t.zones.clone(),
        escalated_only: t.escalated_only,
    }
}

fn assignee(ctx: &mut Ctx<'_>, a: &AssigneeSpec) -> Assignee {
    let role = match a.role.as_str() {
        "operator" => Role::Operator,
        "admin" => Role::Admin,
        "viewer" | "integrator" => {
            ctx.err(
                a.role.span(),
                format!("role `{}` cannot act on a step (operator, admin)", *a.role),
            );
            Role::Operator
        }
        other => {
            ctx.err(
                a.role.span(),
                format!("unknown role `{other}` (operator, admin)"),
            );
            Role::Operator
        }
    };
    let scope = match a.scope.as_ref().map(|s| s.as_str()) {
        None | Some("commune") => Reach::Commune,
        Some("city") => Reach::City,
        Some(other) => {
            let span = a.scope.as_ref().expect("some").span();
            ctx.err(
                span,
                format!("unknown scope `{other}` (commune: the alert's commune; city)"),
            );
            Reach::Commune
        }
    };
    Assignee { role, scope }
}

fn escalation(ctx: &mut Ctx<'_>, e: Option<&EscalationSpec>) -> Escalation {
    let Some(e) = e else {
        return Escalation::default();
    };
    Escalation {
        notify: e.notify.as_ref().map(|a| assignee(ctx, a)),
        raise_severity: e.raise_severity.as_ref().and_then(|s| severity(ctx, s)),
        start: e.start.iter().map(|s| s.to_string()).collect(),
    }
}

fn placeholders(ctx: &mut Ctx<'_>, t: &Spanned<String>) {
    let mut rest = t.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            ctx.err(t.span(), "a `{` without its `}`");
            return;
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) && !name.starts_with("labels.") {
            ctx.err(
                t.span(),
                format!(
                    "unknown placeholder `{{{name}}}` ({}, labels.<name>)",
                    PLACEHOLDERS.join(", ")
                ),
            );
        }
        rest = &rest[open + close + 1..];
    }
}

fn destination(
    ctx: &mut Ctx<'_>,
    kind: &Spanned<String>,
    d: Option<&DestinationSpec>,
) -> Destination {
    let Some(d) = d else {
        ctx.err(
            kind.span(),
            "a notify step needs `to` (mqtt, kafka, webhook, or role)",
        );
        return Destination::Mqtt(String::new());
    };
    let given = [
        d.mqtt.is_some(),
        d.kafka.is_some(),
        d.webhook.is_some(),
        d.role.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        ctx.err(
            kind.span(),
            "`to` names exactly one of mqtt, kafka, webhook, role",
        );
    }
    if let Some(t) = &d.mqtt {
        placeholders(ctx, t);
        Destination::Mqtt(t.to_string())
    } else if let Some(t) = &d.kafka {
        Destination::Kafka(t.to_string())
    } else if let Some(u) = &d.webhook {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            ctx.err(u.span(), format!("webhook `{}` is not an http(s) URL", **u));
        }
        Destination::Webhook(u.to_string())
    } else if let Some(role) = &d.role {
        let a = AssigneeSpec {
            role: role.clone(),
            scope: d.scope.clone(),
        };
        Destination::People(assignee(ctx, &a))
    } else {
        Destination::Mqtt(String::new())
    }
}

fn evidence(ctx: &mut Ctx<'_>, s: &StepSpec) -> Evidence {
    match s.done_with.as_ref().map(|d| (d, d.as_str())) {
        None | Some((_, "none")) => Evidence::None,
        Some((_, "note")) => Evidence::Note,
        Some((_, "number")) => Evidence::Number,
        Some((_, "attachment")) => Evidence::Attachment,
        Some((d, "choice")) => {
            if s.choices.is_empty() {
                ctx.err(d.span(), "`done_with: choice` needs `choices`");
            }
            Evidence::Choice(s.choices.clone())
        }
        Some((d, other)) => {
            ctx.err(
                d.span(),
                format!("unknown `done_with` `{other}` (none, note, choice, number, attachment)"),
            );
            Evidence::None
        }
    }
}

fn required_text(ctx: &mut Ctx<'_>, s: &StepSpec, field: Option<&TextSpec>, what: &str) -> Text {
    match field {
        Some(t) => text(t),
        None => {
            ctx.err(
                s.kind.span(),
                format!("a {} step needs `{what}` (vi, en)", *s.kind),
            );
            Text {
                vi: String::new(),
                en: String::new(),
            }
        }
    }
}

fn required_assignee(
    ctx: &mut Ctx<'_>,
    s: &StepSpec,
    field: Option<&AssigneeSpec>,
    what: &str,
) -> Assignee {
    match field {
        Some(a) => assignee(ctx, a),
        None => {
            ctx.err(
                s.kind.span(),
                format!("a {} step needs `{what}` (role, scope)", *s.kind),
            );
            Assignee {
                role: Role::Operator,
                scope: Reach::Commune,
            }
        }
    }
}

fn wait(ctx: &mut Ctx<'_>, s: &StepSpec, known: &Known) -> StepKind {
    let duration_ms = s
        .duration
        .as_ref()
        .map(|d| duration(ctx.file, d, &mut ctx.errors));
    let until = s.until.as_ref().and_then(|u| {
        let set = [
            u.resolved.is_some(),
            u.severity_at_least.is_some(),
            u.rule_fires.is_some(),
        ];
        if set.iter().filter(|x| **x).count() != 1 {
            ctx.err(
                u.span(),
                "`until` names exactly one of resolved, severity_at_least, rule_fires",
            );
        }
        if let Some(r) = &u.rule_fires {
            if !known.rules.is_empty() && !known.rules.contains(r) {
                ctx.err(r.span(), format!("unknown rule `{}`", **r));
            }
            Some(Condition::RuleFires(r.to_string()))
        } else if let Some(sev) = &u.severity_at_least {
            severity(ctx, sev).map(Condition::SeverityAtLeast)
        } else {
            u.resolved.map(|_| Condition::Resolved)
        }
    });
    if duration_ms.is_some() == s.until.is_some() {
        ctx.err(
            s.kind.span(),
            "a wait step needs either `for` (a duration) or `until` (a condition) with a `timeout`",
        );
    }
    let timeout_ms = s
        .timeout
        .as_ref()
        .map(|d| duration(ctx.file, d, &mut ctx.errors));
    if s.until.is_some() && timeout_ms.is_none() {
        ctx.err(
            s.kind.span(),
            "a wait `until` a condition needs a `timeout`",
        );
    }
    StepKind::Wait {
        duration_ms,
        until,
        timeout_ms,
        on_timeout: s
            .on_timeout
            .as_ref()
            .map(|l| l.iter().map(|x| x.to_string()).collect()),
    }
}

/// Compiles a step (and, for a group, its members) into `out`.
fn step(ctx: &mut Ctx<'_>, s: &StepSpec, group: Option<&str>, out: &mut Vec<Step>, known: &Known) {
    let due_ms = s
        .due
        .as_ref()
        .map(|d| duration(ctx.file, d, &mut ctx.errors));
    let kind = match s.kind.as_str() {
        "task" => StepKind::Task {
            title: required_text(ctx, s, s.title.as_ref(), "title"),
            assignee: required_assignee(ctx, s, s.assignee.as_ref(), "assignee"),
            due_ms,
            evidence: evidence(ctx, s),
            on_breach: escalation(ctx, s.on_breach.as_ref()),
        },
        "notify" => {
            let message = required_text(ctx, s, s.message.as_ref(), "message");
            if let Some(m) = &s.message {
                placeholders(ctx, &m.vi);
                placeholders(ctx, &m.en);
            }
            StepKind::Notify {
                to: destination(ctx, &s.kind, s.to.as_ref()),
                message,
            }
        }
        "wait" => wait(ctx, s, known),
        "decision" => {
            if s.branches.len() < 2 {
                ctx.err(s.kind.span(), "a decision needs at least two `branches`");
            }
            StepKind::Decision {
                title: required_text(ctx, s, s.title.as_ref(), "title"),
                assignee: required_assignee(ctx, s, s.assignee.as_ref(), "assignee"),
                due_ms,
                branches: s
                    .branches
                    .iter()
                    .map(|b| Branch {
                        id: b.id.to_string(),
                        title: text(&b.title),
                        next: b.next.iter().map(|n| n.to_string()).collect(),
                    })
                    .collect(),
                on_breach: escalation(ctx, s.on_breach.as_ref()),
            }
        }
        "approval" => {
            if s.due.is_none() || s.on_breach.is_none() {
                ctx.err(s.kind.span(), "an approval needs a `due` time and an `on_breach` escalation: it must never hang");
            }
            StepKind::Approval {
                title: required_text(ctx, s, s.title.as_ref(), "title"),
                approver: required_assignee(ctx, s, s.approver.as_ref(), "approver"),
                due_ms: due_ms.unwrap_or(0),
                on_breach: escalation(ctx, s.on_breach.as_ref()),
                on_reject: s.on_reject.iter().map(|n| n.to_string()).collect(),
            }
        }
        "parallel" => {
            if s.steps.len() < 2 {
                ctx.err(s.kind.span(), "a parallel group needs at least two `steps`");
            }
            StepKind::Parallel {
                members: s.steps.iter().map(|m| m.id.to_string()).collect(),
            }
        }
        other => {
            ctx.err(
                s.kind.span(),
                format!("unknown step kind `{other}` (task, notify, wait, decision, approval, parallel)"),
            );
            return;
        }
    };
    if due_ms.is_some() && !matches!(s.kind.as_str(), "task" | "decision" | "approval") {
        ctx.err(
            s.kind.span(),
            format!(
                "a {} step has no `due` (tasks, decisions, approvals do)",
                *s.kind
            ),
        );
    }
    if group.is_some() && !s.next.is_empty() {
        ctx.err(
            s.next[0].span(),
            "a parallel group's member has no `next`: the group goes on when every member is done",
        );
    }
    let line = s.id.span().start().map_or(0, |m| m.line());
    out.push(Step {
        id: s.id.to_string(),
        kind,
        next: s.next.iter().map(|n| n.to_string()).collect(),
        group: group.map(str::to_string),
        line,
    });
    for member in &s.steps {
        step(ctx, member, Some(&s.id), out, known);
    }
}
