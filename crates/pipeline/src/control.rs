//! How a server watches and steers a running pipeline: an observer sees every accepted
//! event and every alert transition, and commands (acknowledge, resolve, reload) reach the
//! engine through a channel served by the pipeline's own task, so the engine stays
//! single-threaded and never waits on a client.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use watchfloor_city::City;
use watchfloor_engine::{Acknowledgement, ActiveAlertView, EngineError, ReloadSummary, RuleSet};
use watchfloor_model::{AlertTransition, Event};

/// Sees what the pipeline does. Called on the engine task: implementations must return
/// quickly and never block (a server takes a short lock and broadcasts).
pub trait PipelineObserver: Send + Sync {
    /// An event the engine accepted (after the city placed it).
    fn on_event(&self, event: &Event);
    /// Alert transitions, in the order the engine emitted them.
    fn on_transitions(&self, transitions: &[AlertTransition]);
    /// For an observer that makes transitions durable (the incident store): a number that
    /// grows with every transition handed to it, and the number up to which they are
    /// durable. A checkpoint is written only once everything handed before it is durable,
    /// so a crash makes the engine emit again whatever the observer had not kept. The
    /// input is acknowledged without waiting for this: the engine never waits on it.
    fn durability(&self) -> (u64, u64) {
        (0, 0)
    }
    /// What became of one decoded message, for data-quality counts: its station (when
    /// the message said which), its event (accepted ones), the refusal (refused ones) and
    /// when it was received (epoch ms). Called after `on_event` for accepted events.
    fn on_outcome(&self, outcome: &Outcome<'_>) {
        let _ = outcome;
    }
}

/// What became of one decoded message (see [`PipelineObserver::on_outcome`]).
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The station the message named, if it could be read.
    pub station: Option<&'a str>,
    /// When it says it was measured.
    pub ts: Option<i64>,
    /// The accepted event.
    pub event: Option<&'a watchfloor_model::Event>,
    /// Why it was refused.
    pub refusal: Option<&'a watchfloor_model::Rejection>,
    /// When it was received, epoch ms.
    pub received: i64,
}

/// A request to the engine, answered on `reply`.
pub enum EngineCommand {
    /// Record an acknowledgement on a firing alert.
    Acknowledge {
        /// Alert id.
        id: String,
        /// Who, when, why.
        ack: Acknowledgement,
        /// The answer.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Resolve a firing alert by hand.
    Resolve {
        /// Alert id.
        id: String,
        /// When, epoch ms.
        at: i64,
        /// The answer.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// Raise a firing alert's severity (a raise to a severity it already has, or below,
    /// changes nothing).
    Raise {
        /// Alert id.
        id: String,
        /// To this.
        severity: watchfloor_model::Severity,
        /// When, epoch ms.
        at: i64,
        /// The answer.
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    /// A drill's command: start an exercise, inject its readings, end it.
    Exercise {
        /// The exercise id.
        id: String,
        /// What.
        action: crate::exercise::ExerciseAction,
        /// The answer.
        reply: oneshot::Sender<Result<crate::exercise::ExerciseAnswer, EngineError>>,
    },
    /// Swap in an already validated rule set (and the city it was compiled with).
    Reload {
        /// The new rules.
        rules: RuleSet,
        /// The city beside them.
        city: Option<Arc<City>>,
        /// What was kept, changed, added and removed.
        reply: oneshot::Sender<ReloadSummary>,
    },
    /// Runs `with` on the firing alerts on the engine's own task, before it processes
    /// anything else (a restarted centre reconciles its screen with the engine there, so
    /// no transition slips in between).
    WithActiveAlerts {
        /// What to do with them.
        with: Box<dyn FnOnce(Vec<ActiveAlertView>) + Send>,
    },
    /// The firing alerts.
    ActiveAlerts {
        /// The answer.
        reply: oneshot::Sender<Vec<ActiveAlertView>>,
    },
}

/// The server's link to a pipeline.
pub struct PipelineLink {
    /// Sees events and transitions.
    pub observer: Arc<dyn PipelineObserver>,
    /// Commands for the engine.
    pub commands: mpsc::Receiver<EngineCommand>,
}
