//! Indicator files (`indicators/*.yaml`): parsing and validation with `file:line` errors.
//!
//! Invariants of a loaded [`IndicatorSet`]: ids are unique across files; every source,
//! period, kind, sector and scope level named is known; the `value` expression compiles
//! against the variables its source provides (a typo is an error here, never a blank
//! tile); bands are ordered the way `better` says; derived stream metrics (`vn_aqi`,
//! `congestion`) are live only. Each indicator keeps a fingerprint of its definition, so
//! a reload can tell the ones that changed (their history restarts) from the rest (kept).

use std::collections::BTreeMap;
use std::path::Path;

use marked_yaml::Spanned;
use serde::{Deserialize, Serialize};

use watchfloor_engine::expr::{CompiledExpr, Names};
use watchfloor_engine::rule::{locate, parse_yaml};
use watchfloor_engine::{LookupTables, RuleError, RuleErrors};
use watchfloor_model::{Kind, Severity};

use crate::band::{Bands, Better};

/// How often an indicator's value means something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// The current state (open alerts, latest readings).
    Live,
    /// The current clock hour.
    Hourly,
    /// The current local day (UTC+7).
    Daily,
    /// The current local month.
    Monthly,
}

/// Where an indicator's variables come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Alert counts and times: `open`, `open_critical`, `open_major`, `open_minor`,
    /// `open_info`, `fired`, `acknowledged`, `resolved`, `mtta_s`, `mttr_s`.
    Alerts {
        /// Only alerts of these packs (empty: any).
        packs: Vec<String>,
        /// Only alerts of these rules (empty: any).
        rules: Vec<String>,
        /// Only alerts at least this severe.
        min_severity: Option<Severity>,
    },
    /// Station status: `stations`, `reporting`, `silent`, `alerting`, `compliant`.
    Stations {
        /// Only stations of these kinds (empty: every kind but cameras).
        kinds: Vec<Kind>,
        /// The packs whose alerts make a station `alerting` (empty: any).
        packs: Vec<String>,
    },
    /// Stream aggregates of one metric over the stations: `max`, `min`, `mean`, `sum`,
    /// `count` (of stations with a value).
    Stream {
        /// Only stations of these kinds (empty: any).
        kinds: Vec<Kind>,
        /// A canonical metric, or a derived one: `vn_aqi`, `congestion`.
        metric: String,
    },
    /// Pushed by another system (`kind: indicator` envelopes): `value`.
    Pushed,
}

/// The variables each source gives the `value` expression.
pub fn variables(source: &Source) -> &'static [&'static str] {
    match source {
        Source::Alerts { .. } => &[
            "open",
            "open_critical",
            "open_major",
            "open_minor",
            "open_info",
            "fired",
            "acknowledged",
            "resolved",
            "mtta_s",
            "mttr_s",
        ],
        Source::Stations { .. } => &["stations", "reporting", "silent", "alerting", "compliant"],
        Source::Stream { .. } => &["max", "min", "mean", "sum", "count"],
        Source::Pushed => &["value"],
    }
}

/// Derived stream metrics (live only).
pub const DERIVED_METRICS: [&str; 2] = ["vn_aqi", "congestion"];

/// Area levels an indicator can apply to.
pub const SCOPE_LEVELS: [&str; 3] = ["city", "commune", "district"];

/// One indicator, validated.
#[derive(Debug)]
pub struct Indicator {
    /// Stable id.
    pub id: String,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name.
    pub name_en: String,
    /// Unit as shown (`%`, `min`, `VN_AQI`…).
    pub unit: String,
    /// The owning unit (Vietnamese, English).
    pub owner: (String, String),
    /// Its sector (`None`: every sector's, computed per sector view).
    pub sector: Option<String>,
    /// Its period.
    pub period: Period,
    /// Where its variables come from.
    pub source: Source,
    /// The value expression, compiled over [`variables`] in order.
    pub value: CompiledExpr,
    /// Target.
    pub target: Option<f64>,
    /// Red/amber/green bands.
    pub bands: Option<Bands>,
    /// Area levels it applies to.
    pub scopes: Vec<String>,
    /// Where it is defined (`file:line`).
    pub origin: String,
    /// Its definition, to tell a changed indicator on reload.
    pub fingerprint: String,
}

