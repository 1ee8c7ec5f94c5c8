//! The command-centre surface: a WebSocket API (`/ws`) and a REST API (`/api/…`) over a
//! running pipeline, with bearer tokens, roles and ward/district/city scopes, live KPIs,
//! `/metrics`, and the wall-screen dashboard (`web-dashboard/`, compiled into the binary).
//!
//! The server never blocks the engine: it sees the stream through [`Hub`] (a
//! [`watchfloor_pipeline::PipelineObserver`]) and steers the engine through
//! [`watchfloor_pipeline::EngineCommand`]s. Protocol: `docs/api.md`.

mod api;
mod ask;
mod assets;
pub mod auth;
pub mod drills;
mod extract;
pub mod feeds;
pub mod hub;
pub mod indicators;
pub mod kpi;
pub mod limits;
mod persist;
pub mod playbooks;
pub mod privacy;
mod quality;
mod report;
mod screen;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::mpsc;
use watchfloor_pipeline::{EngineCommand, PipelineStats};

pub use auth::{token_hash_hex, Account, Accounts, Role, Scope};
pub use hub::{Channel, Hub};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The live picture.
    pub hub: Arc<Hub>,
    /// Who may log in.
    pub accounts: Arc<Accounts>,
    /// Commands for the engine.
    pub commands: mpsc::Sender<EngineCommand>,
    /// The rule directory reloads read.
    pub rules_dir: PathBuf,
    /// The indicator directory (`None`: the shipped default set).
    pub indicators_dir: Option<PathBuf>,
    /// The pipeline's counters, for `/metrics`.
    pub stats: Arc<PipelineStats>,
}

/// `/metrics` alone, for a listener of its own (`[server] metrics_listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(api::metrics))
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// Serves [`metrics_router`] on `listener` until `shutdown`.
pub async fn serve_metrics(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_http1(listener, metrics_router(state), shutdown).await
}

/// The HTTP application: API, WebSocket, metrics and dashboard.
pub fn router(state: AppState) -> Router {
    router_with(state, true)
}

/// [`router`], with or without the dashboard's pages.
pub fn router_with(state: AppState, dashboard: bool) -> Router {
    router_routes(dashboard)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limits::MAX_BODY_BYTES))
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers on every answer: no sniffing of content types, no framing (clickjacking), no
/// referrer, and a content-security policy that lets the dashboard load only its own
/// scripts, styles and connections.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::header::{self, HeaderValue};
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    response
}

/// Unknown paths and methods answer the documented JSON error too.
async fn not_found() -> api::ApiError {
    api::error(axum::http::StatusCode::NOT_FOUND, "no such path")
}

async fn method_not_allowed() -> api::ApiError {
    api::error(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method",
    )
}

fn router_routes(dashboard: bool) -> Router<AppState> {
    let app = api::routes()
        .merge(ws::routes())
        .merge(playbooks::routes())
        .merge(drills::routes())
        .merge(feeds::routes());
    let app = if dashboard {
        app.merge(assets::routes())
    } else {
        app
    };
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves; refreshes the KPIs
/// once a second (the conflation rate of the KPI channel).
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(state, listener, true, shutdown).await
}

/// [`serve`], with or without the dashboard's pages.
pub async fn serve_with(
    state: AppState,
    listener: tokio::net::TcpListener,
    dashboard: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let state_hub = state.hub.clone();
    let kpis = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            hub.refresh_kpis();
            ticks += 1;
            // Once a minute: the day's quality counts and indicator values to the store.
            if ticks.is_multiple_of(60) {
                quality::persist_days(&hub).await;
            }
        }
    });
    let result = serve_http1(listener, router_with(state, dashboard), shutdown).await;
    kpis.abort();
    // The minute's quality counts and indicator values, kept on a clean stop.
    quality::persist_days(&state_hub).await;
    result
}

/// Serves `app` over HTTP/1.1 (WebSocket upgrades included) until `shutdown`: a
/// connection whose request headers do not arrive within [`limits::HEADER_TIMEOUT`] is
/// closed (slowloris), then open connections get up to 10 s to finish.
async fn serve_http1(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let open = std::sync::Arc::new(());
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing.clone();
        let token = open.clone();
        tokio::spawn(async move {
            let _token = token;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits::HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { let _ = closing.wait_for(|c| *c).await.map(|_| ()); } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::sync::Arc::strong_count(&open) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
