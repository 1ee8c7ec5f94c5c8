//! Integrator feeds: what integrators read without being on a screen.
//!
//! - `changes.rs`: `GET /api/changes`, every alert transition and operator action in commit
//!   order after a cursor, from the incident store (catch-up after an outage).
//! - `webhooks/`: subscriptions and their durable outbox, fed from the same timeline.
//! - `cap/`: each transition as a CAP 1.2 message, and the Atom feed of recent ones.
//!
//! Invariants: feeds read the incident store, never the hub's memory (what was committed is
//! what is served, in commit order); a feed is scoped like alerts (area × sectors); exercise
//! alerts reach a feed only when the caller opts in.

pub mod cap;
mod changes;
pub mod webhooks;

use axum::routing::get;
use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/changes", get(changes::changes))
        .merge(webhooks::routes())
        .merge(cap::routes())
}
