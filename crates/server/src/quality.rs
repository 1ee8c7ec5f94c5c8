//! `GET /api/quality`: the "đúng, đủ, sạch, sống" data-quality index of the caller's
//! stations, pooled per commune, sector and the city, for a day (`date=YYYY-MM-DD`, default
//! today), a month (`month=YYYY-MM`) or a year (`year=YYYY`), as JSON or CSV (the province's
//! assessment export). Days still in memory come from the live ledger; older ones from the
//! store's `quality_daily` (without a store: the days in memory only). Definitions:
//! `watchfloor_quality` and docs/indicators.md.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use watchfloor_model::{day_number, day_text, local_day};
use watchfloor_quality::{indices, Counts, Index, Tally};

use crate::api::{error, ApiError, Authed};
use crate::hub::now_ms;
use crate::AppState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct QualityQuery {
    date: Option<String>,
    month: Option<String>,
    year: Option<String>,
    level: Option<String>,
    format: Option<String>,
}

/// The local days a query covers, and its label.
fn days_of(q: &QualityQuery, now: i64) -> Result<(i64, i64, String), String> {
    let today = local_day(now);
    match (&q.date, &q.month, &q.year) {
        (None, None, None) => Ok((today, today, day_text(today))),
        (Some(d), None, None) => {
            let day =
                day_number(d).ok_or_else(|| format!("`date` must be YYYY-MM-DD, not `{d}`"))?;
            Ok((day, day, d.clone()))
        }
        (None, Some(m), None) => {
            let first = day_number(&format!("{m}-01"))
                .filter(|_| m.len() == 7)
                .ok_or_else(|| format!("`month` must be YYYY-MM, not `{m}`"))?;
            let mut last = first;
            while day_text(last + 1).starts_with(m.as_str()) {
                last += 1;
            }
            Ok((first, last.min(today), m.clone()))
        }
        (None, None, Some(y)) => {
            let first = day_number(&format!("{y}-01-01"))
                .filter(|_| y.len() == 4)
                .ok_or_else(|| format!("`year` must be YYYY, not `{y}`"))?;
            let last = day_number(&format!("{y}-12-31")).unwrap_or(first);
            Ok((first, last.min(today), y.clone()))
        }
        _ => Err("give one of `date`, `month` or `year`".into()),
    }
}

/// A stored station-day as counts.
fn counts_of(r: &watchfloor_store::QualityRow) -> Counts {
    let n = |v: i64| v.max(0) as u64;
    Counts::restored(
        Tally {
            messages: n(r.messages),
            accepted: n(r.accepted),
            valid: n(r.valid),
            duplicates: n(r.duplicates),
            rejected: n(r.rejected),
            on_time: n(r.on_time),
        },
        r.delay_median_ms,
    )
}

/// A station-day as stored.
fn row_of(day: i64, station: &str, c: &Counts) -> watchfloor_store::QualityRow {
    let t = &c.tally;
    watchfloor_store::QualityRow {
        station: station.to_string(),
        day: day_text(day),
        messages: t.messages as i64,
        accepted: t.accepted as i64,
        valid: t.valid as i64,
        duplicates: t.duplicates as i64,
        rejected: t.rejected as i64,
        on_time: t.on_time as i64,
        delay_median_ms: c.delay_median_ms(),
    }
}

