//! Pipeline files (`pipelines/*.toml`): what to read, which rules to run, where alerts and
//! dead letters go. Plain data, validated by [`PipelineConfig::validate`]; the runtime in
//! [`crate::pipeline`] turns it into tasks.

use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;
use watchfloor_engine::duration::parse_duration_ms;
use watchfloor_engine::{EngineConfig, TimeMode};
use watchfloor_model::{DecodeLimits, Kind};

/// A pipeline file that cannot be used, with what is wrong.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The values are inconsistent.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name, used in client ids, logs and metrics.
    pub name: String,
    /// Rule directory, relative to the pipeline file's parent directory or absolute.
    pub rules: PathBuf,
    /// Event-time settings.
    #[serde(default)]
    pub engine: EngineSettings,
    /// Size and queue limits.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Where telemetry comes from.
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
    /// Where alert transitions go.
    #[serde(rename = "output", default)]
    pub outputs: Vec<OutputConfig>,
    /// Where rejected messages go.
    pub dead_letter: OutputConfig,
    /// The command-centre server (API, WebSocket, dashboard); none: headless.
    pub server: Option<ServerSettings>,
    /// The incident store (operator work, alert history, audit); used with `[server]`.
    pub store: Option<StoreSettings>,
}

/// `[server]`: the command centre served beside the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: std::net::SocketAddr,
    /// Accounts file (token hashes, roles, scopes), relative to the pipeline file.
    pub accounts: PathBuf,
    /// Indicator directory (`indicators/*.yaml`), relative to the pipeline file; the
    /// shipped default set when absent.
    #[serde(default)]
    pub indicators: Option<PathBuf>,
    /// Playbook directory (`playbooks/*.yaml`), relative to the pipeline file; none: no
    /// playbooks.
    #[serde(default)]
    pub playbooks: Option<PathBuf>,
    /// Drill directory (`drills/*.yaml`), relative to the pipeline file; none: drills can
    /// still be started with a script's text (`watchfloor drill start`).
    #[serde(default)]
    pub drills: Option<PathBuf>,
    /// Serve the wall-screen dashboard (the API and WebSocket are always served).
    #[serde(default = "yes")]
    pub dashboard: bool,
    /// How long resolved alerts and audit lines are kept in the store (e.g. `400d`).
    #[serde(default = "default_retention")]
    pub retention: String,
    /// Webhook deliveries (`[server.webhooks]`).
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// CAP 1.2 messages and their Atom feed (`[server.cap]`).
    #[serde(default)]
    pub cap: CapSettings,
    /// What viewers, integrators and reports may not see of readings.
    #[serde(default)]
    pub privacy: PrivacySettings,
    /// `/metrics` only with `Authorization: Bearer <token>` whose SHA-256 (hex) this is
    /// (a Prometheus scraper's `bearer_token`). Default: open on `listen`.
    #[serde(default)]
    pub metrics_token_sha256: Option<String>,
    /// Serve `/metrics` on this address only (e.g. `127.0.0.1:9464`, a management
    /// network), not on `listen`.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `[server.privacy]`: personal data masked for viewers and integrators.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// Attribute paths to mask (`attrs.**.*plate*`; `*` within a key, `**` any depth);
    /// none: the shipped list (plates, names, faces, phones, ID numbers under `attrs`).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Detectors run over every string (`plate`); none: `["plate"]`.
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
}

/// The Common Alerting Protocol feed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapSettings {
    /// The messages' `sender` (no spaces, commas, `<` or `&`).
    #[serde(default = "default_cap_sender")]
    pub sender: String,
    /// The messages' `senderName`.
    #[serde(default = "default_cap_sender_name")]
    pub sender_name: String,
    /// Serve `/cap/feed.atom` and `/cap/alerts/…` without a token (real alerts only).
    #[serde(default)]
    pub public: bool,
}

impl Default for CapSettings {
    fn default() -> Self {
        CapSettings {
            sender: default_cap_sender(),
            sender_name: default_cap_sender_name(),
            public: false,
        }
    }
}

fn default_cap_sender() -> String {
    "watchfloor@ioc.local".into()
}

fn default_cap_sender_name() -> String {
    "Trung tâm Giám sát, điều hành đô thị thông minh (IOC)".into()
}

