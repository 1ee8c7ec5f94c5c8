//! Drill scripts (`drills/*.yaml`, one drill per file): the format, and its validation
//! with `file:line` errors.
//!
//! Invariants of a loaded [`Drill`]: ids (objectives, injects, outcomes) are unique; every
//! offset and duration is a positive duration (offsets may be zero); every station named
//! is known (when the registry is given), every rule and playbook step named is known
//! (when given); every outcome names an inject, alert outcome or run it is timed from;
//! every objective names outcomes that exist; injects are in offset order once loaded.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::Spanned;
use serde::{Deserialize, Serialize};

use watchfloor_engine::duration::parse_duration_ms;
use watchfloor_engine::rule::{locate, parse_yaml};
use watchfloor_engine::RuleError;

/// A text in Vietnamese and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// Vietnamese.
    pub vi: String,
    /// English.
    pub en: String,
}

/// What an inject does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InjectKind {
    /// Readings of one station: `values` per metric, one reading every `every_ms`,
    /// `count` readings (the values list's length), starting at the inject's offset.
    Readings {
        /// The station.
        station: String,
        /// Values per metric, one per reading.
        values: BTreeMap<String, Vec<f64>>,
        /// Spacing.
        every_ms: i64,
    },
    /// A simulator incident: a metric rising from `base` by `peak` over the first 40 % of
    /// `duration_ms`, holding to 60 %, receding to `base`, a reading every `every_ms`.
    Incident {
        /// The station.
        station: String,
        /// The metric.
        metric: String,
        /// Its value before and after.
        base: f64,
        /// The rise at the top.
        peak: f64,
        /// How long.
        duration_ms: i64,
        /// Spacing.
        every_ms: i64,
    },
    /// A camera detection.
    Camera {
        /// The camera.
        station: String,
        /// What it saw (`fire_smoke`, `accident`…).
        event: String,
        /// Its confidence.
        confidence: f64,
    },
    /// A station stops reporting (its injected readings are dropped) for `duration_ms`.
    Silence {
        /// The station.
        station: String,
        /// For how long.
        duration_ms: i64,
    },
    /// A message shown to the players.
    Message {
        /// The text.
        text: Text,
    },
}

/// One inject of the master list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inject {
    /// Its id.
    pub id: String,
    /// When, from the drill's start (drill time, before the speed factor).
    pub at_ms: i64,
    /// What.
    #[serde(flatten)]
    pub kind: InjectKind,
}

/// What an expected outcome is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Expect {
    /// Alert `rule` for `key` fires within the limit of inject `after`.
    Alert {
        /// The rule.
        rule: String,
        /// The key (a station, a commune).
        key: String,
        /// The inject it is timed from.
        after: String,
    },
    /// The alert of outcome `of` is acknowledged within the limit of its firing.
    Ack {
        /// An `alert` outcome.
        of: String,
    },
    /// Step `step` of playbook `playbook`, on the alert of outcome `of`, is completed within
    /// the limit of its start.
    Step {
        /// The playbook.
        playbook: String,
        /// The step.
        step: String,
        /// An `alert` outcome.
        of: String,
    },
}

/// An expected outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Its id.
    pub id: String,
    /// What is expected.
    #[serde(flatten)]
    pub expect: Expect,
    /// Within this long.
    pub within_ms: i64,
}

/// An objective, rated from its outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Its id.
    pub id: String,
    /// What it is.
    pub title: Text,
    /// The outcomes it is rated by.
    pub outcomes: Vec<String>,
}

/// Who takes part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// An account role.
    pub role: String,
    /// Their communes (empty: the city).
    pub zones: Vec<String>,
}

/// A drill, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    /// Stable id.
    pub id: String,
    /// Its name.
    pub name: Text,
    /// Objectives.
    pub objectives: Vec<Objective>,
    /// Participants.
    pub participants: Vec<Participant>,
    /// The master list, in offset order.
    pub injects: Vec<Inject>,
    /// Expected outcomes.
    pub outcomes: Vec<Outcome>,
    /// The file it came from.
    pub file: String,
}

