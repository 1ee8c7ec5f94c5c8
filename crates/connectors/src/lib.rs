//! Watchfloor's connections to the outside: pipeline files, payload decoders, MQTT sources
//! and outputs, dead letters, and the embedded MQTT broker.

pub mod broker;
pub mod config;
pub mod control;
pub mod decode;
pub mod durable;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod mqtt;
pub mod output;
pub mod pipeline;

pub use broker::{start_embedded_broker, EmbeddedBrokerConfig};
pub use config::PipelineConfig;
pub use control::{EngineCommand, PipelineLink, PipelineObserver};
pub use mqtt::mqtt_client;
pub use pipeline::{run_pipeline, run_pipeline_linked, PipelineStats};