/// How webhook deliveries are retried and where they may go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The first retry's wait; each next one doubles it (`5s`).
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// The longest wait between two attempts (`1h`).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: String,
    /// A delivery not done this long after it was recorded fails for good (`3d`).
    #[serde(default = "default_give_up")]
    pub give_up: String,
    /// How long one attempt may take (`10s`).
    #[serde(default = "default_attempt_timeout")]
    pub timeout: String,
    /// Addresses deliveries may go to although the policy refuses them by default
    /// (loopback, link-local such as the cloud metadata address, unspecified): IPs or CIDR
    /// blocks, e.g. `["127.0.0.1", "10.0.0.0/8"]`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Certificate authorities (PEM) trusted for `https://` receivers besides the
    /// system's (`/etc/ssl/certs`): a city's private authority. Relative to the pipeline
    /// file's folder.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            backoff: default_backoff(),
            backoff_max: default_backoff_max(),
            give_up: default_give_up(),
            timeout: default_attempt_timeout(),
            allow: Vec::new(),
            ca_file: None,
        }
    }
}

fn default_backoff() -> String {
    "5s".into()
}

fn default_backoff_max() -> String {
    "1h".into()
}

fn default_give_up() -> String {
    "3d".into()
}

fn default_attempt_timeout() -> String {
    "10s".into()
}

impl WebhookSettings {
    /// (backoff, backoff max, give up, timeout) in ms, or which one is not a duration.
    pub fn durations(&self) -> Result<(i64, i64, i64, i64), String> {
        let d = |name: &str, text: &str| {
            parse_duration_ms(text).map_err(|e| format!("server.webhooks.{name}: {e}"))
        };
        Ok((
            d("backoff", &self.backoff)?,
            d("backoff_max", &self.backoff_max)?,
            d("give_up", &self.give_up)?,
            d("timeout", &self.timeout)?,
        ))
    }
}

fn yes() -> bool {
    true
}

fn default_retention() -> String {
    "400d".into()
}

/// `[store]`: where operator work and the alert history are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite:<path>` (relative to the pipeline file) or `postgres://user@host/db`.
    pub url: String,
}

/// Event-time settings, as durations (`10s`, `2m`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Bounded out-of-orderness per source.
    pub max_out_of_orderness: String,
    /// How long windows still accept events after the watermark passed them.
    pub allowed_lateness: String,
    /// When an idle source stops holding the watermark back.
    pub idle_timeout: String,
    /// How often the clock ticks timers (absence, escalation) while the stream is silent.
    pub tick_interval: String,
    /// File of the engine's checkpoint (window and alert state with source positions),
    /// written periodically and at a clean shutdown, read at start. None: no checkpoints.
    pub checkpoint: Option<String>,
    /// How often the checkpoint is written.
    pub checkpoint_interval: String,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_out_of_orderness: "10s".into(),
            allowed_lateness: "30s".into(),
            idle_timeout: "2m".into(),
            tick_interval: "1s".into(),
            checkpoint: None,
            checkpoint_interval: "1s".into(),
        }
    }
}

/// Size and queue limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest accepted payload in bytes; larger ones are dead-lettered, not parsed.
    pub max_payload_bytes: usize,
    /// Messages queued between the sources and the engine; when full, sources stop reading.
    pub queue_capacity: usize,
    /// MQTT messages in flight (received but not yet acknowledged) per source.
    pub mqtt_inflight: u16,
    /// How long an output may keep failing before it gives up ("never" to retry for
    /// ever); what it then does not deliver goes to its file in `undelivered_dir`.
    pub output_give_up: String,
    /// Where outputs that gave up write what they did not deliver (default
    /// `var/<pipeline>/undelivered`).
    pub undelivered_dir: Option<PathBuf>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_payload_bytes: 64 * 1024,
            queue_capacity: 4096,
            mqtt_inflight: 1000,
            output_give_up: "5m".into(),
            undelivered_dir: None,
        }
    }
}

/// How a source's payloads are encoded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "format")]
pub enum PayloadFormat {
    /// The JSON envelope (one object or an array).
    Json {
        /// Binds each reading to its topic: the envelope's `source` must be this topic level
        /// (0-based; e.g. 2 in `ioc/<kind>/<station>/telemetry`), else it is refused as
        /// `topic_mismatch` (a station publishing on another's topic). Default: unbound.
        #[serde(default)]
        source_topic_level: Option<usize>,
    },
    /// Circular 10/2021 station lines; the station id is a topic level (0-based).
    Tt10 {
        /// Which topic level holds the station id.
        station_topic_level: usize,
        /// Kind of the stations.
        kind: String,
        /// Datalogger clock offset from UTC, in hours (Vietnam: 7).
        #[serde(default = "default_utc_offset")]
        utc_offset_hours: i32,
    },
}

