//! `GET /api/reports/daily?date=YYYY-MM-DD&zone=<id>&format=json|csv`: one day's figures
//! per ward (and per district, and for the caller's whole scope) from the incident store —
//! the "live KPI set that replaces paper reports". The day is the city's (UTC+7).
//!
//! Figures, per zone: alerts fired that day by pack and by severity; how many were
//! acknowledged and resolved; time to acknowledge and to resolve (median and 90th
//! percentile, minutes, over the alerts that were); discharge compliance (share of the
//! zone's discharge stations with no discharge alert that day); stations on time (share of
//! the zone's stations with no silence alert — a rule with `absence` — open at any moment
//! of the day: fired before its end and not resolved before its start; one that fired more
//! than [`SILENCE_LOOKBACK_MS`] before the day is seen only while it is still open). Scoped
//! like every answer: a ward operator's report holds their ward only.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use watchfloor_model::{Kind, DAY_MS};
use watchfloor_store::{AlertQuery, AlertRow};

use crate::api::{error, ApiError, Authed};
use crate::auth::{Account, Scope};
use crate::AppState;

/// How far before the day silence alerts are looked for (older ones: only if still open).
const SILENCE_LOOKBACK_MS: i64 = 7 * DAY_MS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    date: String,
    zone: Option<String>,
    format: Option<String>,
}

/// One zone's figures for the day.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ZoneReport {
    zone: String,
    level: &'static str,
    alerts: usize,
    by_pack: BTreeMap<String, usize>,
    by_severity: BTreeMap<String, usize>,
    acknowledged: usize,
    resolved: usize,
    ack_minutes_median: Option<f64>,
    ack_minutes_p90: Option<f64>,
    resolve_minutes_median: Option<f64>,
    resolve_minutes_p90: Option<f64>,
    discharge_stations: usize,
    discharge_compliant_pct: Option<f64>,
    stations: usize,
    stations_on_time_pct: Option<f64>,
    #[serde(skip)]
    silent: std::collections::BTreeSet<String>,
    #[serde(skip)]
    ack_minutes: Vec<f64>,
    #[serde(skip)]
    resolve_minutes: Vec<f64>,
    #[serde(skip)]
    discharge_in_breach: std::collections::BTreeSet<String>,
}

/// Midnight (UTC+7) of `date`, epoch ms.
fn day_start(date: &str) -> Option<i64> {
    watchfloor_model::day_number(date).map(watchfloor_model::local_day_start)
}

/// The `q` quantile (0–1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some((sorted[rank - 1] * 10.0).round() / 10.0)
}

impl ZoneReport {
    fn add(&mut self, a: &AlertRow) {
        self.alerts += 1;
        let pack = a
            .labels
            .get("pack")
            .cloned()
            .unwrap_or_else(|| "other".into());
        *self.by_pack.entry(pack.clone()).or_default() += 1;
        *self
            .by_severity
            .entry(a.severity.as_str().into())
            .or_default() += 1;
        if let Some((_, at, _)) = &a.ack {
            self.acknowledged += 1;
            self.ack_minutes
                .push((at - a.fired_at).max(0) as f64 / 60_000.0);
        }
        if let Some(at) = a.resolved_at {
            self.resolved += 1;
            self.resolve_minutes
                .push((at - a.fired_at).max(0) as f64 / 60_000.0);
        }
        if pack == "discharge" && a.kind.as_deref() == Some("discharge") {
            self.discharge_in_breach.insert(a.key.clone());
        }
    }

    fn finish(&mut self) {
        for v in [&mut self.ack_minutes, &mut self.resolve_minutes] {
            v.sort_by(f64::total_cmp);
        }
        self.ack_minutes_median = quantile(&self.ack_minutes, 0.5);
        self.ack_minutes_p90 = quantile(&self.ack_minutes, 0.9);
        self.resolve_minutes_median = quantile(&self.resolve_minutes, 0.5);
        self.resolve_minutes_p90 = quantile(&self.resolve_minutes, 0.9);
        if self.discharge_stations > 0 {
            let ok = self.discharge_stations
                - self.discharge_in_breach.len().min(self.discharge_stations);
            self.discharge_compliant_pct =
                Some((1000.0 * ok as f64 / self.discharge_stations as f64).round() / 10.0);
        }
        if self.stations > 0 {
            let ok = self.stations - self.silent.len().min(self.stations);
            self.stations_on_time_pct =
                Some((1000.0 * ok as f64 / self.stations as f64).round() / 10.0);
        }
    }
}