impl Drill {
    /// When the last inject is due (drill time).
    pub fn length_ms(&self) -> i64 {
        self.injects
            .iter()
            .map(|i| match &i.kind {
                InjectKind::Readings {
                    values, every_ms, ..
                } => {
                    i.at_ms
                        + every_ms * (values.values().map(Vec::len).max().unwrap_or(1) as i64 - 1)
                }
                InjectKind::Incident { duration_ms, .. }
                | InjectKind::Silence { duration_ms, .. } => i.at_ms + duration_ms,
                _ => i.at_ms,
            })
            .max()
            .unwrap_or(0)
    }

    /// An outcome by id.
    pub fn outcome(&self, id: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.id == id)
    }
}

/// What the checks know of the rest of the configuration (empty lists: not checked).
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// Station ids.
    pub stations: Vec<String>,
    /// Rule ids.
    pub rules: Vec<String>,
    /// `(playbook, step)` pairs.
    pub steps: Vec<(String, String)>,
    /// Commune ids.
    pub zones: Vec<String>,
}

// ---- the file format ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    drill: DrillSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextSpec {
    vi: String,
    en: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectiveSpec {
    id: Spanned<String>,
    title: TextSpec,
    outcomes: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantSpec {
    role: Spanned<String>,
    #[serde(default)]
    zones: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectSpec {
    id: Spanned<String>,
    at: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    station: Option<Spanned<String>>,
    #[serde(default)]
    values: BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    every: Option<Spanned<String>>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    base: Option<f64>,
    #[serde(default)]
    peak: Option<f64>,
    #[serde(default, rename = "for")]
    duration: Option<Spanned<String>>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    text: Option<TextSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeSpec {
    id: Spanned<String>,
    kind: Spanned<String>,
    within: Spanned<String>,
    #[serde(default)]
    rule: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    after: Option<Spanned<String>>,
    #[serde(default)]
    of: Option<Spanned<String>>,
    #[serde(default)]
    playbook: Option<String>,
    #[serde(default)]
    step: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillSpec {
    id: Spanned<String>,
    name: TextSpec,
    objectives: Vec<ObjectiveSpec>,
    #[serde(default)]
    participants: Vec<ParticipantSpec>,
    injects: Vec<InjectSpec>,
    #[serde(default)]
    expect: Vec<OutcomeSpec>,
}

struct Ctx<'a> {
    file: &'a str,
    errors: Vec<RuleError>,
    known: &'a Known,
}

impl Ctx<'_> {
    fn err(&mut self, span: &marked_yaml::Span, message: impl Into<String>) {
        self.errors.push(locate(self.file, span, message));
    }

    fn duration(&mut self, field: &Spanned<String>, zero_ok: bool) -> i64 {
        match parse_duration_ms(field) {
            Ok(ms) if ms > 0 || (zero_ok && ms == 0) => ms,
            Ok(_) => {
                self.err(field.span(), "a duration must be above zero");
                0
            }
            Err(e) if zero_ok && field.trim() == "0" => {
                let _ = e;
                0
            }
            Err(e) => {
                self.err(
                    field.span(),
                    format!("`{}` is not a duration: {e}", **field),
                );
                0
            }
        }
    }

    fn station(&mut self, kind: &Spanned<String>, station: &Option<Spanned<String>>) -> String {
        match station {
            None => {
                self.err(kind.span(), format!("a {} inject needs `station`", **kind));
                String::new()
            }
            Some(s) => {
                if !self.known.stations.is_empty() && !self.known.stations.contains(s) {
                    self.err(s.span(), format!("unknown station `{}`", **s));
                }
                s.to_string()
            }
        }
    }

    fn required<T: Clone>(
        &mut self,
        kind: &Spanned<String>,
        v: &Option<T>,
        what: &str,
    ) -> Option<T> {
        if v.is_none() {
            self.err(kind.span(), format!("a {} inject needs `{what}`", **kind));
        }
        v.clone()
    }
}

fn text(t: &TextSpec) -> Text {
    Text {
        vi: t.vi.clone(),
        en: t.en.clone(),
    }
}

fn inject(ctx: &mut Ctx<'_>, s: &InjectSpec) -> Option<Inject> {
    let at_ms = ctx.duration(&s.at, true);
    let every = |ctx: &mut Ctx<'_>| match &s.every {
        Some(e) => ctx.duration(e, false),
        None => {
            ctx.err(s.kind.span(), format!("a {} inject needs `every`", *s.kind));
            0
        }
    };
    let kind = match s.kind.as_str() {
        "readings" => {
            let station = ctx.station(&s.kind, &s.station);
            let lengths: BTreeSet<usize> = s.values.values().map(Vec::len).collect();
            if s.values.is_empty() || lengths.len() != 1 || lengths.contains(&0) {
                ctx.err(
                    s.kind.span(),
                    "`values` gives each metric the same number of readings (at least one)",
                );
            }
            InjectKind::Readings {
                station,
                values: s.values.clone(),
                every_ms: every(ctx),
            }
        }
        "incident" => InjectKind::Incident {
            station: ctx.station(&s.kind, &s.station),
            metric: ctx
                .required(&s.kind, &s.metric, "metric")
                .unwrap_or_default(),
            base: ctx.required(&s.kind, &s.base, "base").unwrap_or_default(),
            peak: ctx.required(&s.kind, &s.peak, "peak").unwrap_or_default(),
            duration_ms: match &s.duration {
                Some(d) => ctx.duration(d, false),
                None => ctx
                    .required(&s.kind, &None::<i64>, "for")
                    .unwrap_or_default(),
            },
            every_ms: every(ctx),
        },
        "camera" => {
            let confidence = ctx
                .required(&s.kind, &s.confidence, "confidence")
                .unwrap_or_default();
            if !(0.0..=1.0).contains(&confidence) {
                ctx.err(s.kind.span(), "`confidence` is between 0 and 1");
            }
            InjectKind::Camera {
                station: ctx.station(&s.kind, &s.station),
                event: ctx.required(&s.kind, &s.event, "event").unwrap_or_default(),
                confidence,
            }
        }
        "silence" => InjectKind::Silence {
            station: ctx.station(&s.kind, &s.station),
            duration_ms: match &s.duration {
                Some(d) => ctx.duration(d, false),
                None => ctx
                    .required(&s.kind, &None::<i64>, "for")
                    .unwrap_or_default(),
            },
        },
        "message" => InjectKind::Message {
            text: s.text.as_ref().map(text).unwrap_or_else(|| {
                ctx.err(s.kind.span(), "a message inject needs `text` (vi, en)");
                Text {
                    vi: String::new(),
                    en: String::new(),
                }
            }),
        },
        other => {
            ctx.err(
                s.kind.span(),
                format!(
                    "unknown inject kind `{other}` (readings, incident, camera, silence, message)"
                ),
            );
            return None;
        }
    };
    Some(Inject {
        id: s.id.to_string(),
        at_ms,
        kind,
    })
}

fn outcome(
    ctx: &mut Ctx<'_>,
    s: &OutcomeSpec,
    injects: &BTreeSet<String>,
    alerts: &BTreeSet<String>,
) -> Option<Outcome> {
    let within_ms = ctx.duration(&s.within, false);
    let named = |ctx: &mut Ctx<'_>,
                 field: &Option<Spanned<String>>,
                 what: &str,
                 among: &BTreeSet<String>,
                 of: &str| match field {
        None => {
            ctx.err(
                s.kind.span(),
                format!("a {} outcome needs `{what}`", *s.kind),
            );
            String::new()
        }
        Some(v) => {
            if !among.contains(v.as_str()) {
                ctx.err(v.span(), format!("no {of} `{}` in this drill", **v));
            }
            v.to_string()
        }
    };
    let expect = match s.kind.as_str() {
        "alert" => {
            let rule = match &s.rule {
                Some(r) => {
                    if !ctx.known.rules.is_empty() && !ctx.known.rules.contains(r) {
                        ctx.err(r.span(), format!("unknown rule `{}`", **r));
                    }
                    r.to_string()
                }
                None => {
                    ctx.err(s.kind.span(), "an alert outcome needs `rule`");
                    String::new()
                }
            };
            let key = s.key.clone().unwrap_or_else(|| {
                ctx.err(s.kind.span(), "an alert outcome needs `key`");
                String::new()
            });
            Expect::Alert {
                rule,
                key,
                after: named(ctx, &s.after, "after", injects, "inject"),
            }
        }
        "ack" => Expect::Ack {
            of: named(ctx, &s.of, "of", alerts, "alert outcome"),
        },
        "step" => {
            let playbook = s.playbook.clone().unwrap_or_default();
            let step = match &s.step {
                Some(st) => {
                    let pair = (playbook.clone(), st.to_string());
                    if !ctx.known.steps.is_empty() && !ctx.known.steps.contains(&pair) {
                        ctx.err(
                            st.span(),
                            format!("no step `{}` in playbook `{playbook}`", **st),
                        );
                    }
                    st.to_string()
                }
                None => {
                    ctx.err(s.kind.span(), "a step outcome needs `playbook` and `step`");
                    String::new()
                }
            };
            Expect::Step {
                playbook,
                step,
                of: named(ctx, &s.of, "of", alerts, "alert outcome"),
            }
        }
        other => {
            ctx.err(
                s.kind.span(),
                format!("unknown outcome kind `{other}` (alert, ack, step)"),
            );
            return None;
        }
    };
    Some(Outcome {
        id: s.id.to_string(),
        expect,
        within_ms,
    })
}

fn unique<'a>(
    ctx: &mut Ctx<'_>,
    ids: impl Iterator<Item = &'a Spanned<String>>,
    what: &str,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id.to_string()) {
            ctx.err(id.span(), format!("{what} `{}` is defined twice", **id));
        }
    }
    seen
}

