//! Crash-exact state, end to end against a real Mosquitto: a generated city dataset
//! (≥ 100,000 readings from 220 sources; tumbling, sliding, session, per-event with `for`
//! and escalation, and ward-keyed rules) is published at QoS 1 while `watchfloor run` is
//! disrupted (SIGKILLed at random moments, one within a second of its restart; stopped
//! cleanly; or its broker restarted), and the distinct alert transitions it writes must
//! equal `watchfloor replay` of the same file exactly: nothing missing, nothing extra, and
//! every repeated transition byte-identical to its first emission.
//!
//! The rules here are all on event time (windows, `for: N`, escalation by value), so the
//! comparison is exact; rules on the wall clock are not part of it.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::equivalence::{
    assert_matches_replay, clock_firings, dataset, last_stopped_reading, log_of, reference, start,
    wait_for_reference, Refusals, Rng, STOPPED,
};
use support::mosquitto::Mosquitto;
use support::{runtime, scratch};

fn write_pipeline(dir: &Path, port: u16) -> PathBuf {
    support::equivalence::write_pipeline(
        dir,
        "crash",
        &format!(
            "[[source]]\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"watchfloor-crash\"\ntopics = [\"ioc/+/+/telemetry\"]\nformat = \"json\""
        ),
    )
}

fn wait_subscriptions(pipeline: &Path, count: usize) {
    support::wait_until(
        "the pipeline's subscription",
        Duration::from_secs(60),
        || log_of(pipeline).matches("mqtt source subscribed").count() >= count,
    );
}

/// What happens to the running system while the data is published.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Disruption {
    /// SIGKILL at four random moments (the third within a second of its restart).
    Kill,
    /// SIGTERM (a clean stop) once, mid-stream.
    Term,
    /// The broker stopped and started again mid-stream.
    BrokerRestart,
}

/// The absence rule runs on the wall clock live, so it is compared by key and timing: each
/// stopped gauge reported offline 20 s (its limit) after its last reading was published,
/// allowing for processing and restarts, and no other gauge before the stream ended.
fn check_clock_rule(alerts: &Path, stopped_at: i64, ended_at: i64) {
    const LIMIT: i64 = 20_000;
    const SLACK: i64 = 15_000;
    let fired = |firings: &[(String, i64)]| {
        STOPPED
            .clone()
            .all(|g| firings.iter().any(|(k, _)| *k == format!("W{g:02}")))
    };
    let mut firings = Vec::new();
    while support::now_ms() < stopped_at + LIMIT + SLACK + 5_000 {
        firings = clock_firings(&std::fs::read_to_string(alerts).unwrap_or_default());
        if fired(&firings) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for g in STOPPED {
        let key = format!("W{g:02}");
        let at: Vec<i64> = firings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, at)| *at)
            .collect();
        assert!(
            at.iter().any(|at| (stopped_at + LIMIT..=stopped_at + LIMIT + SLACK).contains(at)),
            "{key} reported offline 20 s after its last reading (published at {stopped_at}): {at:?}"
        );
        assert!(
            at.len() == 1 || at.iter().all(|a| *a >= ended_at + LIMIT),
            "{key} once: {at:?}"
        );
    }
    let early: Vec<&(String, i64)> = firings
        .iter()
        .filter(|(k, at)| {
            !STOPPED.clone().any(|g| *k == format!("W{g:02}")) && *at < ended_at + LIMIT - 1_000
        })
        .collect();
    assert!(
        early.is_empty(),
        "no gauge that kept reporting is offline early: {early:?}"
    );
    eprintln!(
        "clock rule: {} stopped gauges reported offline at +{:?} ms after their last reading",
        STOPPED.len(),
        firings
            .iter()
            .filter(|(k, _)| STOPPED.clone().any(|g| *k == format!("W{g:02}")))
            .map(|(_, at)| at - stopped_at)
            .collect::<Vec<_>>()
    );
}

