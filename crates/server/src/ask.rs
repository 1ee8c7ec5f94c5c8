//! Asking a service task (playbooks, drills) and waiting for its answer: the request goes
//! through the task's bounded queue with a one-shot reply; a task that is gone or does not
//! answer in time is a 503 to retry, never a hang.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// A refusal: HTTP status and why.
pub(crate) type Refusal = (u16, String);

/// Sends `make(reply)` to `requests` and waits up to `within` for the answer of `service`.
pub(crate) async fn ask<R>(
    requests: &mpsc::Sender<R>,
    service: &str,
    within: Duration,
    make: impl FnOnce(oneshot::Sender<Result<Value, Refusal>>) -> R,
) -> Result<Value, Refusal> {
    ask_for(requests, service, within, make).await?
}

/// [`ask`] for any answer: the task's answer, or a 503 when it is gone or late.
pub(crate) async fn ask_for<R, T>(
    requests: &mpsc::Sender<R>,
    service: &str,
    within: Duration,
    make: impl FnOnce(oneshot::Sender<T>) -> R,
) -> Result<T, Refusal> {
    let (reply, answer) = oneshot::channel();
    requests
        .send(make(reply))
        .await
        .map_err(|_| (503, format!("the {service} is not running")))?;
    match tokio::time::timeout(within, answer).await {
        Ok(Ok(answer)) => Ok(answer),
        _ => Err((503, format!("the {service} did not answer; try again"))),
    }
}
