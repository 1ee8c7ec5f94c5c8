//! CAP 1.2 messages of every shipped rule's alerts — fired (an `Alert`), escalated (an
//! `Update` referencing it), resolved (an `Update` with the all-clear referencing both),
//! with a commune's polygon, a station's point or the whole city as the area, and a drill's
//! alert as an `Exercise` — validate against the official OASIS CAP 1.2 schema with the
//! independent `xmlschema` package (tests/cap/validate.py, schemas in tests/cap/schema/),
//! and so does their Atom feed against the Atom 1.0 schema. Each message also parses back
//! with `oasiscap`, its type and references as built.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use watchfloor_model::Severity;
use watchfloor_server::feeds::cap::{atom, identifier, message, to_xml, Sender};
use watchfloor_store::{AlertRow, ChangeRow};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

const T0: i64 = 1_796_100_000_000;

#[test]
fn every_shipped_rules_messages_validate_against_the_oasis_schema_and_the_feed_as_atom() {
    let (rules, city) = watchfloor_city::load_rules(&root().join("alert-rules")).unwrap();
    let city = city.expect("the shipped city");
    let sender = Sender {
        sender: "ioc@cantho.gov.vn".into(),
        sender_name: "Trung tâm IOC Cần Thơ".into(),
    };
    let dir = std::env::temp_dir().join(format!("watchfloor-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut feed_lines = Vec::new();
    let mut seq = 0;
    for (i, rule) in rules.rules.iter().enumerate() {
        let station = &city.stations[i % city.stations.len()];
        // A commune's polygon, a station's point, or no place: the city.
        let (key, ward) = match i % 3 {
            0 => (station.id.clone(), station.ward.clone()),
            1 => (station.id.clone(), None),
            _ => (format!("zone-{i}"), None),
        };
        let mut labels: BTreeMap<String, String> = rule.labels.clone();
        if i == 0 {
            labels.insert("exercise".into(), "flood_gauge-20261201053000".into());
            labels.insert("mode".into(), "exercise".into());
        }
        let alert_id = format!("{:016x}", 0xc0ffee_u64 + i as u64);
        let mut lines: Vec<ChangeRow> = Vec::new();
        for (n, (event, severity, state)) in [
            ("fired", Severity::Major, "firing"),
            ("escalated", Severity::Critical, "firing"),
            ("resolved", Severity::Critical, "resolved"),
        ]
        .into_iter()
        .enumerate()
        {
            seq += 1;
            let at = T0 + i as i64 * 60_000 + n as i64 * 10_000;
            lines.push(ChangeRow {
                seq,
                at,
                event: event.into(),
                by: None,
                detail: format!("{}: {} <&> \"{}\"", severity.as_str(), rule.id, key),
                alert: AlertRow {
                    alert_id: alert_id.clone(),
                    rule: rule.id.clone(),
                    key: key.clone(),
                    state: state.into(),
                    severity,
                    fired_at: T0 + i as i64 * 60_000,
                    updated_at: at,
                    resolved_at: (state == "resolved").then_some(at),
                    value: Some(42.5),
                    message: format!("{} at {key}", rule.id),
                    labels: labels.clone(),
                    ward: ward.clone(),
                    district: None,
                    sectors: Vec::new(),
                    kind: Some(rule.kind.as_str().into()),
                    location: None,
                    ack: None,
                    assignee: None,
                },
            });
        }
        for n in 0..lines.len() {
            let cap = message(&sender, Some(&city), &lines[n], &lines[..n]).unwrap();
            let xml = to_xml(cap);
            // One line: a file output holds one message per line, each copy the same bytes.
            assert!(
                !xml.contains('\n'),
                "{}: a line break at {:?}",
                rule.id,
                xml.find('\n')
                    .map(|i| &xml[i.saturating_sub(80)..(i + 40).min(xml.len())])
            );
            // Parses back, as built.
            let back: oasiscap::v1dot2::Alert = xml
                .parse::<oasiscap::Alert>()
                .unwrap_or_else(|e| panic!("{}: {e}\n{xml}", rule.id))
                .into_latest();
            let kind = format!("{:?}", back.message_type);
            assert_eq!(kind, if n == 0 { "Alert" } else { "Update" }, "{}", rule.id);
            let refs: Vec<String> = back
                .references
                .iter()
                .flat_map(|r| r.iter().map(|r| r.identifier.to_string()))
                .collect();
            let want: Vec<String> = lines[..n].iter().map(identifier).collect();
            assert_eq!(refs, want, "{}: references the earlier messages", rule.id);
            assert_eq!(back.info.len(), 2, "Vietnamese and English");
            let status = format!("{:?}", back.status);
            assert_eq!(status, if i == 0 { "Exercise" } else { "Actual" });
            if i == 0 {
                assert!(back
                    .note
                    .as_deref()
                    .unwrap()
                    .contains("flood_gauge-20261201053000"));
            }
            if n == 2 {
                assert!(xml.contains("AllClear"), "the end is an all-clear: {xml}");
            }
            let file = dir.join(format!("{}.xml", identifier(&lines[n])));
            std::fs::write(&file, xml).unwrap();
            files.push(file);
        }
        feed_lines.extend(lines);
    }
    assert!(files.len() >= 3 * 20, "{} messages", files.len());
    feed_lines.reverse();
    let feed = dir.join("feed.atom");
    std::fs::write(&feed, atom(&sender, "http://ioc.example", &feed_lines)).unwrap();

    let out = Command::new("python3")
        .arg(root().join("tests/cap/validate.py"))
        .arg(root().join("tests/cap/schema"))
        .arg(&feed)
        .args(&files)
        .output()
        .expect("python3 with xmlschema (scripts/test installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schema validation failed:\n{report}");
    assert!(report.contains(&format!(
        "checked {} CAP messages and 1 Atom feed: 0 problems",
        files.len()
    )));
    let _ = std::fs::remove_dir_all(&dir);
}
