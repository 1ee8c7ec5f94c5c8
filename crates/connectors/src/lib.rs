//! Watchfloor's connections to the outside: pipeline files, payload decoders, sources
//! (MQTT, Kafka) and sinks (files, MQTT, Kafka) behind the [`source::Source`] and
//! [`sink::AlertSink`] traits, each built from its config, and the embedded MQTT broker.
//! The run loop that drives them is `watchfloor-pipeline`.

pub mod broker;
pub mod config;
pub mod decode;
pub mod mqtt;
pub mod publish;
pub mod sink;
pub mod source;
pub mod stats;
pub mod tls;

/// Kafka's source and sink in one place, for the simulator and tools.
#[cfg(feature = "kafka")]
pub mod kafka {
    pub use crate::sink::kafka::KafkaOutput;
    pub use crate::source::kafka::*;
}

pub use broker::{start_embedded_broker, EmbeddedBrokerConfig};
pub use config::PipelineConfig;
pub use mqtt::{mqtt_client, MqttLogin};
pub use publish::RecordPublisher;
pub use sink::{AlertSink, OutputError};
pub use source::{Ack, ChannelEvent, Inbound, Source, SourceContext, SourceError};
pub use stats::PipelineStats;
