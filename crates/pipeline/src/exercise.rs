//! Exercises (drills) on the engine's task: each running exercise has an engine of its
//! own, started with the live rules, so its injected readings have their own windows,
//! watermark, duplicate memory and alerts and never mix with real telemetry (nor hold the
//! real watermark back, nor make real readings late).
//!
//! Invariants: every transition an exercise engine emits leaves here with its id
//! rewritten to `<exercise>~<id>` and the labels `exercise = <id>`, `mode = exercise`; an
//! exercise's readings are never shown to the observer as events (real KPIs and data
//! quality do not see them); an exercise's engine state is in every checkpoint (under
//! `exercise:<id>` in its side map), so a crash mid-drill loses none of it; ending an
//! exercise resolves its open alerts and drops its engine.

use std::collections::BTreeMap;

use watchfloor_city::City;
use watchfloor_engine::{ActiveAlertView, Emitted, Engine, EngineError, RuleSet};
use watchfloor_model::{
    decode_envelopes, valid_exercise_id, DecodeLimits, EXERCISE_ID_SEPARATOR, EXERCISE_LABEL,
    EXERCISE_MODE, MODE_LABEL,
};

/// Checkpoint side-map key prefix of an exercise's engine state (hex).
const SIDE_KEY: &str = "exercise:";

/// What an exercise command asks of the engine task.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum ExerciseAction {
    /// Start the exercise's engine (nothing if it runs already).
    Start,
    /// Injected JSON envelopes (each one reading or camera event, or an array of them).
    Inject {
        /// The payloads.
        payloads: Vec<String>,
    },
    /// End the exercise at `at` (epoch ms): its open alerts are resolved, its engine
    /// dropped (nothing if it is not running).
    End {
        /// When.
        at: i64,
    },
}

/// What an exercise command did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExerciseAnswer {
    /// Events accepted.
    pub accepted: usize,
    /// Why the others were refused.
    pub refused: Vec<String>,
    /// Alerts resolved by an end.
    pub closed: usize,
}

/// A logged exercise command.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExerciseRecord {
    /// The exercise.
    pub id: String,
    /// The engine clock it was applied at (epoch ms).
    pub now: i64,
    /// What.
    pub action: ExerciseAction,
}

/// The running exercises' engines.
#[derive(Default)]
pub struct Exercises {
    engines: BTreeMap<String, Engine>,
}

impl Exercises {
    /// The exercises a checkpoint's side map holds, with `template`'s rules.
    pub fn restore(template: &Engine, side: &BTreeMap<String, String>) -> Exercises {
        let mut engines = BTreeMap::new();
        for (key, value) in side {
            let Some(id) = key.strip_prefix(SIDE_KEY) else {
                continue;
            };
            let restored = unhex(value)
                .ok_or_else(|| "not hex".to_string())
                .and_then(|b| {
                    Engine::restore(template.rule_set(), template.config().clone(), &b)
                        .map_err(|e| e.to_string())
                });
            match restored {
                Ok((engine, _)) => {
                    tracing::info!(
                        exercise = id,
                        "exercise engine restored from the checkpoint"
                    );
                    engines.insert(id.to_string(), engine);
                }
                Err(e) => {
                    tracing::error!(exercise = id, error = %e, "exercise state unreadable; the exercise starts empty");
                    engines.insert(
                        id.to_string(),
                        Engine::new(template.rule_set(), template.config().clone()),
                    );
                }
            }
        }
        Exercises { engines }
    }

    /// Adds each exercise's engine state to a checkpoint's side map.
    pub fn checkpoint_into(&self, side: &mut BTreeMap<String, String>) {
        for (id, engine) in &self.engines {
            side.insert(
                format!("{SIDE_KEY}{id}"),
                hex(&engine.checkpoint(&BTreeMap::new())),
            );
        }
    }

