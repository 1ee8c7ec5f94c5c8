//! How a rule pack's alerts read in CAP terms: the category, the event's name in
//! Vietnamese and English, urgency, certainty and the response expected; and the
//! severity mapping (critical → Extreme, major → Severe, minor → Moderate, info → Minor).
//!
//! Invariants: every shipped pack has an entry; a pack not listed here (a city's own) is
//! `Other` with the rule id as its event; camera rules map by what the camera saw.

use oasiscap::v1dot2::{Category, Certainty, ResponseType, Severity as CapSeverity, Urgency};
use watchfloor_model::Severity;

/// The CAP reading of one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub category: Category,
    pub event_vi: &'static str,
    pub event_en: &'static str,
    pub urgency: Urgency,
    pub certainty: Certainty,
    pub response: ResponseType,
}

/// The mapping of an alert of `rule` in `pack` at `severity`.
pub fn map(pack: Option<&str>, rule: &str, severity: Severity) -> Mapping {
    let urgent = if severity >= Severity::Major {
        Urgency::Immediate
    } else {
        Urgency::Expected
    };
    let m = |category, event_vi, event_en, urgency, certainty, response| Mapping {
        category,
        event_vi,
        event_en,
        urgency,
        certainty,
        response,
    };
    match (pack, rule) {
        (Some("air"), _) => m(
            Category::Env,
            "Ô nhiễm không khí",
            "Air pollution",
            urgent,
            Certainty::Observed,
            ResponseType::Avoid,
        ),
        (Some("discharge"), _) => m(
            Category::Env,
            "Nước thải vượt quy chuẩn QCVN 40",
            "Wastewater discharge over the QCVN 40 limit",
            Urgency::Expected,
            Certainty::Observed,
            ResponseType::Monitor,
        ),
        (Some("flood"), r) if r.contains("forecast") || r.contains("trend") => m(
            Category::Met,
            "Dự báo mực nước lên báo động",
            "River level forecast to reach an alarm level",
            Urgency::Future,
            Certainty::Likely,
            ResponseType::Prepare,
        ),
        (Some("flood"), _) => m(
            Category::Met,
            "Mực nước sông vượt mức báo động",
            "River level above an alarm level",
            urgent,
            Certainty::Observed,
            ResponseType::Prepare,
        ),
        (Some("camera"), "camera_fire_smoke") => m(
            Category::Fire,
            "Phát hiện khói, lửa",
            "Fire or smoke detected",
            Urgency::Immediate,
            Certainty::Likely,
            ResponseType::Avoid,
        ),
        (Some("camera"), "camera_road_flooding") => m(
            Category::Met,
            "Ngập đường",
            "Road flooding",
            Urgency::Immediate,
            Certainty::Likely,
            ResponseType::Avoid,
        ),
        (Some("camera"), "camera_accident") => m(
            Category::Transport,
            "Tai nạn giao thông",
            "Traffic accident",
            Urgency::Immediate,
            Certainty::Likely,
            ResponseType::Avoid,
        ),
        (Some("camera"), "camera_wrong_way") => m(
            Category::Transport,
            "Phương tiện đi ngược chiều",
            "Wrong-way vehicle",
            Urgency::Immediate,
            Certainty::Likely,
            ResponseType::Avoid,
        ),
        (Some("camera"), _) => m(
            Category::Transport,
            "Ùn tắc giao thông",
            "Traffic congestion",
            Urgency::Expected,
            Certainty::Likely,
            ResponseType::Avoid,
        ),
        (Some("corroboration"), _) => m(
            Category::Fire,
            "Cháy đã được xác nhận",
            "Confirmed fire",
            Urgency::Immediate,
            Certainty::Observed,
            ResponseType::Avoid,
        ),
        (Some("traffic"), _) => m(
            Category::Transport,
            "Ùn tắc giao thông",
            "Traffic congestion",
            Urgency::Expected,
            Certainty::Observed,
            ResponseType::Avoid,
        ),
        (Some("station_health"), _) => m(
            Category::Infra,
            "Sự cố trạm quan trắc",
            "Monitoring station fault",
            Urgency::Expected,
            Certainty::Observed,
            ResponseType::Monitor,
        ),
        _ => m(
            Category::Other,
            "Cảnh báo",
            "Alert",
            urgent,
            Certainty::Unknown,
            ResponseType::Monitor,
        ),
    }
}

/// Watchfloor's severity in CAP terms.
pub fn severity(s: Severity) -> CapSeverity {
    match s {
        Severity::Critical => CapSeverity::Extreme,
        Severity::Major => CapSeverity::Severe,
        Severity::Minor => CapSeverity::Moderate,
        Severity::Info => CapSeverity::Minor,
    }
}
