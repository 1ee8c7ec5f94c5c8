//! The city dataset and rules of the crash-equivalence tests, the reference (`watchfloor
//! replay` of the same input), and the comparison of a live run's alert transitions with
//! it: the same distinct transitions, and every repeat byte-identical.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// 2026-11-17T00:00:00Z: event time of the first reading.
const START: i64 = 1_794_873_600_000;
pub const STEP_MS: i64 = 15_000;
const STEPS: i64 = 480; // two hours
const AIR: usize = 200;
const GAUGES: usize = 20;
const WARDS: usize = 12;

pub const RULES: &str = r#"
rules:
  - id: air_minute_mean
    match: { kind: air, metric: pm25 }
    window: { type: tumbling, size: 1m }
    aggregates: { mean: avg(pm25), n: count(pm25) }
    condition: n >= 3 && mean > 62.0
    clear: mean < 55.0
    value: mean
    severity: minor
    message: "PM2.5 minute mean {mean:.3} at {key}"
  - id: air_sliding_peak
    match: { kind: air, metric: pm25 }
    window: { type: sliding, size: 5m, slide: 1m }
    aggregates:
      peak: max(pm25)
      p90: "percentile(pm25, 90)"
      spread: stddev(pm25)
    condition: peak > 95.0 && p90 > 80.0
    value: p90
    severity: major
    message: "PM2.5 5-minute p90 {p90:.3} (peak {peak:.1}, spread {spread:.2}) at {key}"
  - id: air_session_mean
    match: { kind: air, metric: pm25, source: "A??0" }
    window: { type: session, gap: 2m }
    aggregates: { mean: avg(pm25), n: count(pm25) }
    condition: n >= 8 && mean > 45.0
    value: mean
    severity: minor
    message: "session of {n} readings, mean {mean:.3} at {key}"
  - id: gauge_level_high
    match: { kind: water_level, metric: water_level }
    aggregates: { level: last(water_level) }
    condition: level > 2.0
    clear: level < 1.9
    for: 3
    value: level
    severity: major
    escalate:
      - { when: "level > 2.5", severity: critical }
    message: "level {level:.3} m at {key}"
  - id: ward_air_mean
    match: { kind: air, metric: pm25 }
    key: zone
    window: { type: tumbling, size: 5m }
    aggregates: { mean: avg(pm25), n: count(pm25) }
    condition: mean > 48.0
    clear: mean < 44.0
    value: mean
    severity: minor
    message: "ward {key} PM2.5 5-minute mean {mean:.3}"
  - id: gauge_silent
    match: { kind: water_level }
    absence: 20s
    severity: minor
    message: "{key}: no data for {value:.0} s"
"#;

/// The rule on the wall clock live (absence): compared by key and timing, not with replay.
pub const CLOCK_RULE: &str = "gauge_silent";
/// Gauges that stop reporting a quarter of the way through (and get no closing reading).
pub const STOPPED: std::ops::Range<usize> = 15..20;
/// The step after which they are silent.
const STOP_STEP: i64 = 120;

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The dataset: (topic, payload) in publishing order (event time), and the last event time
/// of real data. Closing readings an hour later let the live watermark pass every window
/// (transitions after the last real reading are not compared).
pub fn dataset() -> (Vec<(String, String)>, i64) {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut lines = Vec::new();
    for step in 0..STEPS {
        let ts = START + step * STEP_MS;
        let minute = step / 4;
        for a in 0..AIR {
            // Every tenth station pauses 4 minutes in every 20 (sessions close).
            if a % 10 == 0 && (minute % 20) >= 16 {
                continue;
            }
            // Episodes: a station's air is bad for a while.
            let episode = ((minute + a as i64 * 7) % 37) < 6;
            let base = if episode { 70.0 } else { 32.0 };
            let pm25 = base + rng.unit() * 40.0 - 10.0;
            let source = format!("A{a:03}");
            let zone = format!("w{:02}", a % WARDS);
            lines.push((
                format!("ioc/air/{source}/telemetry"),
                format!(
                    r#"{{"source":"{source}","kind":"air","ts":{ts},"zone":"{zone}","values":{{"pm25":{pm25:.2}}}}}"#
                ),
            ));
        }
        for g in 0..GAUGES {
            if STOPPED.contains(&g) && step >= STOP_STEP {
                continue;
            }
            let phase = (step as f64 / 40.0) + g as f64;
            let level = 1.9 + 0.7 * phase.sin() + rng.unit() * 0.1;
            let source = format!("W{g:02}");
            lines.push((
                format!("ioc/water_level/{source}/telemetry"),
                format!(
                    r#"{{"source":"{source}","kind":"water_level","ts":{ts},"values":{{"water_level":{level:.3}}}}}"#
                ),
            ));
        }
    }
    let last = START + (STEPS - 1) * STEP_MS;
    let close = last + 3_600_000;
    for a in 0..AIR {
        lines.push((
            format!("ioc/air/A{a:03}/telemetry"),
            format!(
                r#"{{"source":"A{a:03}","kind":"air","ts":{close},"zone":"w{:02}","values":{{"pm25":5.0}}}}"#,
                a % WARDS
            ),
        ));
    }
    for g in (0..GAUGES).filter(|g| !STOPPED.contains(g)) {
        lines.push((
            format!("ioc/water_level/W{g:02}/telemetry"),
            format!(
                r#"{{"source":"W{g:02}","kind":"water_level","ts":{close},"values":{{"water_level":0.5}}}}"#
            ),
        ));
    }
    (lines, last)
}

