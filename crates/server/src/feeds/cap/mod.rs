//! CAP 1.2 for integrators: each alert transition as a Common Alerting Protocol message
//! (`GET /cap/alerts/{identifier}.xml`) and an Atom feed of the recent ones
//! (`GET /cap/feed.atom?zone=`), built from the incident store's timeline.
//!
//! - `mapping.rs`: a pack's alerts in CAP terms (category, event, urgency, certainty).
//! - `message.rs`: one transition → one `oasiscap` message (Alert / Update / all-clear).
//! - `atom.rs`: the Atom 1.0 feed of messages.
//! - `api.rs`: the two routes (public when `[server.cap] public`, real alerts only).
//! - `output.rs`: the CAP output (`[[output]] type = "cap"`) to a file, MQTT or Kafka.

mod api;
mod atom;
mod mapping;
mod message;
mod output;

use std::sync::OnceLock;

pub(crate) use api::routes;
pub use atom::atom;
pub use message::{identifier, message, to_xml, Sender};
pub(crate) use output::metrics;
pub use output::{spawn as spawn_output, CapOutputConfig};

/// The CAP feed's settings.
#[derive(Debug, Clone)]
pub struct CapConfig {
    /// Who sends.
    pub sender: Sender,
    /// Readable without a token (real alerts only).
    pub public: bool,
}

/// The settings the routes read, set once at start (defaults otherwise).
pub(crate) static CONFIG: OnceLock<CapConfig> = OnceLock::new();

/// Sets the CAP feed's settings (once, at start).
pub fn configure(config: CapConfig) {
    let _ = CONFIG.set(config);
}
