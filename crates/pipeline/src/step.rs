//! One message through the engine: decode, place in the city, process, count, and turn
//! every refusal into a dead-letter record. The same step runs for live input and for
//! write-ahead log records processed again after a restart, so both give the same state.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;
use watchfloor_city::City;
use watchfloor_engine::{Emitted, Engine};
use watchfloor_model::{format_rfc3339, DecodeLimits, Rejection};

use crate::control::PipelineObserver;
use crate::durable::record::{InputRecord, Origin};
use watchfloor_connectors::decode::Decoder;
use watchfloor_connectors::PipelineStats;

/// The engine and what it needs to take a message.
pub(crate) struct Processor {
    pub engine: Engine,
    pub city: Option<Arc<City>>,
    pub decoders: Vec<(String, Decoder)>,
    pub limits: DecodeLimits,
    pub observer: Option<Arc<dyn PipelineObserver>>,
    pub stats: Arc<PipelineStats>,
    /// Alert transitions not yet handed to the outputs.
    pub emitted: Emitted,
    /// Dead-letter records not yet handed to the dead-letter output.
    pub dead_letters: Vec<serde_json::Value>,
    /// The running exercises' engines.
    pub exercises: crate::exercise::Exercises,
    /// The clock the engine was last ticked to by [`Processor::process`].
    last_now: i64,
}

impl Processor {
    pub(crate) fn new(
        engine: Engine,
        city: Option<Arc<City>>,
        decoders: Vec<(String, Decoder)>,
        limits: DecodeLimits,
        observer: Option<Arc<dyn PipelineObserver>>,
        stats: Arc<PipelineStats>,
    ) -> Processor {
        Processor {
            engine,
            city,
            decoders,
            limits,
            observer,
            stats,
            emitted: Emitted::default(),
            dead_letters: Vec::new(),
            exercises: crate::exercise::Exercises::default(),
            last_now: i64::MIN,
        }
    }

    /// Sets the engine's clock (fires what is due).
    pub(crate) fn tick(&mut self, now: i64) {
        self.engine.tick(now, &mut self.emitted);
        self.exercises.tick(now, &mut self.emitted);
    }

    /// The exercises' firing alerts (their ids marked).
    #[cfg(test)]
    pub(crate) fn exercise_alerts(&self) -> Vec<watchfloor_engine::ActiveAlertView> {
        self.exercises.active_alerts()
    }

    /// Applies an exercise command (logged already, or read back from the log).
    pub(crate) fn exercise(
        &mut self,
        record: &crate::exercise::ExerciseRecord,
    ) -> Result<crate::exercise::ExerciseAnswer, watchfloor_engine::EngineError> {
        self.exercises.apply(
            record,
            &self.engine,
            self.city.as_deref(),
            &self.limits,
            &mut self.emitted,
        )
    }

    /// Processes one message at clock `input.now` (the engine is ticked there first when
    /// the clock moved, as the live batch that first took it was).
    pub(crate) fn process(&mut self, input: &InputRecord<'_>) {
        if input.now != self.last_now {
            self.last_now = input.now;
            self.engine.tick(input.now, &mut self.emitted);
            self.exercises.tick(input.now, &mut self.emitted);
        }
        let Some((name, decoder)) = self.decoders.get(input.source as usize) else {
            tracing::error!(
                source = input.source,
                "input of a source no longer in the pipeline file; skipped"
            );
            return;
        };
        for decoded in decoder.decode(&input.topic, &input.payload, Some(input.now), &self.limits) {
            let (station, ts) = match &decoded {
                Ok(event) => (Some(event.source.clone()), Some(event.ts)),
                Err(_) => (None, None),
            };
            let placed = decoded.and_then(|mut event| {
                if let Some(city) = &self.city {
                    city.place(&mut event)?;
                }
                Ok(event)
            });
            let result = placed.and_then(|event| {
                self.engine
                    .process_on(channel_of(input), &event, &mut self.emitted)?;
                Ok(event)
            });
            let outcome = |event, refusal| crate::control::Outcome {
                station: station.as_deref(),
                ts,
                event,
                refusal,
                received: input.now,
            };
            match result {
                Ok(event) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if let Some(observer) = &self.observer {
                        observer.on_event(&event);
                        observer.on_outcome(&outcome(Some(&event), None));
                    }
                }
                Err(reason) => {
                    if let Ok(mut counts) = self.stats.rejected.lock() {
                        *counts.entry(reason.code()).or_insert(0) += 1;
                    }
                    if let Some(observer) = &self.observer {
                        observer.on_outcome(&outcome(None, Some(&reason)));
                    }
                    self.dead_letters
                        .push(dead_letter_record(input, name, &reason));
                }
            }
        }
    }
}

/// The engine's input channel of a message: one per MQTT source, one per Kafka partition
/// (source index in the high bits), so each holds the watermark back on its own.
pub(crate) fn channel_of(input: &InputRecord<'_>) -> u32 {
    let partition = match input.origin {
        Origin::Kafka { partition, .. } => partition as u32 & 0xffff,
        _ => 0,
    };
    channel(input.source, partition)
}

/// Channel number of a source's partition.
pub(crate) fn channel(source: u16, partition: u32) -> u32 {
    (u32::from(source) << 16) | partition
}

/// A dead-letter record: the original bytes, the reason, and where the message came from.
pub fn dead_letter_record(
    input: &InputRecord<'_>,
    source_name: &str,
    reason: &Rejection,
) -> serde_json::Value {
    let (transport, partition, offset): (&str, Option<i32>, Option<i64>) = match input.origin {
        Origin::Kafka { partition, offset } => ("kafka", Some(partition), Some(offset)),
        _ => ("mqtt", None, None),
    };
    let (raw, raw_hex) = match std::str::from_utf8(&input.payload) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (
            None,
            Some(
                input
                    .payload
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ),
        ),
    };
    json!({
        "reason": reason.code(),
        "error": reason.to_string(),
        "source": source_name,
        "transport": transport,
        "topic": input.topic,
        "partition": partition,
        "offset": offset,
        "received_at": format_rfc3339(input.now),
        "raw": raw,
        "raw_hex": raw_hex,
        "raw_bytes": input.payload.len(),
    })
}