/// The zones a caller's report covers: (id, level), the scope's own first.
fn zones_for(
    s: &AppState,
    who: &Account,
    filter: Option<&str>,
) -> Vec<(String, &'static str, Option<String>)> {
    let Some(city) = s.hub.city() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Communes/wards, then the legacy districts they name (legacy data only: the tier was
    // abolished; district polygons of old files count the same).
    let mut districts: Vec<String> = Vec::new();
    for z in &city.zones.zones {
        let (level, ward, district) = match z.level {
            watchfloor_city::ZoneLevel::Ward => ("ward", Some(z.id.as_str()), z.district.clone()),
            _ => ("district", None, Some(z.id.clone())),
        };
        if level == "district" {
            if !districts.contains(&z.id) {
                districts.push(z.id.clone());
            }
            continue;
        }
        if let Some(d) = &district {
            if !districts.contains(d) {
                districts.push(d.clone());
            }
        }
        let wanted = filter.is_none_or(|f| f == z.id || district.as_deref() == Some(f));
        if who.sees_area(ward, district.as_deref()) && wanted {
            out.push((z.id.clone(), level, district));
        }
    }
    for d in districts {
        if who.sees_area(None, Some(&d)) && filter.is_none_or(|f| f == d) {
            out.push((d, "district", None));
        }
    }
    out
}

pub(crate) async fn daily(
    State(s): State<AppState>,
    Authed(who): Authed,
    crate::extract::Q(q): crate::extract::Q<ReportQuery>,
) -> Result<Response, ApiError> {
    let from = day_start(&q.date).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("`date` must be YYYY-MM-DD, not `{}`", q.date),
        )
    })?;
    let csv = crate::api::wants_csv(q.format.as_deref())?;
    let store = s
        .hub
        .store()
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "reports need the incident store ([store])",
            )
        })?
        .store()
        .clone();
    let zones = zones_for(&s, &who, q.zone.as_deref());
    if zones.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            "no zone in your scope matches",
        ));
    }
    let mut reports: BTreeMap<String, ZoneReport> = zones
        .iter()
        .map(|(id, level, _)| {
            (
                id.clone(),
                ZoneReport {
                    zone: id.clone(),
                    level,
                    ..ZoneReport::default()
                },
            )
        })
        .collect();
    let mut total = ZoneReport {
        zone: "total".into(),
        level: "scope",
        ..ZoneReport::default()
    };
    if let Some(city) = s.hub.city() {
        for st in city
            .stations
            .iter()
            .filter(|st| who.sees_sectors(&st.sectors))
        {
            let discharge = usize::from(st.kind == Kind::Discharge);
            let mut counted = false;
            for z in [st.ward.as_deref(), st.district.as_deref()]
                .into_iter()
                .flatten()
            {
                if let Some(r) = reports.get_mut(z) {
                    r.discharge_stations += discharge;
                    r.stations += 1;
                    counted = true;
                }
            }
            if counted {
                total.discharge_stations += discharge;
                total.stations += 1;
            }
        }
    }
    // The day's alerts in scope.
    let day = AlertQuery {
        from: Some(from),
        to: Some(from + DAY_MS),
        ..AlertQuery::default()
    };
    each_alert(&store, day, &who, |a| {
        let mut counted = false;
        for z in [a.ward.as_deref(), a.district.as_deref()]
            .into_iter()
            .flatten()
        {
            if let Some(r) = reports.get_mut(z) {
                r.add(&a);
                counted = true;
            }
        }
        if counted {
            total.add(&a);
        }
    })
    .await?;
    for a in silence_alerts(&s, &store, &who, from).await? {
        let mut counted = false;
        for z in [a.ward.as_deref(), a.district.as_deref()]
            .into_iter()
            .flatten()
        {
            if let Some(r) = reports.get_mut(z) {
                r.silent.insert(a.key.clone());
                counted = true;
            }
        }
        if counted {
            total.silent.insert(a.key.clone());
        }
    }
    let mut rows: Vec<ZoneReport> = reports.into_values().collect();
    rows.push(total);
    for r in &mut rows {
        r.finish();
    }
    // The day's indicator values of the caller's sector view, for its zones.
    let wanted: std::collections::BTreeSet<&str> = zones
        .iter()
        .map(|(id, _, _)| id.as_str())
        .chain(matches!(who.scope, Scope::City).then_some("city"))
        .collect();
    let mut indicators: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    for r in store
        .indicator_days(&q.date, &who.sector_view())
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    {
        if wanted.contains(r.zone.as_str()) {
            indicators.entry(r.zone).or_default().insert(
                r.indicator,
                serde_json::json!({"value": r.value, "band": r.band}),
            );
        }
    }
    if csv {
        return Ok(csv_response(&q.date, &rows, &indicators));
    }
    let playbooks = crate::playbooks::report::day(&store, &who, from)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(axum::Json(serde_json::json!({
        "date": q.date,
        "utc_offset_hours": 7,
        "zones": rows,
        "indicators": indicators,
        "playbooks": playbooks,
    }))
    .into_response())
}

