//! `watchfloor drill …`: a drill leader's commands against a running centre (`run` or
//! `demo`), through its API: start a script, list drills, pause, resume, end or abort
//! one, and fetch its after-action report. The token comes from `--token` or
//! `WATCHFLOOR_TOKEN`; only admin and drill-leader tokens may start or steer.
//!
//! Invariants: nothing here changes a drill but the centre (the script is sent as text,
//! checked and pinned there); an answer other than 2xx exits non-zero with the centre's
//! JSON error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

/// Where the centre is and who asks.
#[derive(Args, Debug)]
pub struct Connection {
    /// The centre's address.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// Bearer token (default: the WATCHFLOOR_TOKEN environment variable).
    #[arg(long, global = true)]
    pub token: Option<String>,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum DrillAction {
    /// Start a drill script (checked by the centre against its city, rules and playbooks).
    Start {
        /// The script (e.g. drills/flood.yaml).
        file: PathBuf,
        /// Drill minutes per wall minute (a dry run: 10).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// The drills (or one drill).
    Status {
        /// A drill's exercise id.
        id: Option<String>,
    },
    /// Stop a drill's clock.
    Pause { id: String },
    /// Restart a paused drill's clock where it stopped.
    Resume { id: String },
    /// End a drill now and write its report.
    End { id: String },
    /// Abort a drill: injects stop, its alerts and runs are closed as aborted.
    Abort { id: String },
    /// A drill's after-action report (JSON).
    Report { id: String },
}

/// Runs a `watchfloor drill` command.
pub fn run(connection: &Connection, action: &DrillAction) -> Result<ExitCode> {
    let token = connection
        .token
        .clone()
        .or_else(|| std::env::var("WATCHFLOOR_TOKEN").ok())
        .context("no token: give --token or set WATCHFLOOR_TOKEN")?;
    let base = connection.server.trim_end_matches('/');
    let (method, path, body) = match action {
        DrillAction::Start { file, speed } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body = json!({"file": file.display().to_string(), "text": text, "speed": speed});
            ("POST", "/api/drills".to_string(), Some(body))
        }
        DrillAction::Status { id: None } => ("GET", "/api/drills".into(), None),
        DrillAction::Status { id: Some(id) } => ("GET", format!("/api/drills/{id}"), None),
        DrillAction::Pause { id } => ("POST", format!("/api/drills/{id}/pause"), None),
        DrillAction::Resume { id } => ("POST", format!("/api/drills/{id}/resume"), None),
        DrillAction::End { id } => ("POST", format!("/api/drills/{id}/end"), None),
        DrillAction::Abort { id } => ("POST", format!("/api/drills/{id}/abort"), None),
        DrillAction::Report { id } => ("GET", format!("/api/drills/{id}/report"), None),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, answer) = runtime.block_on(request(method, base, &path, &token, body))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if (200..300).contains(&status) {
        if let (DrillAction::Start { .. }, Some(id)) = (action, answer["id"].as_str()) {
            eprintln!("drill {id} started");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("the centre answered {status}");
        Ok(ExitCode::FAILURE)
    }
}

/// One HTTP/1.1 request to `base` (`http://host:port`): the status and the JSON answer.
async fn request(
    method: &str,
    base: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let authority = base
        .strip_prefix("http://")
        .context("--server must be http://host:port (put TLS in front of the centre)")?;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let collected = response.into_body().collect().await?.to_bytes();
    let answer = serde_json::from_slice(&collected)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&collected).into_owned()));
    Ok((status, answer))
}
