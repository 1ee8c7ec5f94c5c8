//! Rules: the YAML files operators write (the `*Spec` types, kept apart from the engine)
//! and their compiled, validated form ([`Rule`]), with every error reported as
//! `file:line:column: message`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::{LoaderOptions, Spanned};
use serde::Deserialize;
use thiserror::Error;
use watchfloor_model::{Kind, Severity, StationStatus};
use wildmatch::WildMatch;

use crate::aggregate::AggFn;
use crate::duration::parse_duration_ms;
use crate::expr::{CompiledExpr, Names, Ty};
use crate::lookup::LookupTables;
use crate::template::MessageTemplate;

/// One problem in a rule file, located.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RuleError {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

/// Every problem found in a rule directory.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The file format.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileSpec {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "match")]
    matcher: MatchSpec,
    #[serde(default)]
    key: Option<Spanned<String>>,
    #[serde(default)]
    window: Option<WindowSpec>,
    #[serde(default)]
    aggregates: InOrder<Spanned<String>>,
    #[serde(default)]
    condition: Option<Spanned<String>>,
    #[serde(default)]
    clear: Option<Spanned<String>>,
    #[serde(default, rename = "for")]
    for_: Option<Spanned<String>>,
    severity: Spanned<String>,
    #[serde(default)]
    escalate: Vec<EscalationSpec>,
    #[serde(default)]
    absence: Option<Spanned<String>>,
    #[serde(default)]
    resolve_after: Option<Spanned<String>>,
    #[serde(default)]
    value: Option<Spanned<String>>,
    #[serde(default)]
    message: Option<Spanned<String>>,
    #[serde(default)]
    resolved_message: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    constants: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    corroborate: Option<CorroborateSpec>,
    #[serde(default)]
    derived: InOrder<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorroborateSpec {
    first: Spanned<String>,
    then: Spanned<String>,
    within: Spanned<String>,
    distance: Spanned<String>,
}

/// A YAML mapping kept in file order (aggregate slots follow the order they are written).
#[derive(Debug)]
struct InOrder<V>(Vec<(String, V)>);

impl<V> Default for InOrder<V> {
    fn default() -> Self {
        InOrder(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for InOrder<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = InOrder<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of name: aggregate")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(InOrder(entries))
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchSpec {
    kind: Spanned<String>,
    #[serde(default)]
    metric: Option<Spanned<String>>,
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default)]
    status: Option<Spanned<String>>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    event: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowSpec {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    size: Option<Spanned<String>>,
    #[serde(default)]
    slide: Option<Spanned<String>>,
    #[serde(default)]
    gap: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationSpec {
    #[serde(default)]
    after: Option<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<String>>,
    severity: Spanned<String>,
    #[serde(default)]
    unless_acknowledged: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------
// The compiled form.

/// How events are windowed before the condition is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Evaluate on every event.
    None,
    /// Fixed, back-to-back windows of `size` ms aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` ms starting every `slide` ms (`size` a multiple of `slide`).
    Hopping { size: i64, slide: i64 },
    /// Windows of activity separated by at least `gap` ms of silence.
    Session { gap: i64 },
}

impl WindowKind {
    /// Pane length for pane-based windows (tumbling and hopping).
    pub fn pane(self) -> Option<i64> {
        match self {
            WindowKind::Tumbling { size } => Some(size),
            WindowKind::Hopping { slide, .. } => Some(slide),
            _ => None,
        }
    }

    /// Panes per window for pane-based windows.
    pub fn panes_per_window(self) -> usize {
        match self {
            WindowKind::Hopping { size, slide } => (size / slide) as usize,
            _ => 1,
        }
    }
}

/// What an alert instance is grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBy {
    /// The event's source (default).
    Source,
    /// The event's zone; events without a zone do not count.
    Zone,
    /// An attribute; events without it do not count.
    Attr(String),
    /// One group for everything the rule matches.
    All,
}

/// One named aggregate of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateDef {
    /// Name used in conditions and messages.
    pub name: String,
    /// The function.
    pub func: AggFn,
    /// Index into [`Rule::metrics`]; `None` counts matching events.
    pub metric: Option<usize>,
}

/// Severity change while an alert keeps firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// Time after the alert fired.
    pub after_ms: i64,
    /// The new severity.
    pub severity: Severity,
    /// Only escalate if nobody acknowledged the alert.
    pub unless_acknowledged: bool,
}