fn default_utc_offset() -> i32 {
    7
}

/// A telemetry source. (serde cannot refuse unknown keys together with the flattened
/// payload format, so [`check_source_keys`] does.)
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SourceConfig {
    /// An MQTT broker.
    Mqtt {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
        /// Stable client id: with a persistent session the broker keeps messages for it
        /// while Watchfloor restarts.
        client_id: String,
        /// Topic filters, e.g. `ioc/+/+/telemetry`.
        topics: Vec<String>,
        /// The broker account (an authenticated broker), with `password_env`.
        #[serde(default)]
        username: Option<String>,
        /// The environment variable holding the account's password (never the password
        /// in the file).
        #[serde(default)]
        password_env: Option<String>,
        /// TLS to the broker (its certificate verified against `host`).
        #[serde(default)]
        tls: bool,
        /// PEM certificates of the authority that signed the broker's certificate, besides
        /// the system's; implies `tls`. Relative to the pipeline file's directory.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Payload format.
        #[serde(flatten)]
        format: PayloadFormat,
    },
    /// A Kafka consumer group (more instances with the same group share the partitions).
    Kafka {
        /// Bootstrap servers, `host:port[,host:port]`.
        brokers: String,
        /// Consumer group id.
        group_id: String,
        /// Topics.
        topics: Vec<String>,
        /// Extra librdkafka settings.
        #[serde(default)]
        options: std::collections::BTreeMap<String, String>,
        /// Payload format.
        #[serde(flatten)]
        format: PayloadFormat,
    },
}

impl SourceConfig {
    /// A name for logs and dead letters.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Mqtt { client_id, .. } => client_id,
            SourceConfig::Kafka { group_id, .. } => group_id,
        }
    }

    /// Topics or topic filters.
    pub fn topics(&self) -> &[String] {
        match self {
            SourceConfig::Mqtt { topics, .. } | SourceConfig::Kafka { topics, .. } => topics,
        }
    }

    /// Payload format.
    pub fn format(&self) -> &PayloadFormat {
        match self {
            SourceConfig::Mqtt { format, .. } | SourceConfig::Kafka { format, .. } => format,
        }
    }
}

/// An alert or dead-letter destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", deny_unknown_fields)]
pub enum OutputConfig {
    /// NDJSON lines appended to a file.
    File {
        /// Path, relative to the pipeline file's directory or absolute.
        path: PathBuf,
        /// Also write drills' exercise alerts, to the twin file `<stem>.exercise.<ext>`
        /// (never to `path`). Default: exercise alerts never reach this output.
        #[serde(default)]
        exercises: bool,
    },
    /// An MQTT broker; `{severity}` and `{rule}` in the topic are filled per alert.
    Mqtt {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
        /// Client id of the publisher.
        client_id: String,
        /// Topic template, e.g. `ioc/alerts/{severity}/{rule}`.
        topic: String,
        /// The broker account (an authenticated broker), with `password_env`.
        #[serde(default)]
        username: Option<String>,
        /// The environment variable holding the account's password.
        #[serde(default)]
        password_env: Option<String>,
        /// TLS to the broker (its certificate verified against `host`).
        #[serde(default)]
        tls: bool,
        /// PEM certificates of the authority that signed the broker's certificate, besides
        /// the system's; implies `tls`. Relative to the pipeline file's directory.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Also publish drills' exercise alerts, under `exercise/<topic>` (never on
        /// `topic`). Default: exercise alerts never reach this output.
        #[serde(default)]
        exercises: bool,
    },
    /// A Kafka topic, records keyed by `alert_id` (dead letters: by reason), idempotent producer.
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Topic.
        topic: String,
        /// Extra librdkafka producer settings (default: one record per batch).
        #[serde(default)]
        options: std::collections::BTreeMap<String, String>,
        /// Also send drills' exercise alerts, to the topic `<topic>.exercise` (never to
        /// `topic`). Default: exercise alerts never reach this output.
        #[serde(default)]
        exercises: bool,
    },
    /// CAP 1.2 XML messages, one per alert transition, written to `to` (a file — one
    /// message per line —, an MQTT topic or a Kafka topic). Built by the centre from the
    /// incident store's timeline (so it needs `[server]`), with the identifiers and
    /// references of `/cap/alerts/…`; not one of the engine's outputs.
    Cap {
        /// Names its position in the timeline (kept in the store as `cap:<name>`): letters,
        /// digits, `_`, `-`, `.`; unique among the CAP outputs.
        name: String,
        /// Where the XML goes (`type` file, mqtt or kafka; its `exercises` is ignored).
        to: Box<OutputConfig>,
        /// Also send drills' messages (CAP status `Exercise`), on `to`'s exercise twin
        /// (never on `to`). Default: none.
        #[serde(default)]
        exercises: bool,
    },
}