/// Compiles one file's text.
pub fn compile(file: &str, source: &str, known: &Known) -> Result<Drill, Vec<RuleError>> {
    let spec = parse_yaml::<FileSpec>(file, source)
        .map_err(|e| vec![e])?
        .drill;
    let mut ctx = Ctx {
        file,
        errors: Vec::new(),
        known,
    };
    let inject_ids = unique(&mut ctx, spec.injects.iter().map(|i| &i.id), "inject");
    let outcome_ids = unique(&mut ctx, spec.expect.iter().map(|o| &o.id), "outcome");
    unique(&mut ctx, spec.objectives.iter().map(|o| &o.id), "objective");
    let alert_ids: BTreeSet<String> = spec
        .expect
        .iter()
        .filter(|o| *o.kind == "alert")
        .map(|o| o.id.to_string())
        .collect();
    let mut injects: Vec<Inject> = spec
        .injects
        .iter()
        .filter_map(|i| inject(&mut ctx, i))
        .collect();
    injects.sort_by_key(|i| i.at_ms);
    let outcomes: Vec<Outcome> = spec
        .expect
        .iter()
        .filter_map(|o| outcome(&mut ctx, o, &inject_ids, &alert_ids))
        .collect();
    for o in &spec.objectives {
        for name in &o.outcomes {
            if !outcome_ids.contains(name.as_str()) {
                ctx.err(
                    name.span(),
                    format!("no outcome `{}` in this drill", **name),
                );
            }
        }
    }
    for p in &spec.participants {
        if !["admin", "operator", "viewer", "drill_leader"].contains(&p.role.as_str()) {
            ctx.err(
                p.role.span(),
                format!(
                    "unknown role `{}` (admin, drill_leader, operator, viewer)",
                    *p.role
                ),
            );
        }
        for z in &p.zones {
            if !known.zones.is_empty() && !known.zones.contains(z) {
                ctx.err(z.span(), format!("unknown commune `{}`", **z));
            }
        }
    }
    if spec.injects.is_empty() {
        ctx.err(spec.id.span(), "a drill needs at least one inject");
    }
    if !ctx.errors.is_empty() {
        return Err(ctx.errors);
    }
    Ok(Drill {
        id: spec.id.to_string(),
        name: text(&spec.name),
        objectives: spec
            .objectives
            .iter()
            .map(|o| Objective {
                id: o.id.to_string(),
                title: text(&o.title),
                outcomes: o.outcomes.iter().map(|x| x.to_string()).collect(),
            })
            .collect(),
        participants: spec
            .participants
            .iter()
            .map(|p| Participant {
                role: p.role.to_string(),
                zones: p.zones.iter().map(|z| z.to_string()).collect(),
            })
            .collect(),
        injects,
        outcomes,
        file: file.to_string(),
    })
}