pub(crate) async fn quality(
    State(s): State<AppState>,
    Authed(who): Authed,
    crate::extract::Q(q): crate::extract::Q<QualityQuery>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let (first, last, label) = days_of(&q, now).map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
    let level = q.level.as_deref();
    if level.is_some_and(|l| !["station", "commune", "sector", "city"].contains(&l)) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "`level` is station, commune, sector or city",
        ));
    }
    let csv = crate::api::wants_csv(q.format.as_deref())?;
    let city = s
        .hub
        .city()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no city registry loaded"))?;
    // Stored days first, then the ledger's (newer) counts over them.
    let mut days: BTreeMap<(i64, String), Counts> = BTreeMap::new();
    if let Some(store) = s.hub.store() {
        let rows = store
            .store()
            .quality_days(&day_text(first), &day_text(last))
            .await
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        for r in rows {
            if let Some(day) = day_number(&r.day) {
                days.insert((day, r.station.clone()), counts_of(&r));
            }
        }
    }
    {
        let ledger = s.hub.quality();
        for day in first..=last {
            for (station, c) in ledger.day(day) {
                days.insert((day, station.to_string()), c.clone());
            }
        }
    }
    // The days the centre ran: those with any counts (and today).
    let ran: std::collections::BTreeSet<i64> = days
        .keys()
        .map(|(d, _)| *d)
        .chain(std::iter::once(local_day(now)))
        .collect();
    let mut rows: Vec<Index> = indices(
        &city,
        first..=last,
        now,
        |day, station| days.get(&(day, station.to_string())),
        |day| ran.contains(&day),
        |st| who.sees(st.ward.as_deref(), st.district.as_deref(), &st.sectors),
    );
    if let Some(level) = level {
        rows.retain(|r| r.level == level);
    }
    // Worst first within each level (the city's row stays on top).
    rows.sort_by(|a, b| {
        let order = |l: &str| {
            ["city", "sector", "commune", "station"]
                .iter()
                .position(|x| *x == l)
        };
        order(a.level)
            .cmp(&order(b.level))
            .then(
                a.index
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.index.unwrap_or(f64::INFINITY)),
            )
            .then(a.id.cmp(&b.id))
    });
    if csv {
        return Ok(csv_response(&label, &rows));
    }
    Ok(axum::Json(serde_json::json!({
        "period": label,
        "from": day_text(first),
        "to": day_text(last),
        "rows": rows,
    }))
    .into_response())
}

fn csv_response(label: &str, rows: &[Index]) -> Response {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = String::from(
        "period,level,id,name,stations,messages,accepted,expected,dung,du,sach,song,delay_median_s,index\n",
    );
    for r in rows {
        let name = r.name.replace('"', "\"\"");
        out += &format!(
            "{label},{},{},\"{name}\",{},{},{},{},{},{},{},{},{},{}\n",
            r.level,
            r.id,
            r.stations,
            r.messages,
            r.accepted,
            r.expected,
            opt(r.dung),
            opt(r.du),
            opt(r.sach),
            opt(r.song),
            opt(r.delay_median_s),
            opt(r.index)
        );
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"watchfloor-quality-{label}.csv\""),
            ),
        ],
        out,
    )
        .into_response()
}

/// Puts the store's counts of the days the ledger keeps back into it (at start), so a
/// restart neither loses the day's counts nor overwrites them with smaller ones.
pub(crate) async fn restore_days(
    s: &crate::hub::Hub,
) -> Result<usize, watchfloor_store::StoreError> {
    let Some(writer) = s.store() else {
        return Ok(0);
    };
    let today = local_day(now_ms());
    let first = today - watchfloor_quality::DAYS_KEPT + 1;
    let rows = writer
        .store()
        .quality_days(&day_text(first), &day_text(today))
        .await?;
    let mut ledger = s.quality();
    for r in &rows {
        if let Some(day) = day_number(&r.day) {
            ledger.restore(day, &r.station, counts_of(r));
        }
    }
    Ok(rows.len())
}

/// Writes the ledger's station-days and today's indicator values to the store.
pub(crate) async fn persist_days(s: &crate::hub::Hub) {
    let Some(writer) = s.store() else {
        return;
    };
    let store = writer.store().clone();
    let quality: Vec<watchfloor_store::QualityRow> = s
        .quality()
        .all()
        .map(|(day, station, c)| row_of(day, station, c))
        .collect();
    if let Err(e) = store.upsert_quality(&quality).await {
        tracing::warn!(error = %e, "could not store the day's quality counts; next minute again");
    }
    let day = day_text(local_day(now_ms()));
    let indicators: Vec<watchfloor_store::IndicatorDayRow> = s
        .kpis()
        .iter()
        .flat_map(|row| {
            let day = day.clone();
            row.indicators
                .iter()
                .map(move |v| watchfloor_store::IndicatorDayRow {
                    day: day.clone(),
                    indicator: v.id.clone(),
                    zone: row.zone.clone(),
                    view: row.view.clone(),
                    value: v.value,
                    band: v.band.map(str::to_string),
                })
        })
        .collect();
    if let Err(e) = store.upsert_indicator_days(&indicators).await {
        tracing::warn!(error = %e, "could not store the day's indicator values; next minute again");
    }
}