/// Severity raised while an alert keeps firing, when a condition on its values holds.
#[derive(Debug)]
pub struct ValueEscalation {
    /// The condition, over the same names as the rule's condition.
    pub when: CompiledExpr,
    /// The severity while it holds (never lowered again while the alert fires).
    pub severity: Severity,
}

/// A rule that fires when alerts of two other rules fire close in place and time: a
/// sequence across two streams joined by the keys' positions (`station.lat`/`lon`).
#[derive(Debug, Clone, PartialEq)]
pub struct Corroboration {
    /// The rule whose key the confirmed alert is about (e.g. the camera's fire alert).
    pub first: String,
    /// The rule that corroborates it (e.g. a PM2.5 jump at an air station).
    pub then: String,
    /// Largest time between the two firings, either order.
    pub within_ms: i64,
    /// Largest distance between the two keys' positions, metres.
    pub distance_m: f64,
}

/// A validated, compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Free text for operators.
    pub description: Option<String>,
    /// Event kind it applies to.
    pub kind: Kind,
    /// Only events carrying this metric.
    pub metric_filter: Option<String>,
    /// Only sources matching this glob.
    pub source_pattern: Option<WildMatch>,
    /// Bit `1 << status` set for each accepted station status.
    pub status_mask: u8,
    /// Only events of this zone.
    pub zone: Option<String>,
    /// For camera rules: only these detections.
    pub camera_events: Option<Vec<String>>,
    /// Grouping key.
    pub key_by: KeyBy,
    /// Windowing.
    pub window: WindowKind,
    /// Distinct metrics the aggregates read.
    pub metrics: Vec<String>,
    /// Per metric: keep a quantile sketch.
    pub metric_needs_sketch: Vec<bool>,
    /// Per metric: keep clock-hour means (for `nowcast`).
    pub metric_needs_hourly: Vec<bool>,
    /// The aggregates, by slot.
    pub aggregates: Vec<AggregateDef>,
    /// Aggregate names, by slot, then the derived values' names.
    pub aggregate_names: Vec<String>,
    /// Derived values, computed in order after the aggregates (slots follow theirs).
    pub derived: Vec<CompiledExpr>,
    /// When the alert fires.
    pub condition: Option<CompiledExpr>,
    /// When a firing alert resolves (default: the condition no longer holds).
    pub clear: Option<CompiledExpr>,
    /// Consecutive evaluations the condition must hold.
    pub for_windows: u32,
    /// Time the condition must hold.
    pub for_ms: i64,
    /// Initial severity.
    pub severity: Severity,
    /// Escalations, by `after_ms`.
    pub escalations: Vec<Escalation>,
    /// Set for corroboration rules, which see alerts instead of events.
    pub corroborate: Option<Corroboration>,
    /// Escalations by value (`escalate: [{when: …}]`), checked in order at each evaluation.
    pub value_escalations: Vec<ValueEscalation>,
    /// Absence rule: fire when a key is silent this long.
    pub absence_ms: Option<i64>,
    /// Resolve when the condition has not been seen to hold for this long.
    pub resolve_after_ms: Option<i64>,
    /// Slot of the aggregate reported as `value`.
    pub value_slot: Option<usize>,
    /// Message template.
    pub message: MessageTemplate,
    /// Message template for resolved transitions (default: `message`).
    pub resolved_message: Option<MessageTemplate>,
    /// Labels copied onto every transition.
    pub labels: BTreeMap<String, String>,
    /// Where the rule is defined (`file:line`).
    pub origin: String,
}

impl Rule {
    /// The compiled definition as text, without where it is written: two rules with the
    /// same definition behave the same (used to keep state across a reload).
    pub fn definition(&self) -> String {
        format!("{self:?}").replace(&format!("origin: {:?}", self.origin), "")
    }

    /// True when the rule accepts events of this station status.
    #[inline]
    pub fn accepts_status(&self, status: StationStatus) -> bool {
        self.status_mask & (1 << status as u8) != 0
    }
}

/// A loaded rule set: rules and the lookup tables they read.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Rules in load order (files sorted by path).
    pub rules: Vec<Arc<Rule>>,
    /// Lookup tables.
    pub lookups: Arc<LookupTables>,
}

/// A problem at `span` of `file` (other YAML configuration files report with it too).
pub fn locate(file: &str, span: &marked_yaml::Span, message: impl Into<String>) -> RuleError {
    let (line, column) = span.start().map_or((0, 0), |m| (m.line(), m.column()));
    RuleError {
        file: file.to_string(),
        line,
        column,
        message: message.into(),
    }
}

