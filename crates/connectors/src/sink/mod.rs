//! Destinations for alert transitions and dead letters, behind one trait: NDJSON files
//! ([`file`]), MQTT topics ([`mqtt`]) and Kafka topics (`kafka`, cargo feature). Each is
//! built from its config ([`OutputConfig::build`]).
//!
//! A sink never acknowledges anything itself: it says what it was handed
//! ([`AlertSink::handed_over`]) and whether that is safe at the destination
//! ([`AlertSink::confirmed`]); the pipeline acknowledges its input only after that. Every
//! error says whether trying again can help ([`OutputError::retryable`]).

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod mqtt;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use thiserror::Error;
use watchfloor_model::AlertTransition;

use crate::config::OutputConfig;

/// An output failure.
#[derive(Debug, Error)]
pub enum OutputError {
    /// File I/O failed.
    #[error("file output: {0}")]
    Io(#[from] std::io::Error),
    /// The MQTT client refused the request (its queue is closed).
    #[error("mqtt output: {0}")]
    Mqtt(#[from] rumqttc::ClientError),
    /// Kafka refused or did not confirm a record.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The broker did not acknowledge in time.
    #[error("mqtt output: broker did not acknowledge {0} message(s) within {1:?}")]
    Unacknowledged(u64, Duration),
    /// An operation did not finish in time (a client whose queue stays full while its
    /// broker is away).
    #[error("output did not answer within {0:?}")]
    TimedOut(Duration),
    /// This build cannot open the output at all.
    #[error("{0}")]
    Unsupported(String),
}

impl OutputError {
    /// Can trying again help? A network or broker failure can pass; a file the process
    /// may not write, a missing directory that cannot be made, or an output this build
    /// lacks cannot (the pipeline gives up on such an output at once).
    pub fn retryable(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            OutputError::Io(e) => !matches!(
                e.kind(),
                ErrorKind::PermissionDenied
                    | ErrorKind::NotFound
                    | ErrorKind::IsADirectory
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::InvalidInput
            ),
            OutputError::Unsupported(_) => false,
            _ => true,
        }
    }
}

/// What a sink's async operations return.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), OutputError>> + Send + 'a>>;

/// A place alert transitions and dead letters are written to.
pub trait AlertSink: Send {
    /// Writes one alert transition.
    fn send_alert<'a>(&'a mut self, transition: &'a AlertTransition) -> SinkFuture<'a>;
    /// Writes one raw record (a dead letter).
    fn send_record<'a>(&'a mut self, record: &'a serde_json::Value) -> SinkFuture<'a>;
    /// Writes a ready-made payload (a CAP message): a file takes it as one line (it must
    /// hold no newline), Kafka keys it by `key`, MQTT fills `{name}` in its topic from
    /// `vars` (`severity`, `rule`).
    fn send_payload<'a>(
        &'a mut self,
        key: &'a str,
        vars: &'a [(&'a str, &'a str)],
        payload: Vec<u8>,
    ) -> SinkFuture<'a>;
    /// A mark of what was handed over so far; see [`AlertSink::confirmed`]. Sinks that
    /// confirm in [`AlertSink::flush_local`] need not count.
    fn handed_over(&self) -> u64 {
        0
    }
    /// Whether everything up to `mark` is safe at the destination.
    fn confirmed(&self, mark: u64) -> bool {
        let _ = mark;
        true
    }
    /// Makes what was sent safe where that is local and quick (a file flush, Kafka
    /// delivery reports); a sink whose confirmations arrive by themselves (MQTT
    /// acknowledgements) does nothing here.
    fn flush_local(&mut self) -> SinkFuture<'_> {
        self.flush()
    }
    /// Returns once everything sent so far is safe at the destination, or fails.
    fn flush(&mut self) -> SinkFuture<'_>;
    /// Did the destination drop what it was handed and had not confirmed (an MQTT broker
    /// back without our session)? Then the caller hands every unconfirmed item again;
    /// marks count afresh from here. Asking clears it.
    fn take_lost(&mut self) -> bool {
        false
    }
}

impl OutputConfig {
    /// Opens the output this config describes. `max_payload` sizes MQTT packets.
    pub async fn build(&self, max_payload: usize) -> Result<Box<dyn AlertSink>, OutputError> {
        match self {
            OutputConfig::File { path, .. } => Ok(Box::new(file::FileSink::open(path).await?)),
            OutputConfig::Mqtt {
                host,
                port,
                client_id,
                topic,
                username,
                password_env,
                tls,
                ca_file,
                ..
            } => Ok(Box::new(mqtt::MqttSink::open(
                host,
                *port,
                client_id,
                topic,
                max_payload,
                &crate::mqtt::MqttLogin::from_config(
                    username.as_deref(),
                    password_env.as_deref(),
                    *tls,
                    ca_file.as_deref(),
                )
                .map_err(OutputError::Unsupported)?,
            ))),
            #[cfg(feature = "kafka")]
            OutputConfig::Kafka {
                brokers,
                topic,
                options,
                ..
            } => Ok(Box::new(kafka::KafkaOutput::open(brokers, topic, options)?)),
            #[cfg(not(feature = "kafka"))]
            OutputConfig::Kafka { .. } => Err(OutputError::Unsupported(
                "this build has no Kafka support (feature `kafka`)".into(),
            )),
            OutputConfig::Cap { to, .. } => Err(OutputError::Unsupported(format!(
                "the CAP output to {} is the centre's (built from the incident store)",
                to.label()
            ))),
        }
    }

    /// A short name for logs, `/healthz` and metrics: `file:<path>`, `mqtt:<topic>`,
    /// `kafka:<topic>`.
    pub fn label(&self) -> String {
        match self {
            OutputConfig::File { path, .. } => format!("file:{}", path.display()),
            OutputConfig::Mqtt { topic, .. } => format!("mqtt:{topic}"),
            OutputConfig::Kafka { topic, .. } => format!("kafka:{topic}"),
            OutputConfig::Cap { name, .. } => format!("cap:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_error_is_fatal_and_a_broken_connection_is_not() {
        let denied = OutputError::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!denied.retryable());
        let full = OutputError::Io(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(full.retryable(), "a full disk can be freed");
        assert!(OutputError::Unacknowledged(3, Duration::from_secs(30)).retryable());
        assert!(!OutputError::Unsupported("no kafka".into()).retryable());
    }
}
