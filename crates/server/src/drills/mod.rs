//! Drills in the live centre: exercises run on the real pipeline (each with an engine of
//! its own, see `watchfloor-pipeline`'s exercise module), their alerts and playbook runs
//! marked with the exercise id, and an after-action report when they end.
//!
//! - `progress.rs`: one drill's pinned script, clock, progress and store row (pure).
//! - `service.rs`: the task that starts, injects, pauses, resumes, ends and aborts.
//! - `observe.rs`: what the drill caused, on its clock, scored into the report.
//! - `api.rs`: `/api/drills…`.
//!
//! Invariants: only admins and drill leaders start or steer drills (every attempt audited);
//! a drill answered as started is stored and known to the engine; a drill's report is
//! stored with it when it ends.

mod api;
mod observe;
mod progress;
mod service;

pub(crate) use api::routes;
pub use service::{spawn, DrillConfig, Link};

use crate::hub::Hub;

impl Hub {
    /// Connects the drill task (once).
    pub fn attach_drills(&self, link: std::sync::Arc<Link>) {
        let _ = self.drills.set(link);
    }
}