    /// Running exercises.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.engines.keys().map(String::as_str)
    }

    /// Applies one exercise command at clock `now`.
    pub fn apply(
        &mut self,
        record: &ExerciseRecord,
        template: &Engine,
        city: Option<&City>,
        limits: &DecodeLimits,
        out: &mut Emitted,
    ) -> Result<ExerciseAnswer, EngineError> {
        if !valid_exercise_id(&record.id) {
            return Err(EngineError::Exercise(format!(
                "exercise id `{}` is not 1–64 of a-z, 0-9, _ and -",
                record.id
            )));
        }
        let id = record.id.as_str();
        let mut answer = ExerciseAnswer::default();
        match &record.action {
            ExerciseAction::Start => {
                self.engines.entry(id.to_string()).or_insert_with(|| {
                    tracing::info!(exercise = id, "exercise started");
                    Engine::new(template.rule_set(), template.config().clone())
                });
            }
            ExerciseAction::Inject { payloads } => {
                let Some(engine) = self.engines.get_mut(id) else {
                    return Err(EngineError::Exercise(format!(
                        "exercise `{id}` is not running"
                    )));
                };
                let mut emitted = Emitted::default();
                engine.tick(record.now, &mut emitted);
                for payload in payloads {
                    for decoded in decode_envelopes(payload.as_bytes(), Some(record.now), limits) {
                        let result = decoded.and_then(|mut event| {
                            if let Some(city) = city {
                                city.place(&mut event)?;
                            }
                            engine.process_on(0, &event, &mut emitted)
                        });
                        match result {
                            Ok(()) => answer.accepted += 1,
                            Err(reason) => {
                                tracing::warn!(exercise = id, %reason, "exercise inject refused");
                                answer.refused.push(reason.to_string());
                            }
                        }
                    }
                }
                tag(id, emitted, out);
            }
            ExerciseAction::End { at } => {
                let Some(mut engine) = self.engines.remove(id) else {
                    return Ok(answer);
                };
                let mut emitted = Emitted::default();
                for alert in engine.active_alerts() {
                    if engine
                        .resolve_manually(&alert.alert_id, *at, &mut emitted)
                        .is_ok()
                    {
                        answer.closed += 1;
                    }
                }
                tag(id, emitted, out);
                tracing::info!(exercise = id, closed = answer.closed, "exercise ended");
            }
        }
        Ok(answer)
    }

    /// Moves every exercise's clock to `now`.
    pub fn tick(&mut self, now: i64, out: &mut Emitted) {
        for (id, engine) in &mut self.engines {
            let mut emitted = Emitted::default();
            engine.tick(now, &mut emitted);
            tag(id, emitted, out);
        }
    }

    /// After a restart's log replay: the downtime is not the stations' silence.
    pub fn resume(&mut self, now: i64) {
        for engine in self.engines.values_mut() {
            engine.resume(now);
        }
    }

    /// Swaps in new rules in every exercise's engine.
    pub fn reload(&mut self, rules: &RuleSet, out: &mut Emitted) {
        for (id, engine) in &mut self.engines {
            let mut emitted = Emitted::default();
            engine.reload(rules.clone(), &mut emitted);
            tag(id, emitted, out);
        }
    }

    /// Runs `action` on the engine of exercise alert `alert_id` with the engine's own id;
    /// `None` when the id is not an exercise alert's.
    pub fn on_alert<T>(
        &mut self,
        alert_id: &str,
        out: &mut Emitted,
        action: impl FnOnce(&mut Engine, &str, &mut Emitted) -> Result<T, EngineError>,
    ) -> Option<Result<T, EngineError>> {
        let (exercise, inner) = alert_id.split_once(EXERCISE_ID_SEPARATOR)?;
        let Some(engine) = self.engines.get_mut(exercise) else {
            return Some(Err(EngineError::UnknownAlert(alert_id.to_string())));
        };
        let mut emitted = Emitted::default();
        let result = action(engine, inner, &mut emitted);
        tag(exercise, emitted, out);
        Some(result)
    }

    /// Every exercise's firing alerts, with their exercise ids.
    pub fn active_alerts(&self) -> Vec<ActiveAlertView> {
        let mut all = Vec::new();
        for (id, engine) in &self.engines {
            all.extend(engine.active_alerts().into_iter().map(|mut a| {
                a.alert_id = format!("{id}{EXERCISE_ID_SEPARATOR}{}", a.alert_id);
                a
            }));
        }
        all
    }
}

/// Moves an exercise engine's transitions to `out`, marked as the exercise's.
fn tag(exercise: &str, emitted: Emitted, out: &mut Emitted) {
    for mut t in emitted.transitions {
        t.alert_id = format!("{exercise}{EXERCISE_ID_SEPARATOR}{}", t.alert_id);
        t.labels
            .insert(EXERCISE_LABEL.to_string(), exercise.to_string());
        t.labels
            .insert(MODE_LABEL.to_string(), EXERCISE_MODE.to_string());
        out.transitions.push(t);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