/// The silence alerts (of rules with `absence`) in `who`'s scope open at some moment of
/// the day starting at `from`.
async fn silence_alerts(
    s: &AppState,
    store: &watchfloor_store::Store,
    who: &Account,
    from: i64,
) -> Result<Vec<AlertRow>, ApiError> {
    let (rules, _) = watchfloor_city::load_rules(&s.rules_dir)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut found = BTreeMap::new();
    for rule in rules.rules.iter().filter(|r| r.absence_ms.is_some()) {
        // Fired within the look-back, any state; and any still open that fired before.
        for (since, state) in [
            (Some(from - SILENCE_LOOKBACK_MS), None),
            (None, Some("open")),
        ] {
            let query = AlertQuery {
                from: since,
                to: Some(from + DAY_MS),
                rule: Some(rule.id.clone()),
                state: state.map(str::to_string),
                ..AlertQuery::default()
            };
            each_alert(store, query, who, |a| {
                if a.resolved_at.is_none_or(|at| at >= from) {
                    found.insert(a.alert_id.clone(), a);
                }
            })
            .await?;
        }
    }
    Ok(found.into_values().collect())
}

/// Calls `each` on every alert `query` matches within `who`'s area and sectors, a page of
/// 1,000 at a time (a storm's day is never all in memory).
async fn each_alert(
    store: &watchfloor_store::Store,
    mut query: AlertQuery,
    who: &Account,
    mut each: impl FnMut(AlertRow),
) -> Result<(), ApiError> {
    query.limit = 1000;
    scope_query(&mut query, who);
    loop {
        let page = store
            .query(&query)
            .await
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        // A drill's alerts are in its after-action report, not in the day's.
        page.alerts
            .into_iter()
            .filter(|a| !a.labels.contains_key(watchfloor_model::EXERCISE_LABEL))
            .for_each(&mut each);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Limits a store query to `who`'s area and sectors.
pub(crate) fn scope_query(query: &mut AlertQuery, who: &Account) {
    match &who.scope {
        Scope::City => {}
        Scope::District(d) => query.district = Some(d.clone()),
        Scope::Communes(ids) => query.wards = ids.clone(),
    }
    query.sectors = who.sectors.clone();
}

fn csv_response(
    date: &str,
    rows: &[ZoneReport],
    indicators: &BTreeMap<String, BTreeMap<String, serde_json::Value>>,
) -> Response {
    let ids: std::collections::BTreeSet<&String> =
        indicators.values().flat_map(|z| z.keys()).collect();
    let packs: std::collections::BTreeSet<&String> =
        rows.iter().flat_map(|r| r.by_pack.keys()).collect();
    let severities = ["info", "minor", "major", "critical"];
    let mut out = String::from("date,zone,level,alerts");
    for p in &packs {
        out += &format!(",pack_{p}");
    }
    for s in severities {
        out += &format!(",severity_{s}");
    }
    out += ",acknowledged,resolved,ack_minutes_median,ack_minutes_p90,resolve_minutes_median,resolve_minutes_p90,discharge_stations,discharge_compliant_pct,stations,stations_on_time_pct";
    for id in &ids {
        out += &format!(",indicator_{id}");
    }
    out.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        out += &format!("{date},{},{},{}", r.zone, r.level, r.alerts);
        for p in &packs {
            out += &format!(",{}", r.by_pack.get(*p).copied().unwrap_or(0));
        }
        for s in severities {
            out += &format!(",{}", r.by_severity.get(s).copied().unwrap_or(0));
        }
        out += &format!(
            ",{},{},{},{},{},{},{},{},{},{}",
            r.acknowledged,
            r.resolved,
            opt(r.ack_minutes_median),
            opt(r.ack_minutes_p90),
            opt(r.resolve_minutes_median),
            opt(r.resolve_minutes_p90),
            r.discharge_stations,
            opt(r.discharge_compliant_pct),
            r.stations,
            opt(r.stations_on_time_pct)
        );
        let zone = if r.zone == "total" {
            "city"
        } else {
            r.zone.as_str()
        };
        for id in &ids {
            let v = indicators
                .get(zone)
                .and_then(|z| z.get(*id))
                .and_then(|v| v["value"].as_f64());
            out += &format!(",{}", opt(v));
        }
        out.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"watchfloor-{date}.csv\""),
            ),
        ],
        out,
    )
        .into_response()
}