impl RuleSet {
    /// Loads every `*.yaml`/`*.yml` rule file under `dir` (recursively) and every
    /// `lookups/*.csv` table. All problems are reported, not just the first.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
        Self::load_dir_with(dir, LookupTables::new())
    }

    /// Like [`RuleSet::load_dir`], with `lookups` (tables built elsewhere, such as the city
    /// registry's) added before the directory's own.
    pub fn load_dir_with(dir: &Path, lookups: LookupTables) -> Result<RuleSet, RuleErrors> {
        let mut lookups = lookups;
        let mut rule_files = Vec::new();
        let mut csv_files = Vec::new();
        collect_files(dir, &mut rule_files, &mut csv_files).map_err(|e| {
            RuleErrors(vec![RuleError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read rule directory: {e}"),
            }])
        })?;
        rule_files.sort();
        csv_files.sort();
        let mut errors = Vec::new();
        for path in &csv_files {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let shown = path.display().to_string();
            match std::fs::read_to_string(path) {
                Err(e) => errors.push(RuleError {
                    file: shown,
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }),
                Ok(text) => {
                    if let Err(e) = lookups.add_csv(name, &text) {
                        errors.push(RuleError {
                            file: shown,
                            line: e.line,
                            column: 1,
                            message: e.message,
                        });
                    }
                }
            }
        }
        let mut sources = Vec::new();
        for path in &rule_files {
            let shown = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => sources.push((shown, text)),
                Err(e) => errors.push(RuleError {
                    file: shown,
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }),
            }
        }
        match Self::from_sources(&sources, lookups) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(RuleErrors(errors)),
            Err(RuleErrors(more)) => {
                errors.extend(more);
                Err(RuleErrors(errors))
            }
        }
    }

    /// Compiles rules from `(file name, YAML text)` pairs against `lookups`.
    pub fn from_sources(
        sources: &[(String, String)],
        lookups: LookupTables,
    ) -> Result<RuleSet, RuleErrors> {
        let mut errors = Vec::new();
        let mut rules: Vec<Arc<Rule>> = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (file, text) in sources {
            let spec: RuleFileSpec = match parse_yaml(file, text) {
                Ok(spec) => spec,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for spec in spec.rules {
                match compile_rule(file, &spec, &lookups) {
                    Ok(rule) => {
                        if let Some(first) = seen.get(&rule.id) {
                            errors.push(locate(
                                file,
                                spec.id.span(),
                                format!("rule id `{}` is already defined at {first}", rule.id),
                            ));
                        } else {
                            seen.insert(rule.id.clone(), rule.origin.clone());
                            rules.push(Arc::new(rule));
                        }
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        for rule in &rules {
            if let Some(c) = &rule.corroborate {
                for (name, what) in [(&c.first, "first"), (&c.then, "then")] {
                    let found = rules.iter().find(|r| &r.id == name);
                    let problem = match found {
                        None => Some(format!("corroborate.{what}: no rule `{name}`")),
                        Some(r) if r.corroborate.is_some() => {
                            Some(format!("corroborate.{what}: `{name}` is itself a corroboration rule"))
                        }
                        Some(_) if lookups.position("station", "lat").is_none() || lookups.position("station", "lon").is_none() => {
                            Some("corroboration needs positions: a `station` table with `lat` and `lon` (the city registry)".to_string())
                        }
                        Some(_) => None,
                    };
                    if let Some(message) = problem {
                        let (file, line) =
                            rule.origin.rsplit_once(':').unwrap_or((&rule.origin, "0"));
                        errors.push(RuleError {
                            file: file.to_string(),
                            line: line.parse().unwrap_or(0),
                            column: 0,
                            message: format!("rule `{}`: {message}", rule.id),
                        });
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(RuleSet {
                rules,
                lookups: Arc::new(lookups),
            })
        } else {
            Err(RuleErrors(errors))
        }
    }
}

fn collect_files(
    dir: &Path,
    rules: &mut Vec<PathBuf>,
    csvs: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, rules, csvs)?;
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => rules.push(path),
            Some("csv")
                if path
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "lookups") =>
            {
                csvs.push(path)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses a YAML configuration file (duplicate keys refused) into `T`, keeping the spans
/// of its `Spanned` fields; an error says where.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, RuleError> {
    marked_yaml::from_yaml_with_options(
        0,
        text,
        LoaderOptions::default().error_on_duplicate_keys(true),
    )
    .map_err(|e| yaml_error(file, e))
}

/// A YAML loading error of `file`, located.
pub fn yaml_error(file: &str, e: marked_yaml::FromYamlError) -> RuleError {
    use marked_yaml::{FromYamlError, LoadError};
    let (marker, message) = match &e {
        FromYamlError::ParseYaml(load) => {
            let marker = match load {
                LoadError::TopLevelMustBeMapping(m)
                | LoadError::TopLevelMustBeSequence(m)
                | LoadError::UnexpectedAnchor(m)
                | LoadError::MappingKeyMustBeScalar(m)
                | LoadError::UnexpectedTag(m)
                | LoadError::ScanError(m, _) => Some(*m),
                LoadError::DuplicateKey(inner) => inner.key.span().start().copied(),
            };
            (marker, e.to_string())
        }
        FromYamlError::FromNode(node) => (node.start_mark(), node.to_string()),
    };
    let (line, column) = marker.map_or((1, 1), |m| (m.line(), m.column()));
    // The YAML loader puts its own `line:column: ` in front; the location is ours to print.
    let own_prefix = format!("{line}:{column}: ");
    let message = message
        .strip_prefix(&own_prefix)
        .unwrap_or(&message)
        .replace('\n', " ");
    RuleError {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

fn parse_ms(file: &str, field: &Spanned<String>, what: &str) -> Result<i64, RuleError> {
    match parse_duration_ms(field) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err(locate(
            file,
            field.span(),
            format!("{what} must be longer than zero"),
        )),
        Err(e) => Err(locate(file, field.span(), format!("{what}: {e}"))),
    }
}

fn parse_status_mask(
    file: &str,
    status: Option<&Spanned<String>>,
    absence: bool,
) -> Result<u8, RuleError> {
    let all = 0b111;
    let Some(status) = status else {
        // Absence watches liveness, so any status counts; everything else judges
        // measurements, so only valid ones (00) count unless the rule says otherwise.
        return Ok(if absence {
            all
        } else {
            1 << StationStatus::Normal as u8
        });
    };
    if status.trim() == "any" {
        return Ok(all);
    }
    let mut mask = 0;
    for code in status.split(',').map(str::trim) {
        let code = if code.len() == 1 {
            format!("0{code}")
        } else {
            code.to_string()
        };
        let s = StationStatus::parse(&code).ok_or_else(|| {
            locate(
                file,
                status.span(),
                format!("unknown status `{code}` (write `00`, `01`, `02`, a comma list, or `any`)"),
            )
        })?;
        mask |= 1 << s as u8;
    }
    Ok(mask)
}

/// Parses `fn(metric)`, `fn(metric, arg)` or `count()`.
fn parse_aggregate_call(text: &str) -> Result<(String, Option<String>, Option<f64>), String> {
    let text = text.trim();
    let (func, rest) = text.split_once('(').ok_or_else(|| {
        format!("`{text}` is not an aggregate; write e.g. `avg(cod)` or `count()`")
    })?;
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("`{text}` is missing its closing `)`"))?;
    let mut args = inner.split(',').map(str::trim);
    let metric = args.next().filter(|m| !m.is_empty()).map(str::to_string);
    let arg = match args.next() {
        None => None,
        Some(a) => Some(
            a.parse::<f64>()
                .map_err(|_| format!("`{a}` in `{text}` is not a number"))?,
        ),
    };
    if args.next().is_some() {
        return Err(format!("`{text}` has too many arguments"));
    }
    if let Some(m) = &metric {
        if !m
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("`{m}` is not a metric name"));
        }
    }
    Ok((func.trim().to_string(), metric, arg))
}

fn compile_rule(
    file: &str,
    spec: &RuleSpec,
    lookups: &LookupTables,
) -> Result<Rule, Vec<RuleError>> {
    let mut errors: Vec<RuleError> = Vec::new();
    macro_rules! check {
        ($e:expr) => {
            match $e {
                Ok(v) => Some(v),
                Err(err) => {
                    errors.push(err);
                    None
                }
            }
        };
    }
    let id = spec.id.trim().to_string();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        errors.push(locate(
            file,
            spec.id.span(),
            format!("rule id `{id}` must be letters, digits, `_`, `-` or `.`"),
        ));
    }
    let origin = format!("{file}:{}", spec.id.span().start().map_or(0, |m| m.line()));

    let kind = check!(Kind::parse(spec.matcher.kind.trim()).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        locate(
            file,
            spec.matcher.kind.span(),
            format!(
                "unknown kind `{}` (one of {})",
                spec.matcher.kind.as_str(),
                known.join(", ")
            ),
        )
    }));
    let severity = check!(Severity::parse(spec.severity.trim()).ok_or_else(|| {
        locate(
            file,
            spec.severity.span(),
            format!(
                "unknown severity `{}` (info, minor, major, critical)",
                spec.severity.as_str()
            ),
        )
    }));
    let absence_ms = spec
        .absence
        .as_ref()
        .and_then(|a| check!(parse_ms(file, a, "absence")));
    let status_mask = check!(parse_status_mask(
        file,
        spec.matcher.status.as_ref(),
        spec.absence.is_some()
    ))
    .unwrap_or(1);
    let key_by = match spec.key.as_ref().map(|k| k.trim()) {
        None | Some("source") => KeyBy::Source,
        Some("zone") => KeyBy::Zone,
        Some("all") => KeyBy::All,
        Some(other) => match other.strip_prefix("attrs.") {
            Some(name) if !name.is_empty() => KeyBy::Attr(name.to_string()),
            _ => {
                errors.push(locate(
                    file,
                    spec.key.as_ref().unwrap().span(),
                    format!("unknown key `{other}` (source, zone, all, or attrs.<name>)"),
                ));
                KeyBy::Source
            }
        },
    };
    let window = match &spec.window {
        None => WindowKind::None,
        Some(w) => {
            let need = |field: &Option<Spanned<String>>, name: &str| -> Result<i64, RuleError> {
                match field {
                    Some(v) => parse_ms(file, v, name),
                    None => Err(locate(
                        file,
                        w.kind.span(),
                        format!("a {} window needs `{name}`", w.kind.as_str()),
                    )),
                }
            };
            match w.kind.trim() {
                "none" => WindowKind::None,
                "tumbling" => check!(need(&w.size, "size"))
                    .map_or(WindowKind::None, |size| WindowKind::Tumbling { size }),
                "hopping" | "sliding" => {
                    match (
                        check!(need(&w.size, "size")),
                        check!(need(&w.slide, "slide")),
                    ) {
                        (Some(size), Some(slide)) => {
                            if size % slide != 0 || size < slide {
                                errors.push(locate(
                                    file,
                                    w.kind.span(),
                                    "window `size` must be a whole multiple of `slide`",
                                ));
                            } else if size / slide > 10_000 {
                                errors.push(locate(
                                    file,
                                    w.kind.span(),
                                    "a window may span at most 10,000 slides",
                                ));
                            }
                            WindowKind::Hopping { size, slide }
                        }
                        _ => WindowKind::None,
                    }
                }
                "session" => check!(need(&w.gap, "gap"))
                    .map_or(WindowKind::None, |gap| WindowKind::Session { gap }),
                other => {
                    errors.push(locate(file, w.kind.span(), format!("unknown window type `{other}` (none, tumbling, hopping, sliding, session)")));
                    WindowKind::None
                }
            }
        }
    };

    let mut constants = BTreeMap::new();
    for (name, value) in &spec.constants {
        match value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => {
                constants.insert(name.clone(), v);
            }
            _ => errors.push(locate(
                file,
                value.span(),
                format!("constant `{name}` must be a number"),
            )),
        }
    }

    let mut metrics: Vec<String> = Vec::new();
    let mut metric_needs_sketch: Vec<bool> = Vec::new();
    let mut metric_needs_hourly: Vec<bool> = Vec::new();
    let mut aggregates = Vec::new();
    for (name, call) in &spec.aggregates.0 {
        if constants.contains_key(name) || name == "key" {
            errors.push(locate(
                file,
                call.span(),
                format!("aggregate name `{name}` is already used"),
            ));
            continue;
        }
        let parsed = parse_aggregate_call(call).and_then(|(func, metric, arg)| {
            let f = AggFn::parse(&func, arg)?;
            if metric.is_none() && f != AggFn::Count {
                return Err(format!("`{func}` needs a metric, e.g. `{func}(cod)`"));
            }
            Ok((f, metric))
        });
        match parsed {
            Err(e) => errors.push(locate(file, call.span(), e)),
            Ok((func, metric)) => {
                let slot = metric.map(|m| match metrics.iter().position(|x| *x == m) {
                    Some(i) => i,
                    None => {
                        metrics.push(m);
                        metric_needs_sketch.push(false);
                        metric_needs_hourly.push(false);
                        metrics.len() - 1
                    }
                });
                match (slot, func) {
                    (Some(i), AggFn::Percentile(_)) => metric_needs_sketch[i] = true,
                    (Some(i), AggFn::NowCast | AggFn::HourMean) => metric_needs_hourly[i] = true,
                    _ => {}
                }
                aggregates.push(AggregateDef {
                    name: name.clone(),
                    func,
                    metric: slot,
                });
            }
        }
    }
    let mut aggregate_names: Vec<String> = aggregates.iter().map(|a| a.name.clone()).collect();
    // Derived values: numbers computed from the aggregates (and earlier derived values),
    // named like aggregates for the condition, templates and `value`.
    let mut derived = Vec::new();
    for (name, source) in &spec.derived.0 {
        if aggregate_names.contains(name) || constants.contains_key(name) || name == "key" {
            errors.push(locate(
                file,
                source.span(),
                format!("derived name `{name}` is already used"),
            ));
            continue;
        }
        let names = Names {
            aggregates: &aggregate_names,
            constants: &constants,
            lookups,
        };
        match CompiledExpr::compile(source, &names) {
            Ok(expr) if expr.ty() == Ty::Num => {
                derived.push(expr);
                aggregate_names.push(name.clone());
            }
            Ok(_) => errors.push(locate(
                file,
                source.span(),
                format!("derived `{name}` must be a number"),
            )),
            Err(e) => errors.push(locate(file, source.span(), e)),
        }
    }
    let aggregate_names = aggregate_names;
    let names = Names {
        aggregates: &aggregate_names,
        constants: &constants,
        lookups,
    };

    let compile_cond = |field: &Spanned<String>| {
        CompiledExpr::compile_condition(field, &names).map_err(|e| locate(file, field.span(), e))
    };
    let condition = spec
        .condition
        .as_ref()
        .and_then(|c| check!(compile_cond(c)));
    let clear = spec.clear.as_ref().and_then(|c| check!(compile_cond(c)));

    if absence_ms.is_some() {
        for (present, what) in [
            (spec.condition.is_some(), "condition"),
            (spec.window.is_some(), "window"),
            (!spec.aggregates.0.is_empty(), "aggregates"),
            (spec.clear.is_some(), "clear"),
            (spec.for_.is_some(), "for"),
        ] {
            if present {
                errors.push(locate(
                    file,
                    spec.id.span(),
                    format!("an absence rule cannot have `{what}`"),
                ));
            }
        }
    } else {
        if spec.condition.is_none() && spec.corroborate.is_none() {
            errors.push(locate(
                file,
                spec.id.span(),
                "a rule needs a `condition` (or `absence`, or `corroborate`)",
            ));
        }
        if aggregates.is_empty() && errors.is_empty() && spec.corroborate.is_none() {
            errors.push(locate(
                file,
                spec.id.span(),
                "a rule needs `aggregates` for its condition to read",
            ));
        }
    }

    let value_slot = match &spec.value {
        Some(v) => check!(aggregate_names
            .iter()
            .position(|n| n == v.trim())
            .ok_or_else(|| {
                locate(
                    file,
                    v.span(),
                    format!(
                        "`value` must name an aggregate ({})",
                        aggregate_names.join(", ")
                    ),
                )
            })),
        None if aggregates.len() <= 1 => (!aggregates.is_empty()).then_some(0),
        None => {
            errors.push(locate(
                file,
                spec.id.span(),
                "with several aggregates, say which one is the alert's `value`",
            ));
            None
        }
    };

    let (mut for_windows, mut for_ms) = (1u32, 0i64);
    if let Some(f) = &spec.for_ {
        match f.trim().parse::<u32>() {
            Ok(n) if n >= 1 => for_windows = n,
            Ok(_) => errors.push(locate(
                file,
                f.span(),
                "`for` must be at least 1 evaluation",
            )),
            Err(_) => {
                if let Some(ms) = check!(parse_ms(file, f, "for")) {
                    for_ms = ms;
                }
            }
        }
    }

    let mut escalations = Vec::new();
    let mut value_escalations = Vec::new();
    for e in &spec.escalate {
        if let Some(when) = &e.when {
            let severity = check!(Severity::parse(e.severity.trim()).ok_or_else(|| locate(
                file,
                e.severity.span(),
                format!("unknown severity `{}`", e.severity.as_str())
            )));
            if e.after.is_some() || e.unless_acknowledged.is_some() {
                errors.push(locate(
                    file,
                    when.span(),
                    "an escalation has either `after` or `when`, not both",
                ));
            }
            if let (Some(when), Some(severity)) = (check!(compile_cond(when)), severity) {
                value_escalations.push(ValueEscalation { when, severity });
            }
            continue;
        }
        let Some(after_field) = &e.after else {
            errors.push(locate(
                file,
                e.severity.span(),
                "an escalation needs `after` (a duration) or `when` (a condition)",
            ));
            continue;
        };
        let after = check!(parse_ms(file, after_field, "escalate.after"));
        let sev = check!(Severity::parse(e.severity.trim()).ok_or_else(|| locate(
            file,
            e.severity.span(),
            format!("unknown severity `{}`", e.severity.as_str())
        )));
        let unless_ack = match e.unless_acknowledged.as_ref().map(|u| u.trim()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                errors.push(locate(
                    file,
                    e.unless_acknowledged.as_ref().unwrap().span(),
                    format!("`{other}` is not true or false"),
                ));
                false
            }
        };
        if let (Some(after_ms), Some(severity)) = (after, sev) {
            if severity
                <= severity_or_info(
                    escalations
                        .last()
                        .map(|x: &Escalation| x.severity)
                        .or(severity_of(&spec.severity)),
                )
            {
                errors.push(locate(
                    file,
                    e.severity.span(),
                    "each escalation must raise the severity",
                ));
            }
            escalations.push(Escalation {
                after_ms,
                severity,
                unless_acknowledged: unless_ack,
            });
        }
    }
    if escalations
        .windows(2)
        .any(|w| w[1].after_ms <= w[0].after_ms)
    {
        errors.push(locate(
            file,
            spec.id.span(),
            "escalations must be in increasing `after` order",
        ));
    }
    let corroborate = spec.corroborate.as_ref().and_then(|c| {
        let within_ms = check!(parse_ms(file, &c.within, "corroborate.within"))?;
        let text = c.distance.trim();
        let distance_m = match text.strip_suffix("km") {
            Some(km) => km.trim().parse::<f64>().ok().map(|v| v * 1000.0),
            None => text.strip_suffix('m').and_then(|m| m.trim().parse::<f64>().ok()),
        };
        let Some(distance_m) = distance_m.filter(|d| d.is_finite() && *d > 0.0) else {
            errors.push(locate(file, c.distance.span(), format!("`{text}` is not a distance (write e.g. `2km` or `500m`)")));
            return None;
        };
        if spec.condition.is_some() || spec.window.is_some() || !spec.aggregates.0.is_empty() || spec.absence.is_some() {
            errors.push(locate(file, c.first.span(), "a corroboration rule has no window, aggregates, condition or absence: it reads other rules' alerts"));
        }
        Some(Corroboration {
            first: c.first.trim().to_string(),
            then: c.then.trim().to_string(),
            within_ms,
            distance_m,
        })
    });
    let resolve_after_ms = spec
        .resolve_after
        .as_ref()
        .and_then(|r| check!(parse_ms(file, r, "resolve_after")));

    let source_pattern = spec
        .matcher
        .source
        .as_ref()
        .map(|s| WildMatch::new(s.trim()));
    let camera_events = spec.matcher.event.as_ref().map(|e| {
        e.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    });
    if camera_events.is_some() && kind.is_some_and(|k| k != Kind::Camera) {
        errors.push(locate(
            file,
            spec.matcher.kind.span(),
            "`match.event` only applies to kind `camera`",
        ));
    }
    let message = match &spec.message {
        Some(m) => check!(MessageTemplate::parse(m, &names).map_err(|e| locate(file, m.span(), e)))
            .unwrap_or_default(),
        None => MessageTemplate::parse("{rule} at {key}: {value}", &names).unwrap_or_default(),
    };

    let resolved_message = spec.resolved_message.as_ref().and_then(|m| {
        check!(MessageTemplate::parse(m, &names).map_err(|e| locate(file, m.span(), e)))
    });

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rule {
        id,
        description: spec.description.clone(),
        kind: kind.expect("checked"),
        metric_filter: spec.matcher.metric.as_ref().map(|m| m.trim().to_string()),
        source_pattern,
        status_mask,
        zone: spec.matcher.zone.clone(),
        camera_events,
        key_by,
        window,
        metrics,
        metric_needs_sketch,
        metric_needs_hourly,
        aggregates,
        aggregate_names,
        derived,
        condition,
        clear,
        for_windows,
        for_ms,
        severity: severity.expect("checked"),
        escalations,
        value_escalations,
        corroborate,
        absence_ms,
        resolve_after_ms,
        value_slot,
        message,
        resolved_message,
        labels: spec.labels.clone(),
        origin,
    })
}

