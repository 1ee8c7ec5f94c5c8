//! The shipped flood playbook on the simulated city, in event time: the flood scenario
//! (`tests/scenarios/flood.toml`, seed 4: early warning 02:05, level II 03:15, level III
//! 03:40, early warning resolved 03:40 — worked out in `domain_packs.rs`) replayed through
//! the shipped rules, its transitions fed to the book of runs with the shipped playbooks,
//! and operators' actions scripted at local times between them. Asserted step by step: the
//! run starts on the early warning, the camera check breaches at its due time and escalates
//! to the city's admin, the warning renders the alert's data when it is sent, the wait ends
//! when level II fires in the same commune, a decision branch is taken, the approval is
//! refused to an operator and given by the admin, and the run finishes after the all-clear
//! once the report is filed.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use watchfloor_model::{local_day, local_day_start, parse_rfc3339, AlertState, Severity};
use watchfloor_playbooks::{Action, Actor, Book, Effect, Known, Library, RunEvent, Subject};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn library() -> Library {
    let (rules, city) = watchfloor_city::load_rules(&root().join("alert-rules")).unwrap();
    let known = Known {
        rules: rules.rules.iter().map(|r| r.id.clone()).collect(),
        sectors: city
            .unwrap()
            .sectors
            .all()
            .iter()
            .map(|s| s.id.clone())
            .collect(),
    };
    Library::load_dir(&root().join("playbooks"), &known).unwrap()
}

/// One scripted action: at local `HH:MM`, on the early warning's run.
struct Scripted {
    at: &'static str,
    step: &'static str,
    action: Action,
    actor: Actor,
    expect: Result<(), u16>,
}