/// The comparable identity of a transition.
pub type Key = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn identity(t: &serde_json::Value) -> Key {
    let s = |f: &str| t[f].to_string();
    (
        s("alert_id"),
        s("rule"),
        s("key"),
        s("state"),
        s("severity"),
        s("at"),
        s("window_start"),
        s("window_end"),
        s("value"),
    )
}

/// Transitions at or before `last` (RFC 3339 in one format compares as text), by identity,
/// with every distinct text seen for each.
pub fn transitions(text: &str, last: &str) -> BTreeMap<Key, BTreeSet<String>> {
    let mut out: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        // A SIGKILL can cut the last line short; its input was not acknowledged.
        let Ok(t) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if t["rule"] != CLOCK_RULE && t["at"].as_str().is_some_and(|at| at <= last) {
            out.entry(identity(&t))
                .or_default()
                .insert(line.to_string());
        }
    }
    out
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The reference transitions and the time of the last real reading (RFC 3339).
pub type Reference = (BTreeMap<Key, BTreeSet<String>>, String);

/// The reference for `lines`: writes them to `dir/input.ndjson`, replays them through
/// `dir/rules`, and returns the transitions up to the last real reading, with that time.
pub fn reference(binary: &Path, dir: &Path, lines: &[(String, String)], last: i64) -> Reference {
    let input: PathBuf = dir.join("input.ndjson");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for (_, payload) in lines {
        writeln!(file, "{payload}").unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let replay = Command::new(binary)
        .args(["replay", "--rules"])
        .arg(dir.join("rules"))
        .arg("--input")
        .arg(&input)
        .args(["--idle-timeout", "10m"])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let last_text = rfc3339(last);
    let expected = transitions(&String::from_utf8(replay.stdout).unwrap(), &last_text);
    let rules_seen: BTreeSet<String> = expected.keys().map(|k| k.1.clone()).collect();
    assert_eq!(
        rules_seen.len(),
        5,
        "every rule kind fires in the reference: {rules_seen:?}"
    );
    assert!(
        expected.len() > 300,
        "{} reference transitions",
        expected.len()
    );
    (expected, last_text)
}

/// How a live output compares with the reference.
pub struct Comparison {
    pub missing: Vec<Key>,
    pub extra: Vec<Key>,
    pub differing: Vec<(Key, BTreeSet<String>)>,
    pub distinct: usize,
    pub lines: usize,
}

impl Comparison {
    pub fn exact(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.differing.is_empty()
    }

    pub fn summary(&self, expected: usize) -> String {
        format!(
            "{expected} reference transitions, {} live distinct, {} lines written ({} repeats); missing {}, extra {}, repeats that differ {}",
            self.distinct,
            self.lines,
            self.lines.saturating_sub(self.distinct),
            self.missing.len(),
            self.extra.len(),
            self.differing.len()
        )
    }

    pub fn detail(&self) -> String {
        format!(
            "missing (first 10): {:#?}\nextra (first 10): {:#?}\ndiffering repeats (first 3): {:#?}",
            &self.missing[..self.missing.len().min(10)],
            &self.extra[..self.extra.len().min(10)],
            &self.differing[..self.differing.len().min(3)]
        )
    }
}

/// Compares the live output `text` with the reference.
pub fn compare(expected: &BTreeMap<Key, BTreeSet<String>>, text: &str, last: &str) -> Comparison {
    let live = transitions(text, last);
    Comparison {
        missing: expected
            .keys()
            .filter(|k| !live.contains_key(*k))
            .cloned()
            .collect(),
        extra: live
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .cloned()
            .collect(),
        differing: live
            .iter()
            .filter(|(_, texts)| texts.len() > 1)
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect(),
        distinct: live.len(),
        lines: text.lines().count(),
    }
}

/// Reads `path` until its transitions hold the whole reference, or stop growing for
/// `quiet`; returns the final text.
pub fn wait_for_reference(
    expected: &BTreeMap<Key, BTreeSet<String>>,
    path: &Path,
    last: &str,
    quiet: std::time::Duration,
) -> String {
    let start = std::time::Instant::now();
    let mut seen = 0;
    let mut unchanged_since = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let live = transitions(&text, last);
        if expected.keys().all(|k| live.contains_key(k)) {
            std::thread::sleep(std::time::Duration::from_secs(1));
            return std::fs::read_to_string(path).unwrap_or_default();
        }
        if live.len() != seen {
            seen = live.len();
            unchanged_since = std::time::Instant::now();
        }
        if unchanged_since.elapsed() > quiet
            || start.elapsed() > std::time::Duration::from_secs(300)
        {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Index of the last reading of a stopped gauge in `lines`.
pub fn last_stopped_reading(lines: &[(String, String)]) -> usize {
    lines
        .iter()
        .rposition(|(_, p)| {
            STOPPED
                .clone()
                .any(|g| p.contains(&format!(r#""source":"W{g:02}""#)))
        })
        .unwrap()
}

/// Firings of the wall-clock rule in a live output: (key, at in epoch ms).
pub fn clock_firings(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|t| t["rule"] == CLOCK_RULE && t["state"] == "firing")
        .map(|t| {
            let at = chrono::DateTime::parse_from_rfc3339(t["at"].as_str().unwrap()).unwrap();
            (
                t["key"].as_str().unwrap().to_string(),
                at.timestamp_millis(),
            )
        })
        .collect()
}

/// Writes the rules and a pipeline file around `source` (a `[[source]]` table): the
/// crash tests' engine settings (checkpoint every second, ten minutes before a channel is
/// idle), alerts to `alerts.ndjson`, dead letters to `dead.ndjson`.
pub fn write_pipeline(dir: &Path, name: &str, source: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/rules.yaml"), RULES).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "{name}"
rules = "rules"

[engine]
max_out_of_orderness = "10s"
allowed_lateness = "30s"
idle_timeout = "10m"
tick_interval = "100ms"
checkpoint = "state/engine.checkpoint"
checkpoint_interval = "1s"

[limits]
queue_capacity = 2048
mqtt_inflight = 1000

{source}

[[output]]
type = "file"
path = "alerts.ndjson"

[dead_letter]
type = "file"
path = "dead.ndjson"
"#
        ),
    )
    .unwrap();
    path
}

/// The log the crash tests' `watchfloor run` appends to across restarts.
pub const LOG: &str = "watchfloor.log";

/// `watchfloor run` on `pipeline`, logging to [`LOG`].
pub fn start(pipeline: &Path) -> super::Killed {
    super::run_pipeline(pipeline, LOG)
}

/// What [`start`]ed instances logged so far.
pub fn log_of(pipeline: &Path) -> String {
    super::log_of(pipeline, LOG)
}

/// Which refusals a disruption may cause.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusals {
    /// None at all: a crash or a restart of Watchfloor refuses nothing.
    None,
    /// Duplicates of published readings, at most `window` of them: a broker restart makes
    /// QoS 1 publishers resend what was in flight (MQTT is at-least-once), and Watchfloor
    /// must refuse each resend as a duplicate, never count it twice. Late refusals: none.
    Redeliveries { window: usize },
}

/// Asserts the live output `text` equals the reference exactly (nothing missing, nothing
/// extra, every repeat byte-identical; the log's tail shown if not) and that nothing was
/// dead-lettered beyond what `allowed` permits (a late refusal would show there). Prints
/// the summary.
pub fn assert_matches_replay(
    label: &str,
    dir: &Path,
    pipeline: &Path,
    reference: &Reference,
    text: &str,
    allowed: Refusals,
) {
    let (expected, last_text) = reference;
    let comparison = compare(expected, text, last_text);
    eprintln!("{label}: {}", comparison.summary(expected.len()));
    if !comparison.exact() {
        let log = log_of(pipeline);
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        panic!(
            "live output differs from replay\n{}\nlog tail:\n{}",
            comparison.detail(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let dead = std::fs::read_to_string(dir.join("dead.ndjson")).unwrap_or_default();
    let refused: Vec<&str> = dead.lines().collect();
    match allowed {
        Refusals::None => assert_eq!(
            refused.len(),
            0,
            "nothing refused (late or duplicate): {}",
            refused
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Refusals::Redeliveries { window } => {
            let published: std::collections::HashSet<String> = dataset()
                .0
                .into_iter()
                .map(|(_, payload)| payload)
                .collect();
            for line in &refused {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(
                    record["reason"], "duplicate",
                    "only duplicates refused: {line}"
                );
                let raw = record["raw"].as_str().unwrap_or_default();
                assert!(
                    published.contains(raw),
                    "a refused duplicate is a published reading, resent: {line}"
                );
            }
            assert!(
                refused.len() <= window,
                "{} resends refused, more than the {window} a publisher keeps in flight",
                refused.len()
            );
            eprintln!(
                "{label}: {} resent readings refused as duplicates",
                refused.len()
            );
        }
    }
}