fn severity_of(s: &Spanned<String>) -> Option<Severity> {
    Severity::parse(s.trim())
}

fn severity_or_info(s: Option<Severity>) -> Severity {
    s.unwrap_or(Severity::Info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuleSet, RuleErrors> {
        let lookups = LookupTables::from_csv_text("stations", "source,cod_limit\nA,75\n").unwrap();
        RuleSet::from_sources(&[("t.yaml".to_string(), text.to_string())], lookups)
    }

    #[test]
    fn compiles_a_full_rule() {
        let set = load(
            r#"
rules:
  - id: cod_hourly
    match: { kind: discharge, source: "CT-*", status: "00" }
    window: { type: sliding, size: 1h, slide: 5m }
    aggregates:
      mean_cod: avg(cod)
      p95: percentile(cod, 95)
      n: count()
    condition: mean_cod > stations.cod_limit && n >= 3
    clear: mean_cod < stations.cod_limit * 0.9
    for: 2
    severity: major
    escalate:
      - { after: 30m, severity: critical }
    value: mean_cod
    message: "COD {mean_cod:.1} mg/L above {stations.cod_limit}"
    labels: { pack: discharge }
"#,
        )
        .unwrap();
        let r = &set.rules[0];
        assert_eq!(
            r.window,
            WindowKind::Hopping {
                size: 3_600_000,
                slide: 300_000
            }
        );
        assert_eq!(r.window.panes_per_window(), 12);
        assert_eq!(r.metrics, vec!["cod".to_string()]);
        assert_eq!(r.metric_needs_sketch, vec![true]);
        assert_eq!(r.for_windows, 2);
        assert_eq!(r.escalations[0].severity, Severity::Critical);
        assert_eq!(r.value_slot, Some(0));
        assert!(r.accepts_status(StationStatus::Normal));
        assert!(!r.accepts_status(StationStatus::Calibrating));
        assert_eq!(r.origin, "t.yaml:3");
    }

    #[test]
    fn errors_carry_file_and_line() {
        let errs = load(
            "rules:\n  - id: bad\n    match: { kind: discharge }\n    window: { type: tumbling, size: 1 hour }\n    aggregates: { m: avg(cod) }\n    condition: m > nope\n    severity: huge\n",
        )
        .unwrap_err();
        let text = errs.to_string();
        assert!(text.contains("t.yaml:4:"), "{text}");
        assert!(text.contains("t.yaml:6:"), "{text}");
        assert!(text.contains("unknown name `nope`"), "{text}");
        assert!(text.contains("t.yaml:7:"), "{text}");
        assert!(text.contains("unknown severity"), "{text}");
    }

    #[test]
    fn unknown_fields_and_duplicates_are_reported() {
        let errs = load(
            "rules:\n  - id: a\n    match: { kind: air }\n    condtion: x\n    severity: minor\n",
        )
        .unwrap_err();
        assert!(errs.to_string().contains("t.yaml:4:"), "{errs}");
        let errs = load(
            "rules:\n  - id: a\n    match: { kind: air }\n    absence: 10m\n    severity: minor\n  - id: a\n    match: { kind: air }\n    absence: 10m\n    severity: minor\n",
        )
        .unwrap_err();
        assert!(
            errs.to_string().contains("t.yaml:6:")
                && errs.to_string().contains("already defined at t.yaml:2"),
            "{errs}"
        );
    }

    #[test]
    fn absence_rules_default_to_any_status() {
        let set = load("rules:\n  - id: offline\n    match: { kind: discharge }\n    absence: 15m\n    severity: major\n").unwrap();
        assert_eq!(set.rules[0].absence_ms, Some(900_000));
        assert!(set.rules[0].accepts_status(StationStatus::Error));
    }
}

#[cfg(test)]
#[path = "rule_refusals.rs"]
mod refusals;
