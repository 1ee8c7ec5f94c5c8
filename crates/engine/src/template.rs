//! Alert message templates: text with `{name}` or `{name:.N}` placeholders, resolved at
//! load time. Names: any aggregate or constant of the rule, `table.column` lookups,
//! `key`, `rule`, `severity`, `value`, `window_start`, `window_end`. `{{` and `}}` are
//! literal braces. Numbers print with up to two decimals unless `:.N` says otherwise.

use std::fmt::Write;

use watchfloor_model::{format_rfc3339, Severity};

use crate::expr::Names;
use crate::lookup::LookupTables;

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Aggregate(usize, Option<usize>),
    Constant(f64, Option<usize>),
    Lookup(usize, usize, Option<usize>),
    Key,
    Rule,
    Severity,
    Value(Option<usize>),
    WindowStart,
    WindowEnd,
}

/// A parsed message template.
#[derive(Debug, Clone, Default)]
pub struct MessageTemplate {
    parts: Vec<Part>,
}

/// What a template is filled in with.
pub struct TemplateVars<'a> {
    /// Aggregate values by slot.
    pub aggregates: &'a [f64],
    /// Grouping key.
    pub key: &'a str,
    /// Rule id.
    pub rule: &'a str,
    /// Current severity.
    pub severity: Severity,
    /// The deciding value.
    pub value: f64,
    /// Window start, epoch ms.
    pub window_start: i64,
    /// Window end, epoch ms.
    pub window_end: i64,
    /// Lookup tables.
    pub lookups: &'a LookupTables,
}

fn push_number(out: &mut String, v: f64, precision: Option<usize>) {
    if !v.is_finite() {
        out.push_str("n/a");
        return;
    }
    match precision {
        Some(p) => {
            let _ = write!(out, "{v:.p$}");
        }
        None => {
            let text = format!("{v:.2}");
            let trimmed = text.trim_end_matches('0').trim_end_matches('.');
            out.push_str(if trimmed == "-0" { "0" } else { trimmed });
        }
    }
}

impl MessageTemplate {
    /// Parses `text`, resolving every placeholder against `names`.
    pub fn parse(text: &str, names: &Names) -> Result<MessageTemplate, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut spec = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        spec.push(c);
                    }
                    if !closed {
                        return Err(format!("unclosed `{{` in message `{text}`"));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Self::placeholder(spec.trim(), names)?);
                }
                '}' => return Err(format!("stray `}}` in message `{text}` (write `}}}}`)")),
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(MessageTemplate { parts })
    }

    fn placeholder(spec: &str, names: &Names) -> Result<Part, String> {
        let (name, precision) = match spec.split_once(":.") {
            Some((name, digits)) => {
                let p: usize = digits.parse().ok().filter(|p| *p <= 9).ok_or_else(|| {
                    format!("bad precision in `{{{spec}}}` (write e.g. `{{{name}:.1}}`)")
                })?;
                (name, Some(p))
            }
            None => (spec, None),
        };
        if let Some(slot) = names.aggregates.iter().position(|a| a == name) {
            return Ok(Part::Aggregate(slot, precision));
        }
        if let Some(v) = names.constants.get(name) {
            return Ok(Part::Constant(*v, precision));
        }
        if let Some((table, column)) = name.split_once('.') {
            if let Some((t, c)) = names.lookups.position(table, column) {
                return Ok(Part::Lookup(t, c, precision));
            }
        }
        Ok(match name {
            "key" => Part::Key,
            "rule" => Part::Rule,
            "severity" => Part::Severity,
            "value" => Part::Value(precision),
            "window_start" => Part::WindowStart,
            "window_end" => Part::WindowEnd,
            _ => {
                return Err(format!(
                    "unknown placeholder `{{{name}}}` (aggregates, constants, table.column, key, rule, severity, value, window_start, window_end)"
                ))
            }
        })
    }

    /// Fills the template in.
    pub fn render(&self, vars: &TemplateVars) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Aggregate(slot, p) => push_number(
                    &mut out,
                    vars.aggregates.get(*slot).copied().unwrap_or(f64::NAN),
                    *p,
                ),
                Part::Constant(v, p) => push_number(&mut out, *v, *p),
                Part::Lookup(t, c, p) => push_number(
                    &mut out,
                    vars.lookups.get(*t, *c, vars.key).unwrap_or(f64::NAN),
                    *p,
                ),
                Part::Key => out.push_str(vars.key),
                Part::Rule => out.push_str(vars.rule),
                Part::Severity => out.push_str(vars.severity.as_str()),
                Part::Value(p) => push_number(&mut out, vars.value, *p),
                Part::WindowStart => out.push_str(&format_rfc3339(vars.window_start)),
                Part::WindowEnd => out.push_str(&format_rfc3339(vars.window_end)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn renders_placeholders() {
        let lookups = LookupTables::from_csv_text("stations", "source,cod_limit\nA,75\n").unwrap();
        let aggs = vec!["mean_cod".to_string()];
        let constants = BTreeMap::from([("k".to_string(), 1.5)]);
        let names = Names {
            aggregates: &aggs,
            constants: &constants,
            lookups: &lookups,
        };
        let t = MessageTemplate::parse(
            "{{COD}} {mean_cod:.1} > {stations.cod_limit} at {key} ({severity}, k={k}, v={value})",
            &names,
        )
        .unwrap();
        let text = t.render(&TemplateVars {
            aggregates: &[80.04],
            key: "A",
            rule: "r",
            severity: Severity::Major,
            value: 80.0,
            window_start: 0,
            window_end: 0,
            lookups: &lookups,
        });
        assert_eq!(text, "{COD} 80.0 > 75 at A (major, k=1.5, v=80)");
    }

    #[test]
    fn renders_the_rule_and_the_window() {
        let lookups = LookupTables::new();
        let names = Names {
            aggregates: &[],
            constants: &BTreeMap::new(),
            lookups: &lookups,
        };
        let t = MessageTemplate::parse("{rule}: {window_start} → {window_end}", &names).unwrap();
        let text = t.render(&TemplateVars {
            aggregates: &[],
            key: "A",
            rule: "cod_hourly",
            severity: Severity::Minor,
            value: 0.0,
            window_start: 1_795_712_400_000,
            window_end: 1_795_716_000_000,
            lookups: &lookups,
        });
        // Times in RFC 3339, UTC (midnight of 27 November in Vietnam).
        assert_eq!(
            text,
            "cod_hourly: 2026-11-26T17:00:00.000Z → 2026-11-26T18:00:00.000Z"
        );
    }

    #[test]
    fn rejects_unknown_names_and_bad_braces() {
        let lookups = LookupTables::new();
        let names = Names {
            aggregates: &[],
            constants: &BTreeMap::new(),
            lookups: &lookups,
        };
        assert!(MessageTemplate::parse("{nope}", &names)
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(MessageTemplate::parse("{key", &names)
            .unwrap_err()
            .contains("unclosed"));
        assert!(MessageTemplate::parse("a } b", &names)
            .unwrap_err()
            .contains("stray"));
        assert!(MessageTemplate::parse("{value:.x}", &names)
            .unwrap_err()
            .contains("precision"));
    }
}
