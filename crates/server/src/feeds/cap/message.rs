//! One alert transition as a CAP 1.2 message, built with the `oasiscap` crate.
//!
//! - the first transition (`fired`) is an `Alert`; a later one (`escalated`, `reopened`) an
//!   `Update`, and the end (`resolved`, `resolved at restart`) an `Update` with the
//!   all-clear (`responseType` AllClear, `urgency` Past); every Update references every
//!   earlier message of the alert (`sender,identifier,sent`);
//! - `identifier` is `wf-<alert id>-<timeline line>`: deterministic, the same however often
//!   it is asked for; `sent` is the transition's time in Vietnam's offset (+07:00);
//! - `status` is `Actual`, or `Exercise` for a drill's alert with the exercise id in `note`;
//! - two `info` blocks, `vi-VN` and `en-US`; `area` is the commune's polygon(s) when the
//!   alert has one, else the station's point (a 0.1 km circle), else the city.
//!
//! Invariants: the alert is as the transition left it (`ChangeRow::as_of`), so a message
//! says the same whenever it is asked for; nothing here reads a clock or the store; the
//! same rows give the same XML.

use oasiscap::geo::{Circle, Point, Polygon};
use oasiscap::id::Id;
use oasiscap::references::{Reference, References};
use oasiscap::v1dot2::{Alert, Area, Info, Map, MessageType, ResponseType, Scope, Status, Urgency};
use oasiscap::DateTime;

use watchfloor_city::City;
use watchfloor_model::{format_rfc3339, EXERCISE_LABEL};
use watchfloor_store::ChangeRow;

/// Who sends.
#[derive(Debug, Clone)]
pub struct Sender {
    pub sender: String,
    pub sender_name: String,
}

/// A message as XML, with its `<cap:alert>` root (the version-tagged form the crate writes),
/// on one line (its texts are one line each: [`one_line`]), so a file of messages holds one
/// per line and every copy of a message is the same bytes.
pub fn to_xml(alert: Alert) -> String {
    // The crate indents: the breaks and indentation between elements go (their texts have
    // no line breaks, so only that whitespace is at a line's start).
    oasiscap::Alert::V1dot2(alert)
        .to_string()
        .lines()
        .map(str::trim_start)
        .collect()
}

/// `text` with its line breaks as spaces.
fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\n', '\r'], " ")
}

/// The identifier of the message of timeline line `line`.
pub fn identifier(line: &ChangeRow) -> String {
    format!("wf-{}-{}", line.alert.alert_id, line.seq)
}

/// `sent` of a transition at `ms`: Vietnam's local time, +07:00, whole seconds.
fn sent(ms: i64) -> Result<DateTime, String> {
    let local = format_rfc3339(ms + 7 * 3_600_000);
    format!("{}+07:00", &local[..19])
        .parse()
        .map_err(|e| format!("sent: {e}"))
}

fn is_end(event: &str) -> bool {
    event == "resolved" || event == "resolved at restart"
}

