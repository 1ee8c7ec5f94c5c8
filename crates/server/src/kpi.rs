//! Live KPIs: the configured indicator set (`indicators/*.yaml`, the shipped default when a
//! centre names none) computed once a second per zone and sector view from the hub's
//! readings and alerts, published on the `kpis` channel (one conflated delta of the rows
//! that changed), served by `GET /api/kpis` with history, and reloaded without losing the
//! history of the indicators that did not change. Also the data-quality ledger, fed by
//! every message's outcome.
//!
//! Invariant: a row is sent only to accounts that see its area and whose sector view it
//! is (`view`): a department centre never receives the city-wide all-sector figures.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use watchfloor_indicators::{AlertFact, Computer, IndicatorSet, Inputs, View, ZoneRow};
use watchfloor_model::Event;
use watchfloor_pipeline::Outcome;
use watchfloor_quality::{Fate, Ledger};

use crate::hub::{Channel, DeltaItem, Hub};

/// One point of an indicator's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiPoint {
    /// Epoch ms.
    pub ts: i64,
    /// The value then.
    pub value: Option<f64>,
}

/// The hub's indicator state: the readings (their own lock, taken by the engine's task for
/// a moment per event) and the computer with its views and latest rows (taken by the
/// once-a-second refresh, which copies the readings first and computes without them).
pub(crate) struct Kpis {
    inputs: Mutex<Inputs>,
    state: Mutex<KpiState>,
}

struct KpiState {
    computer: Computer,
    views: Vec<View>,
    last: Vec<ZoneRow>,
}

impl Kpis {
    pub(crate) fn new(set: IndicatorSet) -> Kpis {
        let mut inputs = Inputs::default();
        inputs.set_pushed_ids(set.pushed_ids());
        Kpis {
            inputs: Mutex::new(inputs),
            state: Mutex::new(KpiState {
                computer: Computer::new(Arc::new(set)),
                views: vec![View {
                    name: "*".into(),
                    sectors: None,
                }],
                last: Vec::new(),
            }),
        }
    }
}

/// A row changed when any of its values, bands or trends did.
fn same(a: &ZoneRow, b: &ZoneRow) -> bool {
    a.indicators == b.indicators
}

impl Hub {
    /// The sector views indicators are computed for (the accounts' distinct sector sets).
    pub fn set_sector_views(&self, views: Vec<(String, Option<Vec<String>>)>) {
        let mut k = self.kpis.state.lock().expect("kpi lock");
        k.views = views
            .into_iter()
            .map(|(name, sectors)| View { name, sectors })
            .collect();
    }

    /// Swaps in a validated indicator set; the history of unchanged indicators is kept.
    /// Returns the ids kept and the ids whose history restarts.
    pub fn set_indicators(&self, set: IndicatorSet) -> (Vec<String>, Vec<String>) {
        self.kpis
            .inputs
            .lock()
            .expect("kpi inputs lock")
            .set_pushed_ids(set.pushed_ids());
        let changed = {
            let mut k = self.kpis.state.lock().expect("kpi lock");
            k.last.clear();
            k.computer.replace_set(Arc::new(set))
        };
        self.refresh_kpis();
        changed
    }

    /// The current indicator set.
    pub fn indicator_set(&self) -> Arc<IndicatorSet> {
        self.kpis
            .state
            .lock()
            .expect("kpi lock")
            .computer
            .set()
            .clone()
    }

    pub(crate) fn observe_kpis(&self, event: &Event) {
        self.kpis
            .inputs
            .lock()
            .expect("kpi inputs lock")
            .observe(event);
    }

