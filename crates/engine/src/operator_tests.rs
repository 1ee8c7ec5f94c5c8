//! What operators do to the engine's alerts: acknowledge, resolve by hand (the alert comes
//! back if its condition still holds), and what the engine answers for alerts it does not
//! have; the firing alerts it lists, before and after a checkpoint.

use super::*;
use crate::test_support::*;
use watchfloor_model::{Event, Kind};

const PER_EVENT: &str = r#"
rules:
  - id: hot
    match: { kind: air }
    aggregates: { t: max(temp) }
    condition: t > 40
    clear: t < 35
    severity: major
    message: "{key} at {t:.0}"
"#;

fn engine() -> Engine {
    engine_with(PER_EVENT, LookupTables::default(), strict())
}

fn temp(source: &str, ts: i64, t: f64) -> Event {
    event(source, Kind::Air, ts, &[("temp", t)])
}

#[test]
fn resolving_by_hand_ends_the_alert_and_it_comes_back_while_the_condition_holds() {
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&temp("S1", T0, 45.0), &mut out).unwrap();
    e.process(&temp("S2", T0 + 1, 50.0), &mut out).unwrap();
    assert_eq!(out.transitions.len(), 2);
    let id = out.transitions[0].alert_id.clone();
    assert_eq!(e.active_alerts().len(), 2);
    out.transitions.clear();

    e.resolve_manually(&id, T0 + 500, &mut out).unwrap();
    assert_eq!(out.transitions.len(), 1, "{:?}", out.transitions);
    let t = &out.transitions[0];
    assert_eq!(
        (t.alert_id.as_str(), t.state, t.at),
        (id.as_str(), AlertState::Resolved, T0 + 500)
    );
    let left: Vec<String> = e.active_alerts().into_iter().map(|a| a.key).collect();
    assert_eq!(left, ["S2"], "only the other station's alert is left");
    // Gone: a second resolution or an acknowledgement is refused, naming it.
    assert_eq!(
        e.resolve_manually(&id, T0 + 600, &mut out),
        Err(EngineError::UnknownAlert(id.clone()))
    );
    let ack = Acknowledgement {
        by: "op".into(),
        at: T0 + 600,
        note: None,
    };
    assert_eq!(
        e.acknowledge(&id, ack),
        Err(EngineError::UnknownAlert(id.clone()))
    );
    // Still hot: the next reading fires a new alert (a new id) for the same station.
    out.transitions.clear();
    e.process(&temp("S1", T0 + 1000, 46.0), &mut out).unwrap();
    assert_eq!(out.transitions.len(), 1);
    assert_eq!(out.transitions[0].state, AlertState::Firing);
    assert_ne!(out.transitions[0].alert_id, id);
}

#[test]
fn acknowledgements_are_listed_and_survive_a_checkpoint() {
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&temp("S1", T0, 45.0), &mut out).unwrap();
    let id = out.transitions[0].alert_id.clone();
    let ack = Acknowledgement {
        by: "op".into(),
        at: T0 + 10,
        note: Some("crew sent".into()),
    };
    e.acknowledge(&id, ack.clone()).unwrap();
    let listed = e.active_alerts();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].acknowledged.as_ref(), Some(&ack));
    assert_eq!(
        (
            listed[0].rule.as_str(),
            listed[0].key.as_str(),
            listed[0].since
        ),
        ("hot", "S1", T0)
    );
    assert_eq!(listed[0].severity, Severity::Major);

    let bytes = e.checkpoint(&BTreeMap::new());
    let set = RuleSet::from_sources(
        &[("t.yaml".into(), PER_EVENT.into())],
        LookupTables::default(),
    )
    .unwrap();
    let (mut back, _) = Engine::restore(set, e.config.clone(), &bytes).unwrap();
    assert_eq!(
        back.active_alerts(),
        listed,
        "the same firing alerts after a restore"
    );
    assert_eq!(
        (e.clock(), back.clock()),
        (T0, T0),
        "the clock (event time here) comes back"
    );
    // A rule whose definition changed under the same id starts empty; a new id too.
    let changed = PER_EVENT.replace("t > 40", "t > 41");
    let set =
        RuleSet::from_sources(&[("t.yaml".into(), changed)], LookupTables::default()).unwrap();
    let (fresh, restored) = Engine::restore(set, e.config.clone(), &bytes).unwrap();
    assert_eq!(restored.dropped, ["hot"]);
    assert!(restored.kept.is_empty());
    assert!(
        fresh.active_alerts().is_empty(),
        "no state from a different definition"
    );
    // Resolving by hand works on the restored engine (the alert index came back too).
    out.transitions.clear();
    back.resolve_manually(&id, T0 + 20, &mut out).unwrap();
    assert_eq!(out.transitions.len(), 1);
    assert!(back.active_alerts().is_empty());
}