/// The CAP message of `line`, the alert's transition; `earlier` are the alert's earlier
/// transitions (oldest first).
pub fn message(
    sender: &Sender,
    city: Option<&City>,
    line: &ChangeRow,
    earlier: &[ChangeRow],
) -> Result<Alert, String> {
    let a = &line.as_of();
    let id = |s: String| Id::new(s).map_err(|e| format!("identifier: {e}"));
    let sender_id = id(sender.sender.clone())?;
    let exercise = a.labels.get(EXERCISE_LABEL);
    let references: Vec<Reference> = earlier
        .iter()
        .map(|e| {
            Ok(Reference {
                sender: sender_id.clone(),
                identifier: id(identifier(e))?,
                sent: sent(e.at)?,
            })
        })
        .collect::<Result<_, String>>()?;
    let message_type = if references.is_empty() {
        MessageType::Alert
    } else {
        MessageType::Update
    };
    let mapping = super::mapping::map(
        a.labels.get("pack").map(String::as_str),
        &a.rule,
        a.severity,
    );
    let end = is_end(&line.event);
    let station = city.and_then(|c| c.stations.iter().find(|s| s.id == a.key));
    let zone = city.and_then(|c| a.ward.as_ref().and_then(|w| c.zones.get(w)));
    let area = |vi: bool| -> Result<Area, String> {
        let mut polygons = Vec::new();
        if let Some(z) = zone {
            for p in &z.shape.0 {
                let points: Vec<Point> = p
                    .exterior()
                    .coords()
                    .map(|c| Point::new(c.y, c.x).map_err(|e| format!("polygon: {e}")))
                    .collect::<Result<_, _>>()?;
                polygons.push(Polygon::try_from(points).map_err(|e| format!("polygon: {e}"))?);
            }
        }
        let mut circles = Vec::new();
        if polygons.is_empty() {
            if let Some(s) = station {
                let centre = Point::new(s.lat, s.lon).map_err(|e| format!("point: {e}"))?;
                circles.push(Circle::new(centre, 0.1).map_err(|e| format!("circle: {e}"))?);
            }
        }
        let description = match (zone, station) {
            (Some(z), _) => {
                if vi {
                    z.name.clone()
                } else {
                    z.name_en.clone()
                }
            }
            (None, Some(s)) => s.name.clone(),
            _ => {
                if vi {
                    "Toàn thành phố".into()
                } else {
                    "The whole city".into()
                }
            }
        };
        let mut geocode = Map::new();
        if let Some(w) = &a.ward {
            geocode.push("commune", w.clone());
        }
        Ok(Area {
            description,
            polygons,
            circles,
            geocode,
            altitude: None,
            ceiling: None,
        })
    };
    let info = |vi: bool| -> Result<Info, String> {
        let (event, headline) = match (vi, end) {
            (true, false) => (mapping.event_vi, format!("{}: {}", mapping.event_vi, a.key)),
            (true, true) => (
                mapping.event_vi,
                format!("Đã hết cảnh báo — {}: {}", mapping.event_vi, a.key),
            ),
            (false, false) => (mapping.event_en, format!("{}: {}", mapping.event_en, a.key)),
            (false, true) => (
                mapping.event_en,
                format!("All clear — {}: {}", mapping.event_en, a.key),
            ),
        };
        let mut parameters = Map::new();
        parameters.push("watchfloor:rule", a.rule.clone());
        parameters.push("watchfloor:alert_id", a.alert_id.clone());
        parameters.push("watchfloor:transition", line.event.clone());
        if let Some(v) = a.value {
            parameters.push("watchfloor:value", format!("{v}"));
        }
        let mut codes = Map::new();
        codes.push("watchfloor:rule", a.rule.clone());
        Ok(Info {
            language: (if vi { "vi-VN" } else { "en-US" })
                .parse()
                .map_err(|e| format!("language: {e}"))?,
            categories: vec![mapping.category],
            event: event.to_string(),
            response_type: vec![if end {
                ResponseType::AllClear
            } else {
                mapping.response
            }],
            urgency: if end { Urgency::Past } else { mapping.urgency },
            severity: super::mapping::severity(a.severity),
            certainty: mapping.certainty,
            audience: None,
            event_codes: codes,
            effective: Some(sent(line.at)?),
            onset: Some(sent(a.fired_at)?),
            expires: None,
            sender_name: Some(sender.sender_name.clone()),
            headline: Some(one_line(&headline)),
            description: Some(one_line(&format!("{} ({})", a.message, line.detail))),
            instruction: None,
            web: None,
            contact: None,
            parameters,
            resources: Vec::new(),
            areas: vec![area(vi)?],
        })
    };
    Ok(Alert {
        identifier: id(identifier(line))?,
        sender: sender_id,
        sent: sent(line.at)?,
        status: if exercise.is_some() {
            Status::Exercise
        } else {
            Status::Actual
        },
        message_type,
        source: Some("Watchfloor".into()),
        scope: Scope::Public,
        restriction: None,
        addresses: None,
        codes: Vec::new(),
        note: exercise.map(|x| format!("exercise {x}")),
        references: (!references.is_empty()).then(|| References::from(references)),
        incidents: None,
        info: vec![info(true)?, info(false)?],
    })
}
