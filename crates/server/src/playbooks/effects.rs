//! Carrying out what runs ask: a notify step's message on an MQTT topic (the broker of the
//! pipeline's alert output), a Kafka topic (the cluster of its Kafka alert output) or
//! POSTed to a webhook (`http://` or `https://`, through the webhook outbox's client and
//! address policy), a notice to people (their screens show the run's timeline: nothing more
//! to send), a raised severity through the engine (logged in its write-ahead log like an
//! operator's action).
//!
//! A drill's run (its subject has an exercise id) publishes on `exercise/<topic>` (MQTT) or
//! `<topic>.exercise` (Kafka), the exercise twins of the outputs, with `mode` and
//! `exercise` in the body; its webhook messages are not sent.
//!
//! Every message carries the effect's deterministic id (`id` in the JSON body, the Kafka
//! record's key, and the `webhook-id` header), the same on every attempt.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use watchfloor_connectors::RecordPublisher;
use watchfloor_pipeline::EngineCommand;
use watchfloor_playbooks::{spec::Destination, Effect};

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the runs' messages can go, besides people.
pub struct Channels {
    /// The MQTT broker (host, port).
    pub mqtt: Option<(String, u16)>,
    /// The Kafka cluster.
    pub kafka: Option<Arc<dyn RecordPublisher>>,
    /// Which webhook addresses may be reached.
    pub policy: crate::feeds::webhooks::Policy,
    /// Whom `https://` receivers' certificates must be signed by.
    pub tls: crate::feeds::webhooks::Tls,
}

/// Sends the runs' messages.
pub struct Notifier {
    mqtt: Option<AsyncClient>,
    kafka: Option<Arc<dyn RecordPublisher>>,
    policy: crate::feeds::webhooks::Policy,
    webhooks: tokio::sync::Mutex<crate::feeds::webhooks::http::Client>,
}

impl Notifier {
    /// A notifier publishing through `channels`. Must be called inside a tokio runtime (the
    /// MQTT client's event loop gets its own task).
    pub fn new(channels: Channels) -> Notifier {
        let Channels {
            mqtt,
            kafka,
            policy,
            tls,
        } = channels;
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
        Notifier {
            mqtt,
            kafka,
            policy,
            webhooks: tokio::sync::Mutex::new(crate::feeds::webhooks::http::Client::new(tls)),
        }
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
                    // A drill's messages never reach a real endpoint: MQTT and Kafka ones go
                    // to the exercise topics, webhooks are kept on the run's record only.
                    Destination::Webhook(_) if exercise.is_some() => {
                        tracing::info!(effect = %id, exercise, "exercise notification kept off a real endpoint");
                        Ok(())
                    }
                    Destination::Mqtt(topic) => {
                        let topic = match exercise {
                            Some(_) => format!("exercise/{topic}"),
                            None => topic.clone(),
                        };
                        let client = self
                            .mqtt
                            .as_ref()
                            .ok_or("no MQTT output configured for notifications")?;
                        tokio::time::timeout(
                            ATTEMPT_TIMEOUT,
                            client.publish(topic, QoS::AtLeastOnce, false, body.into_bytes()),
                        )
                        .await
                        .map_err(|_| {
                            "the MQTT client did not take the message in time".to_string()
                        })?
                        .map_err(|e| e.to_string())
                    }
                    Destination::Webhook(url) => self.post(url, id, &body).await,
                    Destination::Kafka(topic) => {
                        let topic = match exercise {
                            Some(_) => format!("{topic}.exercise"),
                            None => topic.clone(),
                        };
                        let kafka = self
                            .kafka
                            .as_ref()
                            .ok_or("no Kafka output configured for notifications")?;
                        tokio::time::timeout(
                            ATTEMPT_TIMEOUT,
                            kafka.publish(&topic, id, body.as_bytes()),
                        )
                        .await
                        .map_err(|_| {
                            format!(
                                "Kafka topic {topic}: not confirmed within {} s",
                                ATTEMPT_TIMEOUT.as_secs()
                            )
                        })?
                    }
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

impl Notifier {
    /// POSTs `body` to `url` (checked against the address policy; unsigned, with the
    /// effect's id as `webhook-id`); a 2xx answer is success.
    async fn post(&self, url: &str, id: &str, body: &str) -> Result<(), String> {
        let target = crate::feeds::webhooks::parse_url(url)?;
        // The name's lookup within the attempt's limit too (effects run one at a time).
        let address = tokio::time::timeout(ATTEMPT_TIMEOUT, self.policy.resolve(&target))
            .await
            .map_err(|_| format!("{url}: no address within {} s", ATTEMPT_TIMEOUT.as_secs()))??;
        let answer = self
            .webhooks
            .lock()
            .await
            .post(&target, address, id, &[], body, ATTEMPT_TIMEOUT)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(format!("{url}: HTTP {}", answer.status))
        }
    }
}
