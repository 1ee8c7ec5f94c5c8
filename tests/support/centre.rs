//! A command centre's files for the end-to-end tests: an accounts file with one city
//! operator, and a pipeline file (the shipped rules, a short-lateness engine with a
//! checkpoint, camera and station JSON over MQTT, alerts and dead letters to files, the
//! server and the store) that a test extends with sections of its own.

use std::path::{Path, PathBuf};

/// Writes `accounts.toml` in `dir`: one operator `name` of the whole city holding `token`.
pub fn write_accounts(dir: &Path, name: &str, token: &str) {
    let accounts = format!(
        "[[account]]\nname = \"{name}\"\nrole = \"operator\"\nscope = \"city\"\ntoken_sha256 = \"{}\"\n",
        watchfloor_server::token_hash_hex(token)
    );
    std::fs::write(dir.join("accounts.toml"), accounts).unwrap();
}

/// Writes `centre.toml` in `dir`: telemetry from the broker on `mqtt`, the server on
/// `http`, the store at `store`, then `extra` (more outputs, `[limits]`); returns its path.
pub fn write_pipeline(dir: &Path, mqtt: u16, http: u16, store: &str, extra: &str) -> PathBuf {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../alert-rules");
    let path = dir.join("centre.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "centre"
rules = "{rules}"

[engine]
max_out_of_orderness = "2s"
allowed_lateness = "5s"
idle_timeout = "1m"
tick_interval = "200ms"
checkpoint = "state/engine.checkpoint"
checkpoint_interval = "1s"

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = {mqtt}
client_id = "centre-telemetry"
topics = ["ioc/+/+/telemetry"]
format = "json"

[[output]]
type = "file"
path = "alerts.ndjson"

[dead_letter]
type = "file"
path = "dead.ndjson"

[server]
listen = "127.0.0.1:{http}"
accounts = "accounts.toml"

[store]
url = "{store}"
{extra}
"#,
            rules = rules.display()
        ),
    )
    .unwrap();
    path
}

/// A camera's fire-or-smoke detection now, with `confidence`: its topic and payload, as
/// the centre's telemetry source reads them.
pub fn camera_detection(camera: &str, confidence: f64) -> (String, String) {
    let payload = serde_json::json!({
        "source": camera,
        "kind": "camera",
        "ts": super::now_ms(),
        "event": "fire_smoke",
        "confidence": confidence,
    });
    (format!("ioc/city/{camera}/telemetry"), payload.to_string())
}
