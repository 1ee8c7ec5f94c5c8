//! Webhooks to integrators: subscriptions (admin API), a durable outbox in the incident
//! store fed from its timeline, Standard Webhooks signatures, retries, the delivery log.
//!
//! - `filter.rs`: which alerts a subscription gets (drills only when it opts in).
//! - `policy.rs`: which addresses deliveries may reach (not the server's loopback or the
//!   cloud metadata address unless allowed).
//! - `payload.rs`: the bodies (Standard Webhooks `{type, timestamp, data}`, Alertmanager v4).
//! - `http.rs`: one signed POST (plain or over `tls.rs`: `https://` with verified
//!   certificates).
//! - `service.rs`: the recorder and the per-subscription workers.
//! - `api.rs`: `/api/webhooks…`.

mod api;
mod filter;
pub(crate) mod http;
mod payload;
mod policy;
mod service;
mod tls;

pub(crate) use api::routes;
pub use filter::Filter;
pub use policy::{parse_url, Policy};
pub use service::{spawn, Link, WebhookConfig};
pub use tls::Tls;

use crate::hub::Hub;

impl Hub {
    /// Connects the webhook outbox (once).
    pub fn attach_webhooks(&self, link: std::sync::Arc<Link>) {
        let _ = self.webhooks.set(link);
    }
}