    pub(crate) fn observe_quality(&self, o: &Outcome<'_>) {
        let Some(station) = o.station else {
            return;
        };
        let city = self.city();
        let registered = city.as_ref().and_then(|c| c.station(station));
        let mut ledger = self.quality.lock().expect("quality lock");
        match (o.event, o.refusal) {
            (Some(event), _) => {
                ledger.accepted(event, o.received, registered.and_then(|s| s.cadence_s))
            }
            // Messages naming a station the registry does not know are nobody's quality.
            (None, Some(_)) if registered.is_none() => {}
            (None, Some(watchfloor_model::Rejection::Duplicate)) => {
                ledger.refused(station, o.ts, o.received, Fate::Duplicate)
            }
            (None, _) => ledger.refused(station, o.ts, o.received, Fate::Rejected),
        }
    }

    /// The quality ledger (counts of the last few days).
    pub(crate) fn quality(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.quality.lock().expect("quality lock")
    }

    /// Recomputes the indicators; publishes the rows that changed.
    pub fn refresh_kpis(&self) {
        let Some(city) = self.city() else {
            return;
        };
        let now = crate::hub::now_ms();
        let alerts = self.alerts();
        // A drill's alerts never change the real indicators.
        let facts: Vec<AlertFact> = alerts
            .iter()
            .filter(|a| !a.labels.contains_key(watchfloor_model::EXERCISE_LABEL))
            .map(|a| AlertFact {
                rule: &a.rule,
                pack: a.labels.get("pack").map(String::as_str),
                key: &a.key,
                ward: a.ward.as_deref(),
                district: a.district.as_deref(),
                sectors: &a.sectors,
                severity: a.severity,
                fired_at: a.fired_at,
                ack_at: a.acknowledged.as_ref().map(|k| k.at),
                resolved_at: a.resolved_at,
            })
            .collect();
        // The readings are copied (a few kilobytes a station), so the engine's task never
        // waits for the computation.
        let inputs = self.kpis.inputs.lock().expect("kpi inputs lock").clone();
        let changed: Vec<ZoneRow> = {
            let mut k = self.kpis.state.lock().expect("kpi lock");
            let views = k.views.clone();
            let rows = k.computer.compute(&city, &inputs, &facts, &views, now);
            let changed = rows
                .iter()
                .filter(|row| {
                    !k.last
                        .iter()
                        .any(|old| old.zone == row.zone && old.view == row.view && same(old, row))
                })
                .cloned()
                .collect();
            k.last = rows;
            changed
        };
        if !changed.is_empty() {
            self.publish(DeltaItem {
                channel: Channel::Kpis,
                ward: None,
                district: None,
                sectors: Vec::new(),
                severity: None,
                rule: None,
                kind: None,
                station: None,
                data: serde_json::to_value(&changed).expect("kpis serialise"),
                personal: false,
            });
        }
    }

    /// Reads the store's quality counts of the last days back (at start, before input).
    pub async fn restore_quality(&self) -> Result<usize, watchfloor_store::StoreError> {
        crate::quality::restore_days(self).await
    }

    /// Writes the day's quality counts and indicator values to the store now (the server
    /// does it once a minute).
    pub async fn store_days(&self) {
        crate::quality::persist_days(self).await;
    }

    /// The latest rows of every zone and view.
    pub fn kpis(&self) -> Vec<ZoneRow> {
        self.kpis.state.lock().expect("kpi lock").last.clone()
    }

    /// A row as JSON with each indicator's history.
    pub(crate) fn kpi_json(&self, row: &ZoneRow) -> serde_json::Value {
        let k = self.kpis.state.lock().expect("kpi lock");
        let mut v = serde_json::to_value(row).expect("kpis serialise");
        let history: serde_json::Map<String, serde_json::Value> = row
            .indicators
            .iter()
            .map(|i| {
                let points: Vec<KpiPoint> = k
                    .computer
                    .history(&i.id, &row.zone, &row.view)
                    .into_iter()
                    .map(|(ts, value)| KpiPoint { ts, value })
                    .collect();
                (i.id.clone(), json!(points))
            })
            .collect();
        v["history"] = serde_json::Value::Object(history);
        v
    }
}