impl OutputConfig {
    /// Does this output take exercise alerts (on its exercise twin)? A CAP output's
    /// drills are its own business (not the engine's twin).
    pub fn takes_exercises(&self) -> bool {
        match self {
            OutputConfig::File { exercises, .. }
            | OutputConfig::Mqtt { exercises, .. }
            | OutputConfig::Kafka { exercises, .. } => *exercises,
            OutputConfig::Cap { .. } => false,
        }
    }

    /// Is this a CAP output (built by the centre, not by the engine's pipeline)?
    pub fn is_cap(&self) -> bool {
        matches!(self, OutputConfig::Cap { .. })
    }

    /// The exercise twin of `self` as if it took exercises (for a CAP output's `to`).
    pub fn forced_exercise_twin(&self) -> Option<OutputConfig> {
        let mut me = self.clone();
        match &mut me {
            OutputConfig::File { exercises, .. }
            | OutputConfig::Mqtt { exercises, .. }
            | OutputConfig::Kafka { exercises, .. } => *exercises = true,
            OutputConfig::Cap { .. } => return None,
        }
        me.exercise_twin()
    }

    /// Where this output's exercise alerts go: the same kind of output, on the exercise
    /// file or topic (`None` when it does not take them).
    pub fn exercise_twin(&self) -> Option<OutputConfig> {
        if !self.takes_exercises() {
            return None;
        }
        let mut twin = self.clone();
        match &mut twin {
            OutputConfig::File { path, .. } => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let name = match path.extension() {
                    Some(ext) => format!("{stem}.exercise.{}", ext.to_string_lossy()),
                    None => format!("{stem}.exercise"),
                };
                path.set_file_name(name);
            }
            OutputConfig::Mqtt {
                topic, client_id, ..
            } => {
                *topic = format!("exercise/{topic}");
                client_id.push_str("-exercise");
            }
            OutputConfig::Kafka { topic, .. } => topic.push_str(".exercise"),
            OutputConfig::Cap { .. } => return None,
        }
        Some(twin)
    }
}

/// The MQTT credentials of `username` with the password in the environment variable
/// `password_env`; an error says what is missing.
pub fn mqtt_credentials(
    username: Option<&str>,
    password_env: Option<&str>,
) -> Result<Option<(String, String)>, String> {
    match (username, password_env) {
        (None, None) => Ok(None),
        (Some(user), Some(var)) => std::env::var(var)
            .map(|password| Some((user.to_string(), password)))
            .map_err(|_| {
                format!(
                    "MQTT user `{user}`: the environment variable {var} (its password) is not set"
                )
            }),
        (Some(user), None) => Err(format!(
            "MQTT user `{user}`: `password_env` names the variable holding its password"
        )),
        (None, Some(_)) => Err("`password_env` without `username`".into()),
    }
}

