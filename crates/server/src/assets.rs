//! The wall-screen dashboard (`web-dashboard/`), compiled into the binary so the demo is one
//! process that works offline (Leaflet and uPlot are vendored; no CDN).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

macro_rules! asset {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../web-dashboard/", $name)).as_slice(),
        )
    };
}

const ASSETS: [(&str, &[u8]); 15] = [
    asset!("index.html"),
    asset!("app.js"),
    asset!("history.js"),
    asset!("quality.js"),
    asset!("alerts.js"),
    asset!("map.js"),
    asset!("stations.js"),
    asset!("trust.js"),
    asset!("runs.js"),
    asset!("drills.js"),
    asset!("style.css"),
    asset!("vendor/leaflet.js"),
    asset!("vendor/leaflet.css"),
    asset!("vendor/uPlot.iife.min.js"),
    asset!("vendor/uPlot.min.css"),
];

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve_asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _)| *n == name) {
        Some((n, bytes)) => ([(header::CONTENT_TYPE, content_type(n))], *bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve_asset("index.html") }))
        .route(
            "/assets/*path",
            get(|Path(path): Path<String>| async move { serve_asset(&path) }),
        )
}
