//! What the pipeline's unit tests share: a rule set from YAML text, a processing-time
//! engine configuration, and a processor around an engine (JSON over one MQTT source).

use std::sync::Arc;

use watchfloor_connectors::decode::Decoder;
use watchfloor_connectors::PipelineStats;
use watchfloor_engine::{Engine, EngineConfig, LookupTables, RuleSet, TimeMode};
use watchfloor_model::DecodeLimits;

use crate::step::Processor;

/// The rules of one YAML file.
pub(crate) fn rules(text: &str) -> RuleSet {
    RuleSet::from_sources(&[("r.yaml".into(), text.into())], LookupTables::default()).unwrap()
}

/// Processing time (the records' clocks decide).
pub(crate) fn config() -> EngineConfig {
    EngineConfig {
        time_mode: TimeMode::Processing,
        ..EngineConfig::default()
    }
}

/// A processor around `engine` with one JSON source.
pub(crate) fn processor(engine: Engine) -> Processor {
    Processor::new(
        engine,
        None,
        vec![(
            "mqtt".into(),
            Decoder::Json {
                source_topic_level: None,
            },
        )],
        DecodeLimits::default(),
        None,
        Arc::new(PipelineStats::default()),
    )
}
