//! What a delivery carries, built once when it is recorded (every attempt sends the same
//! bytes): the Standard Webhooks shape `{type, timestamp, data}` with the alert and the
//! transition, or an Alertmanager v4 webhook body for receivers built for Prometheus.
//!
//! Invariants: the alert is as the transition left it (`ChangeRow::as_of`), never as it
//! is when the outbox got to it; `type` is `alert.<event>` (`alert.fired`, `alert.escalated`,
//! `alert.resolved`, `alert.reopened`); exercise alerts keep their `exercise` and `mode`
//! labels in both shapes.

use serde_json::{json, Value};

use watchfloor_model::format_rfc3339;
use watchfloor_store::ChangeRow;

/// The body of a delivery of `change` in `format` (`standard` or `alertmanager`) for
/// subscription `subscription`.
pub fn body(format: &str, subscription: &str, change: &ChangeRow) -> String {
    let a = &change.as_of();
    let event = change.event.replace(' ', "_");
    match format {
        "alertmanager" => {
            let status = if a.state == "resolved" { "resolved" } else { "firing" };
            let mut labels = a.labels.clone();
            labels.insert("alertname".into(), a.rule.clone());
            labels.insert("severity".into(), a.severity.as_str().into());
            labels.insert("key".into(), a.key.clone());
            if let Some(w) = &a.ward {
                labels.insert("ward".into(), w.clone());
            }
            let alert = json!({
                "status": status,
                "labels": labels,
                "annotations": {"summary": a.message, "event": change.event, "detail": change.detail},
                "startsAt": format_rfc3339(a.fired_at),
                "endsAt": a.resolved_at.map(format_rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                "generatorURL": "",
                "fingerprint": a.alert_id,
            });
            json!({
                "version": "4",
                "groupKey": format!("{{}}:{{alert_id=\"{}\"}}", a.alert_id),
                "truncatedAlerts": 0,
                "status": status,
                "receiver": subscription,
                "groupLabels": {"alert_id": a.alert_id},
                "commonLabels": labels,
                "commonAnnotations": {"summary": a.message},
                "externalURL": "",
                "alerts": [alert],
            })
            .to_string()
        }
        _ => json!({
            "type": format!("alert.{event}"),
            "timestamp": format_rfc3339(change.at),
            "data": {
                "alert": a,
                "change": {"cursor": change.seq.to_string(), "event": change.event, "at": change.at, "detail": change.detail},
            },
        })
        .to_string(),
    }
}

/// A test event's body (`POST /api/webhooks/{id}/test`).
pub fn test_body(format: &str, subscription: &str, now: i64) -> String {
    match format {
        "alertmanager" => json!({
            "version": "4", "groupKey": "{}:{test}", "truncatedAlerts": 0, "status": "firing",
            "receiver": subscription, "groupLabels": {}, "commonLabels": {"alertname": "watchfloor_test"},
            "commonAnnotations": {"summary": "Watchfloor test event"}, "externalURL": "",
            "alerts": [{"status": "firing", "labels": {"alertname": "watchfloor_test"},
                "annotations": {"summary": "Watchfloor test event"}, "startsAt": format_rfc3339(now),
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "test"}],
        })
        .to_string(),
        _ => json!({"type": "webhook.test", "timestamp": format_rfc3339(now), "data": {"subscription": subscription}})
            .to_string(),
    }
}

/// Whether a body parses (for the API's views).
pub fn parsed(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}
