//! Carrying out what runs ask: a notify step's message on an MQTT topic (the broker of the
//! pipeline's alert output) or POSTed to a webhook, a notice to people (their screens show
//! the run's timeline: nothing more to send), a raised severity through the engine (logged
//! in its write-ahead log like an operator's action).
//!
//! A drill's run (its subject has an exercise id) publishes on `exercise/<topic>` with
//! `mode` and `exercise` in the body; its webhook and Kafka messages are not sent.
//!
//! Every message carries the effect's deterministic id (`id` in the JSON body, and the
//! `webhook-id` header), the same on every attempt. Webhooks are plain HTTP/1.1 here
//! (`http://` only; signed HTTPS delivery is the integrator feeds' outbox).

use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use watchfloor_pipeline::EngineCommand;
use watchfloor_playbooks::{spec::Destination, Effect};

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the runs' messages.
pub struct Notifier {
    mqtt: Option<AsyncClient>,
}

impl Notifier {
    /// A notifier publishing on the MQTT broker at `mqtt` (host, port), when given. Must be
    /// called inside a tokio runtime (the client's event loop gets its own task).
    pub fn new(mqtt: Option<(String, u16)>) -> Notifier {
        let mqtt = mqtt.map(|(host, port)| {
            let mut options = MqttOptions::new(format!("watchfloor-playbooks-{}", std::process::id()), host, port);
            options.set_keep_alive(Duration::from_secs(30));
            let (client, mut event_loop) = watchfloor_connectors::mqtt_client(options, 1000);
            // Polled on its own task: publishing happens elsewhere (never from here).
            tokio::spawn(async move {
                loop {
                    if let Err(e) = event_loop.poll().await {
                        tracing::warn!(error = %e, "playbook notifications: MQTT connection lost; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
            client
        });
        Notifier { mqtt }
    }

    /// Carries out `effect` once; `Err` says why it failed (it will be tried again).
    pub(crate) async fn carry_out(
        &self,
        effect: &Effect,
        commands: &mpsc::Sender<EngineCommand>,
        now: i64,
    ) -> Result<(), String> {
        match effect {
            Effect::Notify {
                id,
                run,
                step,
                to,
                text,
                subject,
            } => {
                let exercise = subject.exercise.as_deref();
                let mut body = json!({"id": id, "run": run, "step": step, "text": text, "alert": subject, "sent_at": now});
                if let Some(exercise) = exercise {
                    body["mode"] = json!("exercise");
                    body["exercise"] = json!(exercise);
                }
                let body = body.to_string();
                match to {
                    Destination::People(_) => Ok(()),
                    // A drill's messages never reach a real endpoint: MQTT ones go to the
                    // exercise topic, others are kept on the run's record only.
                    Destination::Webhook(_) | Destination::Kafka(_) if exercise.is_some() => {
                        tracing::info!(effect = %id, exercise, "exercise notification kept off a real endpoint");
                        Ok(())
                    }
                    Destination::Mqtt(topic) => {
                        let topic = match exercise {
                            Some(_) => format!("exercise/{topic}"),
                            None => topic.clone(),
                        };
                        let client = self.mqtt.as_ref().ok_or("no MQTT output configured for notifications")?;
                        tokio::time::timeout(ATTEMPT_TIMEOUT, client.publish(topic, QoS::AtLeastOnce, false, body.into_bytes()))
                            .await
                            .map_err(|_| "the MQTT client did not take the message in time".to_string())?
                            .map_err(|e| e.to_string())
                    }
                    Destination::Webhook(url) => {
                        tokio::time::timeout(ATTEMPT_TIMEOUT, post(url, id, &body))
                            .await
                            .map_err(|_| format!("{url}: no answer within {} s", ATTEMPT_TIMEOUT.as_secs()))?
                    }
                    Destination::Kafka(topic) => Err(format!(
                        "Kafka topic {topic}: playbook notifications to Kafka are not carried out by this build"
                    )),
                }
            }
            Effect::RaiseSeverity {
                alert_id, severity, ..
            } => {
                let (reply, answer) = oneshot::channel();
                commands
                    .send(EngineCommand::Raise {
                        id: alert_id.clone(),
                        severity: *severity,
                        at: now,
                        reply,
                    })
                    .await
                    .map_err(|_| "the engine is not running".to_string())?;
                match tokio::time::timeout(ATTEMPT_TIMEOUT, answer).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    // The alert resolved in the meantime: nothing left to raise.
                    Ok(Ok(Err(watchfloor_engine::EngineError::UnknownAlert(_)))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.to_string()),
                    Ok(Err(_)) => Err("the engine did not answer".into()),
                    Err(_) => Err("the engine did not answer in time".into()),
                }
            }
        }
    }
}

/// POSTs `body` as JSON to an `http://` URL; a 2xx answer is success.
async fn post(url: &str, id: &str, body: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// webhooks are sent by playbooks"))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nwebhook-id: {id}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut head = vec![0u8; 64];
    let n = stream
        .read(&mut head)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{url}: HTTP {status}"))
    }
}
