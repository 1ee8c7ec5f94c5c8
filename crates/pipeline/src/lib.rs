//! The pipeline runtime: the run loop that takes batches from the sources, makes them
//! durable in the write-ahead log, runs them through the engine, hands alerts to the
//! sinks (each in a task of its own), acknowledges input once it is safe, takes
//! checkpoints, and serves the command centre's commands on the engine's task.
//! Transports (sources, sinks, decoders, pipeline files) are `watchfloor-connectors`.

pub mod control;
mod delivery;
pub mod durable;
pub mod exercise;
mod run;
mod runner;
mod step;
#[cfg(test)]
mod test_support;

pub use control::{EngineCommand, Outcome, PipelineLink, PipelineObserver};
pub use exercise::{ExerciseAction, ExerciseAnswer};
pub use run::{run_pipeline, run_pipeline_linked, PipelineError};
pub use step::dead_letter_record;
pub use watchfloor_connectors::PipelineStats;