/// Refuses a `[[source]]` key its type and format do not know (a misspelt setting would
/// otherwise be ignored silently).
fn check_source_keys(text: &str) -> Result<(), String> {
    let value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let Some(sources) = value.get("source").and_then(toml::Value::as_array) else {
        return Ok(());
    };
    for (i, source) in sources.iter().enumerate() {
        let Some(table) = source.as_table() else {
            continue;
        };
        let by_type: &[&str] = match table.get("type").and_then(toml::Value::as_str) {
            Some("mqtt") => &[
                "host",
                "port",
                "client_id",
                "username",
                "password_env",
                "tls",
                "ca_file",
            ],
            Some("kafka") => &["brokers", "group_id", "options"],
            _ => continue, // the schema already refused it
        };
        let by_format: &[&str] = match table.get("format").and_then(toml::Value::as_str) {
            Some("tt10") => &["station_topic_level", "kind", "utc_offset_hours"],
            Some("json") => &["source_topic_level"],
            _ => &[],
        };
        let common = ["type", "topics", "format"];
        for key in table.keys() {
            let known = common
                .iter()
                .chain(by_type)
                .chain(by_format)
                .any(|k| k == key);
            if !known {
                let mut expected: Vec<&str> = common
                    .iter()
                    .chain(by_type)
                    .chain(by_format)
                    .copied()
                    .collect();
                expected.sort_unstable();
                return Err(format!(
                    "source {} (`{}`): unknown field `{key}`, expected one of {}",
                    i + 1,
                    table
                        .get("type")
                        .and_then(toml::Value::as_str)
                        .unwrap_or("?"),
                    expected.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn duration(path: &std::path::Path, field: &str, text: &str) -> Result<i64, ConfigError> {
    parse_duration_ms(text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: format!("engine.{field}: {e}"),
    })
}

impl PipelineConfig {
    /// Reads and validates a pipeline file; relative paths are resolved against its directory.
    pub fn load(path: &std::path::Path) -> Result<PipelineConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: PipelineConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        config.rules = base.join(&config.rules);
        if let Some(checkpoint) = &mut config.engine.checkpoint {
            *checkpoint = base.join(&*checkpoint).display().to_string();
        }
        if let Some(server) = &mut config.server {
            server.accounts = base.join(&server.accounts);
            server.indicators = server.indicators.as_ref().map(|d| base.join(d));
            server.playbooks = server.playbooks.as_ref().map(|d| base.join(d));
            server.drills = server.drills.as_ref().map(|d| base.join(d));
            server.webhooks.ca_file = server.webhooks.ca_file.as_ref().map(|f| base.join(f));
        }
        if config.server.is_some() && config.store.is_none() {
            // The default: SQLite under var/<pipeline>/, beside the working directory.
            config.store = Some(StoreSettings {
                url: format!("sqlite:var/{}/incidents.db", config.name),
            });
        } else if let Some(store) = &mut config.store {
            if let Some(file) = store.url.strip_prefix("sqlite:") {
                let file = file.trim_start_matches("//");
                store.url = format!("sqlite:{}", base.join(file).display());
            }
        }
        for output in config
            .outputs
            .iter_mut()
            .chain(std::iter::once(&mut config.dead_letter))
        {
            match output {
                OutputConfig::File { path, .. } => *path = base.join(&*path),
                OutputConfig::Mqtt {
                    ca_file: Some(file),
                    ..
                } => *file = base.join(&*file),
                OutputConfig::Cap { to, .. } => {
                    if let OutputConfig::File { path, .. } = &mut **to {
                        *path = base.join(&*path);
                    }
                }
                _ => {}
            }
        }
        for source in &mut config.sources {
            if let SourceConfig::Mqtt {
                ca_file: Some(file),
                ..
            } = source
            {
                *file = base.join(&*file);
            }
        }
        check_source_keys(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values that the schema cannot.
    pub fn validate(&self, path: &std::path::Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        self.engine_config(path)?;
        self.checkpoint_ms(path)?;
        self.output_give_up_ms(path)?;
        if let Some(server) = &self.server {
            self.retention_ms(path)?;
            if !server.accounts.exists() {
                return Err(invalid(format!(
                    "server.accounts: {} does not exist",
                    server.accounts.display()
                )));
            }
        }
        if let Some(store) = &self.store {
            let url = store.url.as_str();
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|p| url.starts_with(p)) {
                return Err(invalid(format!(
                    "store.url: `{url}` is neither `sqlite:<path>` nor `postgres://…`"
                )));
            }
        }
        if self.sources.is_empty() {
            return Err(invalid("a pipeline needs at least one [[source]]".into()));
        }
        if self.outputs.iter().all(OutputConfig::is_cap) {
            return Err(invalid(
                "a pipeline needs at least one [[output]] (besides CAP ones)".into(),
            ));
        }
        let mut cap_names = std::collections::BTreeSet::new();
        for output in &self.outputs {
            if let OutputConfig::Cap { to, name, .. } = output {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    return Err(invalid(format!(
                        "CAP output name `{name}`: letters, digits, `_`, `-` and `.` only"
                    )));
                }
                if !cap_names.insert(name.clone()) {
                    return Err(invalid(format!(
                        "two CAP outputs are named `{name}` (each keeps its own place in the timeline)"
                    )));
                }
                if to.is_cap() {
                    return Err(invalid(
                        "a CAP output's `to` is a file, mqtt or kafka".into(),
                    ));
                }
                if to.takes_exercises() {
                    return Err(invalid(format!(
                        "CAP output `{name}`: set `exercises` on the CAP output, not on its `to`"
                    )));
                }
                #[cfg(not(feature = "kafka"))]
                if matches!(**to, OutputConfig::Kafka { .. }) {
                    return Err(invalid(format!(
                        "CAP output `{name}`: this build has no Kafka support (feature `kafka`)"
                    )));
                }
                if self.server.is_none() {
                    return Err(invalid(
                        "a CAP output is built from the incident store's timeline: it needs [server]".into(),
                    ));
                }
            }
        }
        if let Some(hash) = self
            .server
            .as_ref()
            .and_then(|s| s.metrics_token_sha256.as_ref())
        {
            if hash.trim().len() != 64 || !hash.trim().chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "server.metrics_token_sha256: the SHA-256 of the token, 64 hex digits".into(),
                ));
            }
        }
        for source in &self.sources {
            if let SourceConfig::Kafka {
                format:
                    PayloadFormat::Json {
                        source_topic_level: Some(_),
                    },
                ..
            } = source
            {
                return Err(invalid(
                    "source_topic_level binds MQTT topics (levels split by `/`); Kafka topics have none".into(),
                ));
            }
        }
        if self.dead_letter.is_cap() {
            return Err(invalid("the dead letter output cannot be CAP".into()));
        }
        if self.limits.queue_capacity == 0 || self.limits.mqtt_inflight == 0 {
            return Err(invalid(
                "limits.queue_capacity and limits.mqtt_inflight must be above zero".into(),
            ));
        }
        for source in &self.sources {
            let client_id = source.name();
            let format = source.format();
            if source.topics().is_empty() {
                return Err(invalid(format!("source `{client_id}` has no topics")));
            }
            if let PayloadFormat::Tt10 { kind, .. } = format {
                if Kind::parse(kind).is_none() {
                    return Err(invalid(format!(
                        "source `{client_id}`: unknown kind `{kind}`"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The engine settings as an [`EngineConfig`] (live: processing-time clock).
    pub fn engine_config(&self, path: &std::path::Path) -> Result<EngineConfig, ConfigError> {
        Ok(EngineConfig {
            max_out_of_orderness_ms: duration(
                path,
                "max_out_of_orderness",
                &self.engine.max_out_of_orderness,
            )?,
            allowed_lateness_ms: duration(path, "allowed_lateness", &self.engine.allowed_lateness)?,
            idle_timeout_ms: duration(path, "idle_timeout", &self.engine.idle_timeout)?,
            time_mode: TimeMode::Processing,
            ..EngineConfig::default()
        })
    }

    /// Clock tick interval in milliseconds.
    pub fn tick_ms(&self, path: &std::path::Path) -> Result<i64, ConfigError> {
        duration(path, "tick_interval", &self.engine.tick_interval)
    }

    /// Checkpoint interval in milliseconds.
    pub fn checkpoint_ms(&self, path: &std::path::Path) -> Result<i64, ConfigError> {
        duration(
            path,
            "checkpoint_interval",
            &self.engine.checkpoint_interval,
        )
    }

    /// `[limits] output_give_up` in ms; `None` for "never".
    pub fn output_give_up_ms(&self, path: &std::path::Path) -> Result<Option<i64>, ConfigError> {
        if self.limits.output_give_up.trim() == "never" {
            return Ok(None);
        }
        duration(path, "output_give_up", &self.limits.output_give_up).map(Some)
    }

    /// Where outputs that gave up write what they did not deliver.
    pub fn undelivered_dir(&self) -> PathBuf {
        self.limits
            .undelivered_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("var/{}/undelivered", self.name)))
    }

    /// How long the store keeps resolved alerts (`[server] retention`), ms.
    pub fn retention_ms(&self, path: &std::path::Path) -> Result<i64, ConfigError> {
        let text = self
            .server
            .as_ref()
            .map_or("400d", |s| s.retention.as_str());
        let ms = duration(path, "retention", text)?;
        if ms < 86_400_000 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("server.retention: `{text}` is under a day"),
            });
        }
        Ok(ms)
    }

    /// Decoder limits.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_payload_bytes: self.limits.max_payload_bytes,
            ..DecodeLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PipelineConfig, ConfigError> {
        let dir =
            std::env::temp_dir().join(format!("wf-config-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.toml");
        std::fs::write(&path, text).unwrap();
        PipelineConfig::load(&path)
    }

    const GOOD: &str = r#"
name = "city"
rules = "../alert-rules"

[engine]
max_out_of_orderness = "5s"

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = 1883
client_id = "watchfloor-city"
topics = ["ioc/+/+/telemetry"]
format = "json"

[[source]]
type = "mqtt"
host = "127.0.0.1"
port = 1883
client_id = "watchfloor-tt10"
topics = ["ioc/tt10/+"]
format = "tt10"
station_topic_level = 2
kind = "discharge"

[[output]]
type = "file"
path = "alerts.ndjson"

[dead_letter]
type = "file"
path = "dead.ndjson"
"#;

    #[test]
    fn loads_a_pipeline() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.sources.len(), 2);
        assert!(config.rules.ends_with("../alert-rules"));
        assert_eq!(
            config.sources[1].format(),
            &PayloadFormat::Tt10 {
                station_topic_level: 2,
                kind: "discharge".into(),
                utc_offset_hours: 7
            }
        );
    }

    #[test]
    fn a_cap_output_needs_the_centre_and_a_plain_destination() {
        let cap = "\n[[output]]\ntype = \"cap\"\nname = \"archive\"\nexercises = true\nto = { type = \"file\", path = \"cap.xml\" }\n";
        let err = parse(&format!("{GOOD}{cap}")).unwrap_err().to_string();
        assert!(err.contains("needs [server]"), "{err}");
        let dir = std::env::temp_dir().join(format!("wf-config-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("accounts.toml"), "").unwrap();
        let with_server = format!(
            "{GOOD}{cap}\n[server]\nlisten = \"127.0.0.1:0\"\naccounts = \"{}\"\n",
            dir.join("accounts.toml").display()
        );
        let config = parse(&with_server).unwrap();
        let OutputConfig::Cap { to, exercises, .. } = &config.outputs[1] else {
            panic!("{:?}", config.outputs[1]);
        };
        assert!(*exercises);
        assert!(config.outputs[1].is_cap() && !config.outputs[1].takes_exercises());
        let OutputConfig::File { path, .. } = to.forced_exercise_twin().unwrap() else {
            panic!("a file twin");
        };
        assert!(path.ends_with("cap.exercise.xml"), "{}", path.display());
        let nested = with_server.replace(
            "to = { type = \"file\", path = \"cap.xml\" }",
            "to = { type = \"cap\", name = \"inner\", to = { type = \"file\", path = \"x\" } }",
        );
        let err = parse(&nested).unwrap_err().to_string();
        assert!(err.contains("file, mqtt or kafka"), "{err}");
        let twice = format!("{with_server}{cap}");
        let err = parse(&twice).unwrap_err().to_string();
        assert!(err.contains("two CAP outputs"), "{err}");
        let badly_named = with_server.replace("name = \"archive\"", "name = \"a b\"");
        let err = parse(&badly_named).unwrap_err().to_string();
        assert!(err.contains("letters, digits"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rejects_bad_pipelines() {
        let err = parse(&GOOD.replace("\"5s\"", "\"soon\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_out_of_orderness"), "{err}");
        let err = parse(&GOOD.replace("kind = \"discharge\"", "kind = \"lava\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown kind"), "{err}");
        let err = parse(&GOOD.replace("client_id = \"watchfloor-city\"", "client = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing field `client_id`") && err.contains("line 8"),
            "{err}"
        );
        // A misspelt setting is refused, not ignored.
        let err = parse(&GOOD.replace(
            "port = 1883\nclient_id = \"watchfloor-city\"",
            "port = 1883\nqos = 2\nclient_id = \"watchfloor-city\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `qos`"), "{err}");
    }
}