#[test]
fn a_late_event_is_refused_saying_how_late_and_the_clock_follows_event_time_only() {
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&temp("S1", T0 + 600_000, 20.0), &mut out)
        .unwrap();
    // The watermark is at the first event's time (no out-of-orderness allowed here).
    assert_eq!(e.watermark(), T0 + 600_000);
    let refused = e.process(&temp("S2", T0, 20.0), &mut out).unwrap_err();
    assert_eq!(
        refused,
        Rejection::Late {
            behind_ms: 600_000,
            allowed_ms: 0
        },
        "behind by ten minutes, none allowed"
    );
    assert_eq!(e.stats().late, 1);
    // An older event does not move the clock back.
    assert_eq!(e.clock(), T0 + 600_000);

    // Processing time: the clock is the wall clock given by ticks, never an event's time.
    let mut live = engine();
    live.config.time_mode = TimeMode::Processing;
    live.tick(T0, &mut out);
    live.process(&temp("S1", T0 + 5_000, 20.0), &mut out)
        .unwrap();
    assert_eq!(
        live.clock(),
        T0,
        "an event from the future does not move the live clock"
    );
}

#[test]
fn an_opened_channel_holds_the_watermark_until_it_delivers_and_a_closed_one_no_longer() {
    let mut e = engine();
    let mut out = Emitted::default();
    e.process_on(0, &temp("S1", T0, 20.0), &mut out).unwrap();
    assert_eq!(e.watermark(), T0);
    // A partition assigned: until it delivers (or goes idle, a minute here) it holds the
    // watermark where it is, so its backlog is not refused as late.
    e.open_channel(1);
    e.process_on(0, &temp("S1", T0 + 10_000, 20.0), &mut out)
        .unwrap();
    assert_eq!(e.watermark(), T0, "held by the new channel");
    e.process_on(1, &temp("S2", T0 + 2_000, 20.0), &mut out)
        .unwrap();
    e.process_on(0, &temp("S1", T0 + 15_000, 20.0), &mut out)
        .unwrap();
    assert_eq!(e.watermark(), T0 + 2_000, "the slowest channel's time");
    // Revoked: its sources no longer hold anything back.
    e.close_channel(1);
    e.process_on(0, &temp("S1", T0 + 20_000, 20.0), &mut out)
        .unwrap();
    assert_eq!(e.watermark(), T0 + 20_000);
}

#[test]
fn a_raise_by_hand_escalates_once_and_never_lowers() {
    let mut e = engine();
    let mut out = Emitted::default();
    e.process(&temp("S1", T0, 45.0), &mut out).unwrap();
    let id = out.transitions[0].alert_id.clone();
    out.transitions.clear();
    assert_eq!(
        e.raise_severity(&id, Severity::Minor, T0 + 10, &mut out),
        Ok(false)
    );
    assert_eq!(
        e.raise_severity(&id, Severity::Major, T0 + 10, &mut out),
        Ok(false)
    );
    assert!(out.transitions.is_empty(), "lower or equal: nothing");
    assert_eq!(
        e.raise_severity(&id, Severity::Critical, T0 + 20, &mut out),
        Ok(true)
    );
    let t = &out.transitions[0];
    assert_eq!(
        (t.alert_id.as_str(), t.state, t.severity, t.at),
        (id.as_str(), AlertState::Firing, Severity::Critical, T0 + 20)
    );
    assert_eq!(e.active_alerts()[0].severity, Severity::Critical);
    assert_eq!(
        e.raise_severity("nope", Severity::Critical, T0, &mut out),
        Err(EngineError::UnknownAlert("nope".into()))
    );
}