/// The indicators of a directory, in file then definition order.
#[derive(Debug, Default)]
pub struct IndicatorSet {
    /// Every indicator.
    pub indicators: Vec<Indicator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    indicators: Vec<IndicatorSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Names2 {
    vi: Spanned<String>,
    en: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BandSpec {
    #[serde(default)]
    better: Option<Spanned<String>>,
    green: f64,
    amber: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorSpec {
    id: Spanned<String>,
    name: Names2,
    unit: String,
    owner: Names2,
    #[serde(default)]
    sector: Option<Spanned<String>>,
    period: Spanned<String>,
    from: Spanned<String>,
    #[serde(default)]
    kinds: Vec<Spanned<String>>,
    #[serde(default)]
    packs: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    min_severity: Option<Spanned<String>>,
    #[serde(default)]
    metric: Option<Spanned<String>>,
    value: Spanned<String>,
    #[serde(default)]
    target: Option<f64>,
    #[serde(default)]
    bands: Option<Spanned<BandSpec>>,
    #[serde(default)]
    scopes: Vec<Spanned<String>>,
}

impl IndicatorSet {
    /// Loads every `*.yaml`/`*.yml` file in `dir` (not recursive), in name order; `sectors`
    /// are the configured sector ids. Every problem is reported, not only the first.
    pub fn load_dir(dir: &Path, sectors: &[String]) -> Result<IndicatorSet, RuleErrors> {
        let read = std::fs::read_dir(dir).map_err(|e| {
            RuleErrors(vec![RuleError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: e.to_string(),
            }])
        })?;
        let mut files: Vec<_> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                RuleErrors(vec![RuleError {
                    file: file.display().to_string(),
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }])
            })?;
            sources.push((file.display().to_string(), text));
        }
        Self::from_sources(&sources, sectors)
    }

    /// Compiles indicators from `(file name, YAML text)` pairs.
    pub fn from_sources(
        sources: &[(String, String)],
        sectors: &[String],
    ) -> Result<IndicatorSet, RuleErrors> {
        let mut errors = Vec::new();
        let mut set = IndicatorSet::default();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (file, text) in sources {
            let spec: FileSpec = match parse_yaml(file, text) {
                Ok(spec) => spec,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for spec in spec.indicators {
                match compile(file, &spec, sectors) {
                    Ok(indicator) => {
                        if let Some(first) = seen.get(&indicator.id) {
                            errors.push(locate(
                                file,
                                spec.id.span(),
                                format!(
                                    "indicator `{}` is already defined at {first}",
                                    indicator.id
                                ),
                            ));
                        } else {
                            seen.insert(indicator.id.clone(), indicator.origin.clone());
                            set.indicators.push(indicator);
                        }
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(RuleErrors(errors))
        }
    }

    /// An indicator by id.
    pub fn get(&self, id: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.id == id)
    }

    /// The ids of the `from: pushed` indicators (the names a pushing system may send).
    pub fn pushed_ids(&self) -> Vec<String> {
        self.indicators
            .iter()
            .filter(|i| i.source == Source::Pushed)
            .map(|i| i.id.clone())
            .collect()
    }
}

fn parse_kinds(file: &str, kinds: &[Spanned<String>], errors: &mut Vec<RuleError>) -> Vec<Kind> {
    kinds
        .iter()
        .filter_map(|k| {
            let parsed = Kind::parse(k);
            if parsed.is_none() {
                errors.push(locate(
                    file,
                    k.span(),
                    format!("unknown station kind `{}`", **k),
                ));
            }
            parsed
        })
        .collect()
}

fn compile(
    file: &str,
    spec: &IndicatorSpec,
    sectors: &[String],
) -> Result<Indicator, Vec<RuleError>> {
    let mut errors = Vec::new();
    let id = spec.id.to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        errors.push(locate(
            file,
            spec.id.span(),
            format!("indicator id `{id}` must be letters, digits and `_`"),
        ));
    }
    let period = match spec.period.as_str() {
        "live" => Period::Live,
        "hourly" => Period::Hourly,
        "daily" => Period::Daily,
        "monthly" => Period::Monthly,
        other => {
            errors.push(locate(
                file,
                spec.period.span(),
                format!("unknown period `{other}` (live, hourly, daily, monthly)"),
            ));
            Period::Live
        }
    };
    let kinds = parse_kinds(file, &spec.kinds, &mut errors);
    let source = match spec.from.as_str() {
        "alerts" => Source::Alerts {
            packs: spec.packs.clone(),
            rules: spec.rules.clone(),
            min_severity: spec.min_severity.as_ref().and_then(|s| {
                let parsed = Severity::parse(s);
                if parsed.is_none() {
                    errors.push(locate(
                        file,
                        s.span(),
                        format!("unknown severity `{}`", **s),
                    ));
                }
                parsed
            }),
        },
        "stations" => Source::Stations {
            kinds,
            packs: spec.packs.clone(),
        },
        "stream" => match &spec.metric {
            Some(metric) => {
                let derived = DERIVED_METRICS.contains(&metric.as_str());
                if !derived && watchfloor_model::canonical_unit(metric).is_none() {
                    errors.push(locate(
                        file,
                        metric.span(),
                        format!(
                            "unknown metric `{}` (a canonical metric such as pm25, cod, water_level, speed; or {})",
                            **metric,
                            DERIVED_METRICS.join(", ")
                        ),
                    ));
                }
                if derived && period != Period::Live {
                    errors.push(locate(
                        file,
                        metric.span(),
                        format!("the derived metric `{}` is live only", **metric),
                    ));
                }
                Source::Stream {
                    kinds,
                    metric: metric.to_string(),
                }
            }
            None => {
                errors.push(locate(
                    file,
                    spec.from.span(),
                    "a `stream` indicator needs a `metric`",
                ));
                Source::Pushed
            }
        },
        "pushed" => Source::Pushed,
        other => {
            errors.push(locate(
                file,
                spec.from.span(),
                format!("unknown source `{other}` (alerts, stations, stream, pushed)"),
            ));
            Source::Pushed
        }
    };
    let names: Vec<String> = variables(&source).iter().map(|v| v.to_string()).collect();
    let constants = BTreeMap::new();
    let lookups = LookupTables::new();
    let compiled = CompiledExpr::compile(
        &spec.value,
        &Names {
            aggregates: &names,
            constants: &constants,
            lookups: &lookups,
        },
    );
    let value = match compiled {
        Ok(v) if v.ty() == watchfloor_engine::expr::Ty::Num => Some(v),
        Ok(_) => {
            errors.push(locate(
                file,
                spec.value.span(),
                format!(
                    "`value` must be a number, not a condition: `{}`",
                    *spec.value
                ),
            ));
            None
        }
        Err(e) => {
            errors.push(locate(
                file,
                spec.value.span(),
                format!(
                    "value: {e} (variables of `{}`: {})",
                    *spec.from,
                    names.join(", ")
                ),
            ));
            None
        }
    };
    let sector = spec.sector.as_ref().map(|s| {
        if !sectors.iter().any(|k| k == s.as_str()) {
            errors.push(locate(
                file,
                s.span(),
                format!(
                    "unknown sector `{}` (city/sectors.csv: {})",
                    **s,
                    sectors.join(", ")
                ),
            ));
        }
        s.to_string()
    });
    let bands = spec.bands.as_ref().map(|b| {
        let better = match b.better.as_ref().map(|s| s.as_str()) {
            None | Some("higher") => Better::Higher,
            Some("lower") => Better::Lower,
            Some(other) => {
                errors.push(locate(
                    file,
                    b.better.as_ref().unwrap().span(),
                    format!("`better` is higher or lower, not `{other}`"),
                ));
                Better::Higher
            }
        };
        let ordered = match better {
            Better::Higher => b.green > b.amber,
            Better::Lower => b.green < b.amber,
        };
        if !ordered {
            errors.push(locate(
                file,
                b.span(),
                format!(
                    "bands are not ordered: with better = {}, green ({}) must be {} amber ({})",
                    if better == Better::Higher {
                        "higher"
                    } else {
                        "lower"
                    },
                    b.green,
                    if better == Better::Higher {
                        "above"
                    } else {
                        "below"
                    },
                    b.amber
                ),
            ));
        }
        Bands {
            better,
            green: b.green,
            amber: b.amber,
        }
    });
    let mut scopes = Vec::new();
    for s in &spec.scopes {
        if SCOPE_LEVELS.contains(&s.as_str()) {
            scopes.push(s.to_string());
        } else {
            errors.push(locate(
                file,
                s.span(),
                format!("unknown scope `{}` (city, commune, district)", **s),
            ));
        }
    }
    if spec.scopes.is_empty() {
        scopes = vec!["city".into(), "commune".into(), "district".into()];
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let line = spec.id.span().start().map_or(0, |m| m.line());
    let value = value.expect("no errors: compiled");
    let fingerprint =
        format!(
        "{id}|{}|{}|{}|{:?}|{sector:?}|{period:?}|{source:?}|{value:?}|{:?}|{bands:?}|{scopes:?}",
        *spec.name.vi, *spec.name.en, spec.unit, (&*spec.owner.vi, &*spec.owner.en), spec.target
    );
    Ok(Indicator {
        name_vi: spec.name.vi.to_string(),
        name_en: spec.name.en.to_string(),
        unit: spec.unit.clone(),
        owner: (spec.owner.vi.to_string(), spec.owner.en.to_string()),
        sector,
        period,
        source,
        value,
        target: spec.target,
        bands,
        scopes,
        origin: format!("{file}:{line}"),
        fingerprint,
        id,
    })
}
