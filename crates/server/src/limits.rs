//! Limits on what callers may send, and the record of what was refused.
//!
//! - Sizes: request bodies ([`MAX_BODY_BYTES`], a 413 beyond), notes, comments (length and
//!   count per alert), WebSocket messages (`ws.rs`).
//! - Time: an HTTP request's headers must arrive within [`HEADER_TIMEOUT`] (a slowloris
//!   client is closed), a WebSocket must authenticate within its own timeout.
//! - Rate: writes (POST, PUT, PATCH, DELETE under `/api/`) are limited per account by a
//!   token bucket ([`WRITE_BURST`] at once, [`WRITE_PER_SECOND`] after): a 429 with
//!   `Retry-After` beyond. A WebSocket's subscriptions (each answered with a snapshot) are
//!   limited per socket the same way ([`SUBSCRIBE_BURST`], [`SUBSCRIBE_PER_SECOND`]): an
//!   `error` message with `retry_after` beyond, counted and audited as a 429.
//! - Refusals: every 401, 403, 404 and 429 answer under `/api/` and `/cap/` is written to the
//!   audit log as a flat `refused` line (who — the account, or `anonymous` —, what —
//!   method and path —, why — the status and the error's text), at most
//!   [`REFUSALS_AUDITED_PER_MINUTE`] per caller and minute (the rest counted, so a flood of
//!   bad requests cannot flood the log); all are counted in `/metrics`.
//!
//! Invariants: a limit answers with the documented JSON error, never a dropped connection
//! without an answer (except the header timeout, where no request exists yet); the buckets
//! are keyed by account name (unknown tokens never create one), so their number is bounded
//! by the accounts file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::error;
use crate::AppState;

/// The largest request body, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest note on an acknowledgement or a resolution, characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// The longest comment, characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;
/// The most comments on one alert.
pub const MAX_COMMENTS_PER_ALERT: usize = 100;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes an account may make at once.
pub const WRITE_BURST: f64 = 120.0;
/// Writes an account may make per second, over time.
pub const WRITE_PER_SECOND: f64 = 20.0;
/// Refusals written to the audit log per caller and minute.
pub const REFUSALS_AUDITED_PER_MINUTE: u32 = 60;

/// Subscriptions a WebSocket may make at once (a dashboard makes three, then one per
/// drill-down it opens).
pub const SUBSCRIBE_BURST: f64 = 20.0;
/// Subscriptions a WebSocket may make a second, after the burst.
pub const SUBSCRIBE_PER_SECOND: f64 = 1.0;

/// A token bucket: `burst` at once, `per_second` after.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
    burst: f64,
    per_second: f64,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(burst: f64, per_second: f64) -> Bucket {
        Bucket {
            tokens: burst,
            last: Instant::now(),
            burst,
            per_second,
        }
    }

    /// Takes one token; `Err(seconds)` to wait when the bucket is empty.
    pub(crate) fn take(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_second)
            .min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The per-account write buckets and the refusal counters of one server.
#[derive(Default)]
pub struct Guard {
    buckets: Mutex<HashMap<String, Bucket>>,
    audited: Mutex<HashMap<String, (Instant, u32)>>,
    /// Refusals by status: 401, 403, 404, 413, 429, other 4xx.
    refused: [AtomicU64; 6],
    /// Refusals not written to the audit log (over the per-minute allowance).
    unaudited: AtomicU64,
}

const STATUSES: [u16; 5] = [401, 403, 404, 413, 429];

impl Guard {
    /// Takes one write from `account`'s bucket; `Err(seconds)` to wait when it is empty.
    fn take(&self, account: &str) -> Result<(), u64> {
        self.buckets
            .lock()
            .expect("buckets lock")
            .entry(account.to_string())
            .or_insert_with(|| Bucket::new(WRITE_BURST, WRITE_PER_SECOND))
            .take()
    }

    /// Whether a refusal of `who` may still be written this minute.
    fn may_audit(&self, who: &str) -> bool {
        let now = Instant::now();
        let mut audited = self.audited.lock().expect("audited lock");
        if audited.len() > 10_000 {
            audited.retain(|_, (since, _)| now.duration_since(*since) < Duration::from_secs(60));
        }
        let (since, n) = audited.entry(who.to_string()).or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(60) {
            *since = now;
            *n = 0;
        }
        *n += 1;
        *n <= REFUSALS_AUDITED_PER_MINUTE
    }

    /// Counts a refusal with `status`; whether it may still be written to the audit log.
    pub(crate) fn admit_refusal(&self, who: &str, status: u16) -> bool {
        let i = STATUSES.iter().position(|s| *s == status).unwrap_or(5);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
        let admitted = self.may_audit(who);
        if !admitted {
            self.unaudited.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// The refusal counters, Prometheus text.
    pub(crate) fn metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP watchfloor_http_refused_total Requests refused, by status (WebSocket close codes as other).\n# TYPE watchfloor_http_refused_total counter");
        let labels = ["401", "403", "404", "413", "429", "other"];
        for (label, n) in labels.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "watchfloor_http_refused_total{{status=\"{label}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP watchfloor_http_refusals_unaudited_total Refusals beyond a caller's audited allowance per minute.\n# TYPE watchfloor_http_refusals_unaudited_total counter\nwatchfloor_http_refusals_unaudited_total {}", self.unaudited.load(Ordering::Relaxed));
    }
}

/// The account a request's bearer token names, if any.
fn account_name(s: &AppState, request: &Request) -> Option<String> {
    crate::api::bearer_token(request.headers())
        .and_then(|t| s.accounts.authenticate(t))
        .map(|a| a.name.clone())
}

/// Middleware: the write rate limit per account, and the audit of refusals.
pub(crate) async fn guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let guarded = path.starts_with("/api/") || path.starts_with("/cap/");
    if !guarded {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let who = account_name(&s, &request);
    let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let response = match (&who, write) {
        (Some(name), true) => match s.hub.guard.take(name) {
            Ok(()) => next.run(request).await,
            Err(wait) => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many changes from {name}: at most {WRITE_PER_SECOND} a second; try again in {wait} s"),
                )
                .into_response();
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    wait.to_string().parse().expect("digits"),
                );
                r
            }
        },
        _ => next.run(request).await,
    };
    let status = response.status();
    if !matches!(status.as_u16(), 401 | 403 | 404 | 413 | 429) {
        return response;
    }
    let who = who.unwrap_or_else(|| "anonymous".into());
    if !s.hub.guard.admit_refusal(&who, status.as_u16()) {
        return response;
    }
    // The error's text (our answers are small JSON bodies; read at most 64 KiB of it).
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let why = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"].as_str().map(|w| crate::hub::clip(w, 256)))
        .unwrap_or_default();
    s.hub.audit(
        &who,
        "refused",
        &format!("{method} {path}"),
        json!({"status": status.as_u16(), "why": why}),
    );
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_says_when_to_come_back() {
        let g = Guard::default();
        for _ in 0..WRITE_BURST as usize {
            assert!(g.take("op").is_ok());
        }
        let wait = g.take("op").unwrap_err();
        assert!(wait >= 1, "{wait}");
        assert!(g.take("other").is_ok(), "per account");
    }

    #[test]
    fn refusals_are_audited_up_to_the_allowance() {
        let g = Guard::default();
        let allowed = (0..100).filter(|_| g.may_audit("x")).count();
        assert_eq!(allowed, REFUSALS_AUDITED_PER_MINUTE as usize);
    }
}