/// The three runs take turns: each publishes at a fixed rate against a two-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(name: &str, disruption: Disruption) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("crash", name);
    let mut broker = Mosquitto::start(&dir);
    let pipeline = write_pipeline(&dir, broker.port);
    let (lines, last) = dataset();
    assert!(lines.len() >= 100_000, "{} readings", lines.len());
    let binary = support::watchfloor_binary();
    let (expected, last_text) = reference(binary, &dir, &lines, last);

    let mut wf = start(&pipeline);
    wait_subscriptions(&pipeline, 1);
    let rt = runtime();
    let acked = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let total = lines.len() as u64;
    // Wall-clock times (epoch ms) the stopped gauges' last reading and the last reading of
    // all were published at.
    let stop_index = last_stopped_reading(&lines);
    let stopped_at = Arc::new(AtomicU64::new(0));
    let ended_at = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stopped_at, ended_at) = (stopped_at.clone(), ended_at.clone());
        let (acked, published, port) = (acked.clone(), published.clone(), broker.port);
        rt.spawn(async move {
            let mut options = MqttOptions::new("crash-stations", "127.0.0.1", port);
            options.set_keep_alive(Duration::from_secs(30));
            options.set_clean_session(false);
            options.set_inflight(500);
            let (client, mut event_loop) = AsyncClient::new(options, 2000);
            let counter = acked.clone();
            tokio::spawn(async move {
                loop {
                    match event_loop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            // About 8,000 readings a second: long enough for every disruption to land
            // mid-stream.
            let start = Instant::now();
            for (i, (topic, payload)) in lines.into_iter().enumerate() {
                if i % 400 == 0 {
                    let due = Duration::from_millis(i as u64 / 8);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
                published.fetch_add(1, Ordering::SeqCst);
                if i == stop_index {
                    stopped_at.store(support::now_ms() as u64, Ordering::SeqCst);
                }
            }
            ended_at.store(support::now_ms() as u64, Ordering::SeqCst);
            client
        })
    };

    let mut rng = Rng(support::now_ms() as u64 | 1);
    let mut restarts = 0;
    let fraction = |f: f64| (total as f64 * f) as u64;
    let wait_published = |n: u64| {
        support::wait_progressing("the publisher", Duration::from_secs(60), || {
            let p = published.load(Ordering::SeqCst);
            (p, p >= n)
        })
    };
    match disruption {
        Disruption::Kill => {
            for k in 0..4 {
                if k == 2 {
                    // Within a second of the restart: the log replay may be under way.
                    std::thread::sleep(Duration::from_millis(200 + rng.next() % 700));
                } else {
                    let at = fraction(0.12 + 0.2 * k as f64 + rng.unit() * 0.1);
                    wait_published(at);
                }
                drop(wf); // SIGKILL
                eprintln!(
                    "SIGKILL {k} at {} published",
                    published.load(Ordering::SeqCst)
                );
                wf = start(&pipeline);
                restarts += 1;
            }
        }
        Disruption::Term => {
            wait_published(fraction(0.4 + rng.unit() * 0.2));
            let _ = Command::new("kill")
                .args(["-TERM", &wf.0.id().to_string()])
                .status();
            let _ = wf.0.wait();
            wf = start(&pipeline);
            restarts += 1;
        }
        Disruption::BrokerRestart => {
            wait_published(fraction(0.4 + rng.unit() * 0.2));
            broker.stop();
            // The broker stays down a moment on purpose (an outage, not an ordering wait).
            std::thread::sleep(Duration::from_millis(500));
            broker.restart();
        }
    }
    let client = rt.block_on(publisher).unwrap();
    support::wait_progressing(
        "the broker to take every reading",
        Duration::from_secs(60),
        || {
            let a = acked.load(Ordering::SeqCst);
            (a, a >= total)
        },
    );
    rt.block_on(async {
        let _ = client.disconnect().await;
    });

    let text = wait_for_reference(
        &expected,
        &dir.join("alerts.ndjson"),
        &last_text,
        Duration::from_secs(60),
    );
    if disruption == Disruption::Kill {
        check_clock_rule(
            &dir.join("alerts.ndjson"),
            stopped_at.load(Ordering::SeqCst) as i64,
            ended_at.load(Ordering::SeqCst) as i64,
        );
    }
    drop(wf);
    let reference = (expected, last_text);
    assert_matches_replay(
        &format!("{name}: {restarts} restarts"),
        &dir,
        &pipeline,
        &reference,
        &text,
        if disruption == Disruption::BrokerRestart {
            Refusals::Redeliveries { window: 500 }
        } else {
            Refusals::None
        },
    );
    let log = log_of(&pipeline);
    if disruption == Disruption::Kill {
        assert!(
            log.contains("write-ahead log replayed"),
            "a restart replayed the log"
        );
    }
}

#[test]
fn sigkills_at_random_moments_change_no_alert() {
    run("kill", Disruption::Kill);
}

#[test]
fn a_clean_stop_and_restart_changes_no_alert() {
    run("term", Disruption::Term);
}

#[test]
fn a_broker_restart_changes_no_alert() {
    run("broker", Disruption::BrokerRestart);
}
