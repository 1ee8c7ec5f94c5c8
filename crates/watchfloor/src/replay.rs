//! `watchfloor replay`: recorded NDJSON telemetry → engine (event time) → NDJSON alert
//! transitions. Reads no wall clock, so the same input always gives the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use watchfloor_engine::{Emitted, Engine};
use watchfloor_model::{decode_envelopes, DecodeLimits, Rejection};

use crate::ReplayArgs;

/// Largest part of a rejected line copied into its dead-letter record.
const DEAD_LETTER_RAW_LIMIT: usize = 1024 * 1024;

fn open_output(target: &str) -> Result<Box<dyn Write>> {
    Ok(if target == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(
            File::create(target).with_context(|| format!("cannot create {target}"))?,
        ))
    })
}

/// Writes rejected input with its reason, and counts reasons.
struct DeadLetters {
    sink: Option<Box<dyn Write>>,
    counts: BTreeMap<&'static str, u64>,
}

impl DeadLetters {
    fn record(&mut self, line_no: u64, raw: &[u8], reason: &Rejection) -> Result<()> {
        *self.counts.entry(reason.code()).or_insert(0) += 1;
        if let Some(sink) = &mut self.sink {
            let kept = &raw[..raw.len().min(DEAD_LETTER_RAW_LIMIT)];
            let record = json!({
                "line": line_no,
                "reason": reason.code(),
                "error": reason.to_string(),
                "raw": String::from_utf8_lossy(kept),
                "raw_bytes": raw.len(),
                "raw_truncated": kept.len() < raw.len(),
            });
            serde_json::to_writer(&mut *sink, &record)?;
            sink.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// Runs a replay; returns success even when some input was rejected (see the dead letters).
pub fn run(args: &ReplayArgs) -> Result<ExitCode> {
    let (rules, city) = match watchfloor_city::load_rules(&args.rules) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let input: Box<dyn BufRead> = if args.input == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        Box::new(BufReader::new(
            File::open(&args.input).with_context(|| format!("cannot open {}", args.input))?,
        ))
    };
    let mut output = open_output(&args.output)?;
    let mut dead = DeadLetters {
        sink: match &args.dead_letter {
            Some(path) => Some(open_output(&path.display().to_string())?),
            None => None,
        },
        counts: BTreeMap::new(),
    };
    let mut engine = Engine::new(rules, args.engine_config());
    let limits = DecodeLimits::default();
    let mut emitted = Emitted::default();
    let mut lines = 0u64;
    let mut transitions = 0u64;
    let mut write_transitions = |emitted: &mut Emitted, output: &mut dyn Write| -> Result<()> {
        for t in emitted.transitions.drain(..) {
            serde_json::to_writer(&mut *output, &t)?;
            output.write_all(b"\n")?;
            transitions += 1;
        }
        Ok(())
    };

    let mut reader = input;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        lines += 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        // The replay clock is event time: the future-timestamp check is against the
        // latest event accepted so far, so a replay never reads the wall clock.
        let clock = (engine.clock() != i64::MIN).then(|| engine.clock());
        for decoded in decode_envelopes(trimmed, clock, &limits) {
            let result = decoded.and_then(|mut event| {
                if let Some(city) = &city {
                    city.place(&mut event)?;
                }
                engine.process(&event, &mut emitted)
            });
            if let Err(reason) = result {
                dead.record(lines, trimmed, &reason)?;
            }
        }
        write_transitions(&mut emitted, &mut *output)?;
    }
    engine.finish(&mut emitted);
    write_transitions(&mut emitted, &mut *output)?;
    output.flush()?;
    if let Some(sink) = &mut dead.sink {
        sink.flush()?;
    }
    let rejected: u64 = dead.counts.values().sum();
    let reasons: Vec<String> = dead
        .counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "replay: {lines} lines, {} events accepted, {rejected} rejected{}{}, {transitions} alert transitions",
        engine.stats().events,
        if reasons.is_empty() { "" } else { " (" },
        if reasons.is_empty() { String::new() } else { format!("{})", reasons.join(", ")) },
    );
    Ok(ExitCode::SUCCESS)
}