#[test]
fn the_flood_playbook_runs_step_by_step_on_the_simulated_flood() {
    let transitions = support::scenario::simulate_and_replay(root(), "flood", 4, "8h");
    let city = watchfloor_city::City::load(&root().join("alert-rules"))
        .unwrap()
        .unwrap();
    let first = parse_rfc3339(transitions[0]["at"].as_str().unwrap()).unwrap();
    let midnight = local_day_start(local_day(first));
    let at = |hhmm: &str| {
        let (h, m) = hhmm.split_once(':').unwrap();
        midnight + (h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()) * 60_000
    };
    let local = |ms: i64| {
        let m = (ms - midnight) / 60_000;
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let ward = city
        .station("CT-HY-01")
        .and_then(|s| s.ward.clone())
        .expect("the gauge's commune");
    let ward_name = city.zones.get(&ward).map(|z| z.name.clone());
    let operator = Actor {
        name: "ward-operator".into(),
        role: "operator".into(),
        communes: Some(vec![ward.clone()]),
    };
    let other_ward = Actor {
        name: "elsewhere".into(),
        role: "operator".into(),
        communes: Some(vec!["giai_xuan".into()]),
    };
    let viewer = Actor {
        name: "viewer".into(),
        role: "viewer".into(),
        communes: None,
    };
    let admin = Actor {
        name: "duty-leader".into(),
        role: "admin".into(),
        communes: None,
    };
    let complete = |value: serde_json::Value| Action::Complete {
        value: Some(value),
        note: None,
    };
    let script = vec![
        Scripted {
            at: "02:20",
            step: "verify_camera",
            action: complete("confirmed".into()),
            actor: other_ward.clone(),
            expect: Err(403),
        },
        Scripted {
            at: "02:20",
            step: "verify_camera",
            action: complete("confirmed".into()),
            actor: viewer.clone(),
            expect: Err(403),
        },
        Scripted {
            at: "02:20",
            step: "verify_camera",
            action: complete("maybe".into()),
            actor: operator.clone(),
            expect: Err(422),
        },
        Scripted {
            at: "02:20",
            step: "verify_camera",
            action: complete("confirmed".into()),
            actor: operator.clone(),
            expect: Ok(()),
        },
        Scripted {
            at: "02:21",
            step: "verify_camera",
            action: complete("confirmed".into()),
            actor: operator.clone(),
            expect: Err(409),
        },
        Scripted {
            at: "03:30",
            step: "open_shelters",
            action: complete(3.into()),
            actor: operator.clone(),
            expect: Ok(()),
        },
        Scripted {
            at: "03:32",
            step: "evacuation_decision",
            action: Action::Choose {
                branch: "evacuate".into(),
                note: Some("nước lên nhanh".into()),
            },
            actor: operator.clone(),
            expect: Ok(()),
        },
        Scripted {
            at: "03:35",
            step: "approve_evacuation",
            action: Action::Approve { note: None },
            actor: operator.clone(),
            expect: Err(403),
        },
        Scripted {
            at: "03:35",
            step: "approve_evacuation",
            action: Action::Approve {
                note: Some("đồng ý".into()),
            },
            actor: admin.clone(),
            expect: Ok(()),
        },
        Scripted {
            at: "04:30",
            step: "file_report",
            action: complete("BC-2026-117".into()),
            actor: operator.clone(),
            expect: Ok(()),
        },
    ];

    let mut book = Book::new(library());
    let mut events: Vec<RunEvent> = Vec::new();
    let mut effects: Vec<(i64, Effect)> = Vec::new();
    let mut fired: BTreeMap<String, Severity> = BTreeMap::new();
    let mut warning_run: Option<String> = None;
    let mut script = script.into_iter().peekable();
    let mut record = |out: watchfloor_playbooks::Out, now: i64, events: &mut Vec<RunEvent>| {
        events.extend(out.events);
        effects.extend(out.effects.into_iter().map(|e| (now, e)));
    };
    for t in &transitions {
        let now = parse_rfc3339(t["at"].as_str().unwrap()).unwrap();
        // The operators' actions due before this transition, each after the timers up to it.
        while script.peek().is_some_and(|s| at(s.at) < now) {
            let s = script.next().unwrap();
            record(book.tick(at(s.at)), at(s.at), &mut events);
            let run = warning_run
                .clone()
                .expect("the early warning's run exists by then");
            let got = book.act(&run, s.step, s.action, &s.actor, at(s.at));
            assert_eq!(
                got.as_ref().map(|_| ()).map_err(|e| e.status()),
                s.expect,
                "{} {} by {}: {got:?}",
                s.at,
                s.step,
                s.actor.name
            );
            if let Ok(out) = got {
                record(out, at(s.at), &mut events);
            }
        }
        record(book.tick(now), now, &mut events);
        let alert_id = t["alert_id"].as_str().unwrap().to_string();
        let severity = Severity::parse(t["severity"].as_str().unwrap()).unwrap();
        let state = if t["state"] == "firing" {
            AlertState::Firing
        } else {
            AlertState::Resolved
        };
        let fired_severity = *fired.entry(alert_id.clone()).or_insert(severity);
        let subject = Subject {
            alert_id: Some(alert_id.clone()),
            rule: t["rule"].as_str().unwrap().into(),
            key: t["key"].as_str().unwrap().into(),
            zone: Some(ward.clone()),
            zone_name: ward_name.clone(),
            sectors: vec!["water_disaster".into()],
            severity,
            fired_severity,
            state,
            value: t["value"].as_f64(),
            message: t["message"].as_str().unwrap_or_default().into(),
            labels: serde_json::from_value(t["labels"].clone()).unwrap_or_default(),
            exercise: None,
        };
        if subject.rule == "flood_early_warning" && warning_run.is_none() {
            warning_run = Some(format!("flood_response:{alert_id}"));
        }
        record(book.on_transition(subject, now), now, &mut events);
    }
    for s in script {
        record(book.tick(at(s.at)), at(s.at), &mut events);
        let run = warning_run.clone().unwrap();
        let got = book.act(&run, s.step, s.action, &s.actor, at(s.at));
        assert_eq!(
            got.as_ref().map(|_| ()).map_err(|e| e.status()),
            s.expect,
            "{} {}",
            s.at,
            s.step
        );
        record(got.unwrap(), at(s.at), &mut events);
    }
    record(book.tick(at("08:00")), at("08:00"), &mut events);

    let run = warning_run.unwrap();
    let timeline: Vec<String> = events
        .iter()
        .filter(|e| e.run == run)
        .map(|e| {
            format!(
                "{} {} {}{}",
                local(e.at),
                e.step.as_deref().unwrap_or("-"),
                e.event,
                e.value
                    .as_ref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let people = r#" {"people":{"role":"admin","scope":"city"}}"#;
    let topic = |t: &str| format!(r#" {{"mqtt":"ioc/notify/{ward}/{t}"}}"#);
    let want: Vec<String> = vec![
        "02:05 - run_started".into(),
        "02:05 verify_camera started".into(),
        "02:15 verify_camera breached".into(),
        format!("02:15 verify_camera escalated{people}"),
        "02:20 verify_camera completed \"confirmed\"".into(),
        "02:20 warn_wards started".into(),
        format!("02:20 warn_wards notified{}", topic("flood")),
        "02:20 watch_level started".into(),
        "03:15 watch_level condition_met".into(),
        "03:15 open_shelters started".into(),
        "03:30 open_shelters completed 3".into(),
        "03:30 evacuation_decision started".into(),
        "03:32 evacuation_decision chosen \"evacuate\"".into(),
        "03:32 approve_evacuation started".into(),
        "03:35 approve_evacuation approved".into(),
        "03:35 order_evacuation started".into(),
        format!("03:35 order_evacuation notified{}", topic("evacuation")),
        "03:40 - alert_resolved".into(),
        "03:40 file_report started".into(),
        "04:30 file_report completed \"BC-2026-117\"".into(),
        "04:30 - run_finished".into(),
    ];
    assert_eq!(timeline, want, "the early warning's run, step by step");

    // The escalation and the notifications, with their deterministic ids and the data of
    // their send time.
    let sent: Vec<(String, String, String)> = effects
        .iter()
        .filter_map(|(now, e)| match e {
            Effect::Notify {
                id, run: r, text, ..
            } if *r == run => Some((local(*now), id.clone(), text.en.clone())),
            _ => None,
        })
        .collect();
    let ids: Vec<&str> = sent.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("{run}/verify_camera/1/breach"),
            format!("{run}/warn_wards/1"),
            format!("{run}/order_evacuation/1")
        ]
    );
    assert!(sent[1].2.contains("major, gauge CT-HY-01"), "{}", sent[1].2);
    assert!(sent[2].2.starts_with("EVACUATION ORDER: "), "{}", sent[2].2);

    // One run per alert and playbook: the early warning, level II and level III each have
    // one; level I is minor (below the trigger's major).
    let runs: Vec<String> = book
        .runs()
        .map(|r| format!("{} {}", r.subject.rule, local(r.started_at)))
        .collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for want in [
        "flood_early_warning 02:05",
        "flood_alarm_2 03:15",
        "flood_alarm_3 03:40",
    ] {
        assert!(runs.iter().any(|r| r == want), "{want} in {runs:?}");
    }
}
