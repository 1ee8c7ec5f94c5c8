//! The master list as timed actions, and the drill's clock: drill time runs `speed` times
//! faster than the wall clock, stops while the drill is paused, and resumes where it
//! stopped, so the remaining injects keep their spacing.
//!
//! Invariants: [`plan`] is sorted by drill time (then by the master list's order); a
//! station's readings inside one of its `silence` windows are not planned; a paused clock's
//! drill time does not move.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{Drill, InjectKind, Text};

/// One thing to do at a drill time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// A reading of a station.
    Reading {
        /// The station.
        station: String,
        /// Metric values.
        values: BTreeMap<String, f64>,
    },
    /// A camera detection.
    Camera {
        /// The camera.
        station: String,
        /// What it saw.
        event: String,
        /// Confidence.
        confidence: f64,
    },
    /// A message to the players.
    Message {
        /// The text.
        text: Text,
    },
}

/// An action at a drill time, from an inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// Drill time, ms from the start.
    pub at_ms: i64,
    /// The inject it comes from.
    pub inject: String,
    /// What.
    pub action: Action,
}

/// The incident shape: 0 → 1 over the first 40 %, 1 to 60 %, back to 0 at the end.
fn shape(fraction: f64) -> f64 {
    if fraction < 0.4 {
        fraction / 0.4
    } else if fraction <= 0.6 {
        1.0
    } else {
        ((1.0 - fraction) / 0.4).max(0.0)
    }
}

/// Every action of the drill, in drill-time order.
pub fn plan(drill: &Drill) -> Vec<Planned> {
    let mut out: Vec<(i64, usize, Planned)> = Vec::new();
    let mut silences: Vec<(String, i64, i64)> = Vec::new();
    for (order, inject) in drill.injects.iter().enumerate() {
        let mut push = |at_ms: i64, action: Action| {
            out.push((
                at_ms,
                order,
                Planned {
                    at_ms,
                    inject: inject.id.clone(),
                    action,
                },
            ))
        };
        match &inject.kind {
            InjectKind::Readings {
                station,
                values,
                every_ms,
            } => {
                let n = values.values().map(Vec::len).max().unwrap_or(0);
                for i in 0..n {
                    let reading = values
                        .iter()
                        .filter_map(|(m, v)| v.get(i).map(|x| (m.clone(), *x)))
                        .collect();
                    push(
                        inject.at_ms + every_ms * i as i64,
                        Action::Reading {
                            station: station.clone(),
                            values: reading,
                        },
                    );
                }
            }
            InjectKind::Incident {
                station,
                metric,
                base,
                peak,
                duration_ms,
                every_ms,
            } => {
                let n = duration_ms / every_ms.max(&1);
                for i in 0..=n {
                    let value = base + peak * shape(i as f64 / n.max(1) as f64);
                    let value = (value * 1000.0).round() / 1000.0;
                    push(
                        inject.at_ms + every_ms * i,
                        Action::Reading {
                            station: station.clone(),
                            values: [(metric.clone(), value)].into(),
                        },
                    );
                }
            }
            InjectKind::Camera {
                station,
                event,
                confidence,
            } => push(
                inject.at_ms,
                Action::Camera {
                    station: station.clone(),
                    event: event.clone(),
                    confidence: *confidence,
                },
            ),
            InjectKind::Message { text } => {
                push(inject.at_ms, Action::Message { text: text.clone() })
            }
            InjectKind::Silence {
                station,
                duration_ms,
            } => silences.push((station.clone(), inject.at_ms, inject.at_ms + duration_ms)),
        }
    }
    out.retain(|(at, _, p)| match &p.action {
        Action::Reading { station, .. } | Action::Camera { station, .. } => !silences
            .iter()
            .any(|(s, from, to)| s == station && *at >= *from && *at < *to),
        Action::Message { .. } => true,
    });
    out.sort_by_key(|(at, order, _)| (*at, *order));
    out.into_iter().map(|(_, _, p)| p).collect()
}

/// The drill's clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// Drill milliseconds per wall millisecond.
    pub speed: f64,
    /// Wall time of the start.
    pub started_wall: i64,
    /// Wall time the current pause began.
    pub paused_at: Option<i64>,
    /// Wall milliseconds spent paused before the current pause.
    pub paused_total: i64,
}

impl Clock {
    /// A clock started at `wall`.
    pub fn new(wall: i64, speed: f64) -> Clock {
        Clock {
            speed: if speed > 0.0 { speed } else { 1.0 },
            started_wall: wall,
            paused_at: None,
            paused_total: 0,
        }
    }

    /// Drill time at wall time `wall`.
    pub fn drill_time(&self, wall: i64) -> i64 {
        let wall = self.paused_at.map_or(wall, |p| p.min(wall));
        (((wall - self.started_wall - self.paused_total).max(0)) as f64 * self.speed).round() as i64
    }

    /// The wall time drill time `drill_ms` comes (were the clock to keep running from now).
    pub fn wall_of(&self, drill_ms: i64) -> i64 {
        self.started_wall + self.paused_total + (drill_ms as f64 / self.speed).ceil() as i64
    }

    /// Pauses at `wall` (nothing if paused).
    pub fn pause(&mut self, wall: i64) {
        if self.paused_at.is_none() {
            self.paused_at = Some(wall);
        }
    }

    /// Resumes at `wall` (nothing if running).
    pub fn resume(&mut self, wall: i64) {
        if let Some(p) = self.paused_at.take() {
            self.paused_total += (wall - p).max(0);
        }
    }

    /// Is it paused?
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }
}
