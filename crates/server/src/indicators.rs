//! `GET /api/indicators` (the definitions the caller's sector view shows) and
//! `POST /api/indicators/reload` (admin: validate the indicator directory, swap the set in
//! keeping the history of every indicator that did not change; a broken set changes
//! nothing and answers 422 with the `file:line` reasons).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::api::{error, ApiError, Authed};
use crate::AppState;

pub(crate) async fn list(
    State(s): State<AppState>,
    Authed(who): Authed,
) -> Json<serde_json::Value> {
    let set = s.hub.indicator_set();
    let sectors = who.sectors.clone();
    let shown: Vec<serde_json::Value> = set
        .indicators
        .iter()
        .filter(|i| {
            i.sector
                .as_ref()
                .is_none_or(|sec| sectors.as_ref().is_none_or(|mine| mine.contains(sec)))
        })
        .map(|i| {
            json!({
                "id": i.id, "name": {"vi": i.name_vi, "en": i.name_en}, "unit": i.unit,
                "owner": {"vi": i.owner.0, "en": i.owner.1}, "sector": i.sector, "period": i.period,
                "target": i.target, "bands": i.bands, "scopes": i.scopes,
            })
        })
        .collect();
    let sector_names = s.hub.city().map(|c| json!(c.sectors)).unwrap_or(json!([]));
    Json(json!({"indicators": shown, "sectors": sector_names, "view": who.sector_view()}))
}

/// Loads the centre's indicator set: its directory, or the shipped default.
pub fn load(
    dir: Option<&std::path::Path>,
    city: Option<&watchfloor_city::City>,
) -> Result<watchfloor_indicators::IndicatorSet, watchfloor_engine::RuleErrors> {
    let sectors: Vec<String> = city
        .map(|c| c.sectors.all().iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    match dir {
        Some(dir) => watchfloor_indicators::IndicatorSet::load_dir(dir, &sectors),
        None => watchfloor_indicators::default_set(&sectors),
    }
}

pub(crate) async fn reload(
    State(s): State<AppState>,
    Authed(who): Authed,
) -> Result<Response, ApiError> {
    if !who.is_city_admin() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "only an admin of the whole city may reload indicators",
        ));
    }
    let city = s.hub.city();
    match load(s.indicators_dir.as_deref(), city.as_deref()) {
        Err(errors) => {
            let reasons: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            s.hub.audit(
                &who.name,
                "reload rejected",
                "indicators",
                json!({"reasons": reasons}),
            );
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"applied": false, "reasons": reasons})),
            )
                .into_response())
        }
        Ok(set) => {
            let count = set.indicators.len();
            let (kept, reset) = s.hub.set_indicators(set);
            let detail = json!({"indicators": count, "history_kept": kept, "history_reset": reset});
            s.hub
                .audit(&who.name, "reload", "indicators", detail.clone());
            let mut answer = detail;
            answer["applied"] = json!(true);
            Ok(Json(answer).into_response())
        }
    }
}
