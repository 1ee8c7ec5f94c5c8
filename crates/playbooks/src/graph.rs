//! The checks over a playbook's steps as a graph: unique ids, every name pointing at a
//! step, every step reachable from the start (or the all-clear), and no cycle that does not
//! pass through a `wait` (a loop without a wait would spin: it is refused at load).
//!
//! Edges: `next`, a decision's branches, an escalation's `start`, a wait's `on_timeout`,
//! an approval's `on_reject`, and a parallel group to its members.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::Spanned;

use watchfloor_engine::rule::locate;
use watchfloor_engine::RuleError;

use crate::spec::{Playbook, PlaybookSpec, StepKind, StepSpec};

fn collect<'a>(steps: &'a [StepSpec], out: &mut Vec<&'a StepSpec>) {
    for s in steps {
        out.push(s);
        collect(&s.steps, out);
    }
}

/// Every name a step's spec points at.
fn named(s: &StepSpec) -> Vec<&Spanned<String>> {
    let mut names: Vec<&Spanned<String>> = s.next.iter().collect();
    names.extend(s.branches.iter().flat_map(|b| b.next.iter()));
    if let Some(e) = &s.on_breach {
        names.extend(e.start.iter());
    }
    if let Some(t) = &s.on_timeout {
        names.extend(t.iter());
    }
    names.extend(s.on_reject.iter());
    names
}

/// The steps a step can lead to.
pub fn edges(playbook: &Playbook, id: &str) -> Vec<String> {
    let Some(step) = playbook.step(id) else {
        return Vec::new();
    };
    let mut out = step.next.clone();
    match &step.kind {
        StepKind::Decision { branches, .. } => {
            out.extend(branches.iter().flat_map(|b| b.next.iter().cloned()))
        }
        StepKind::Wait {
            on_timeout: Some(t),
            ..
        } => out.extend(t.iter().cloned()),
        StepKind::Approval { on_reject, .. } => out.extend(on_reject.iter().cloned()),
        StepKind::Parallel { members } => out.extend(members.iter().cloned()),
        _ => {}
    }
    if let Some(e) = step.on_breach() {
        out.extend(e.start.iter().cloned());
    }
    // A member leads on to whatever its group leads to.
    if let Some(group) = &step.group {
        if let Some(g) = playbook.step(group) {
            out.extend(g.next.iter().cloned());
        }
    }
    out
}

/// Runs every graph check, pushing located errors.
pub(crate) fn check(
    file: &str,
    spec: &PlaybookSpec,
    playbook: &Playbook,
    errors: &mut Vec<RuleError>,
) {
    let mut specs = Vec::new();
    collect(&spec.steps, &mut specs);
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &specs {
        let line = s.id.span().start().map_or(0, |m| m.line());
        if let Some(l) = first.get(s.id.as_str()) {
            errors.push(locate(
                file,
                s.id.span(),
                format!("step `{}` is already defined at line {l}", *s.id),
            ));
        } else {
            first.insert(s.id.as_str(), line);
        }
    }
    let exists = |n: &str| first.contains_key(n);
    let mut roots: Vec<&Spanned<String>> = spec.start.iter().collect();
    if let Some(w) = &spec.when_resolved {
        roots.extend(w.start.iter());
    }
    for name in roots
        .iter()
        .copied()
        .chain(specs.iter().flat_map(|s| named(s)))
    {
        if !exists(name) {
            errors.push(locate(
                file,
                name.span(),
                format!("no step `{}` in this playbook", **name),
            ));
        }
    }
    if !errors.is_empty() {
        return; // reachability and cycles mean little over missing steps
    }
    // Reachability from the start and the all-clear.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = playbook.start.clone();
    todo.extend(playbook.when_resolved.start.iter().cloned());
    while let Some(id) = todo.pop() {
        if seen.insert(id.clone()) {
            todo.extend(edges(playbook, &id));
        }
    }
    for s in &specs {
        if !seen.contains(s.id.as_str()) {
            errors.push(locate(
                file,
                s.id.span(),
                format!("step `{}` is never reached (no start, next, branch, escalation or timeout leads to it)", *s.id),
            ));
        }
    }
    if let Some(cycle) = cycle_without_wait(playbook) {
        let at = specs
            .iter()
            .find(|s| *s.id == cycle[0])
            .expect("a known step");
        errors.push(locate(
            file,
            at.id.span(),
            format!(
                "the steps {} form a cycle without a wait: add a `wait` step to it",
                cycle.join(" → ")
            ),
        ));
    }
}

/// A cycle among the non-wait steps, if any (as the list of its steps, first repeated).
fn cycle_without_wait(playbook: &Playbook) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let is_wait = |id: &str| {
        matches!(
            playbook.step(id).map(|s| &s.kind),
            Some(StepKind::Wait { .. })
        )
    };
    let mut marks: BTreeMap<String, Mark> = playbook
        .steps
        .iter()
        .map(|s| (s.id.clone(), Mark::New))
        .collect();
    for s in &playbook.steps {
        if is_wait(&s.id) || marks[&s.id] != Mark::New {
            continue;
        }
        // Iterative depth-first search keeping the path.
        let mut path: Vec<(String, Vec<String>)> = vec![(s.id.clone(), edges(playbook, &s.id))];
        marks.insert(s.id.clone(), Mark::Open);
        while let Some((_, next)) = path.last_mut() {
            match next.pop() {
                Some(n) if is_wait(&n) => {}
                Some(n) => match marks[&n] {
                    Mark::Open => {
                        let from = path
                            .iter()
                            .position(|(id, _)| *id == n)
                            .expect("on the path");
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|(id, _)| id.clone()).collect();
                        cycle.push(n);
                        return Some(cycle);
                    }
                    Mark::New => {
                        marks.insert(n.clone(), Mark::Open);
                        let e = edges(playbook, &n);
                        path.push((n, e));
                    }
                    Mark::Done => {}
                },
                None => {
                    let (id, _) = path.pop().expect("non-empty");
                    marks.insert(id, Mark::Done);
                }
            }
        }
    }
    None
}
