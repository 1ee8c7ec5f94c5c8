//! `watchfloor`: the command-line entry point.
//!
//! - `watchfloor rules check <dir>` validates a rule directory.
//! - `watchfloor indicators check <dir> [--rules <dir>]` validates an indicator directory
//!   against the city's sectors.
//! - `watchfloor playbooks check <dir> [--rules <dir>]` validates a playbook directory
//!   against the rules and the city's sectors.
//! - `watchfloor drills check <dir> [--rules <dir>] [--playbooks <dir>]` validates a drill
//!   directory against the city, the rules and the playbooks.
//! - `watchfloor drill start <file> [--speed N]` (and `status`, `pause`, `resume`, `end`,
//!   `abort`, `report`) runs a drill on a running centre through its API.
//! - `watchfloor replay --rules <dir> --input <file|->` runs recorded telemetry through the
//!   engine in event time and prints alert transitions as NDJSON.

mod centre;
mod demo;
mod drill_cli;
mod drills;
mod fanout;
mod live;
mod loadgen;
mod playbooks;
mod replay;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use watchfloor_engine::duration::parse_duration_ms;
use watchfloor_engine::EngineConfig;

/// Watchfloor: a stream processor for a city Intelligent Operations Centre.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Work with indicator files.
    Indicators {
        #[command(subcommand)]
        action: IndicatorsAction,
    },
    /// Work with playbook files.
    Playbooks {
        #[command(subcommand)]
        action: PlaybooksAction,
    },
    /// Work with drill scripts.
    Drills {
        #[command(subcommand)]
        action: DrillsAction,
    },
    /// Run a drill on a running centre (admins and drill leaders).
    Drill {
        #[command(flatten)]
        connection: drill_cli::Connection,
        #[command(subcommand)]
        action: drill_cli::DrillAction,
    },
    /// Run recorded telemetry (NDJSON envelopes) through the engine in event time.
    Replay(ReplayArgs),
    /// Run a live pipeline (`pipelines/*.toml`).
    Run(live::RunArgs),
    /// Run the embedded MQTT broker (no external service needed).
    Broker(live::BrokerArgs),
    /// Publish telemetry at fixed rates and measure publish-to-alert latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Simulate the city's stations with scripted incidents (NDJSON or MQTT).
    Simulate(simulate::SimulateArgs),
    /// The whole command centre in one process: broker, simulators, engine, server.
    Demo(demo::DemoArgs),
    /// Measure WebSocket fan-out: many clients, probe alerts, delivery lag and server CPU.
    FanoutBench(fanout::FanoutArgs),
    /// Print the SHA-256 of a token, for an accounts file.
    TokenHash {
        /// The token.
        token: String,
    },
}

#[derive(Subcommand)]
enum RulesAction {
    /// Validate every rule file and lookup table in a directory.
    Check {
        /// Rule directory (e.g. alert-rules/).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum IndicatorsAction {
    /// Validate every indicator file in a directory (`file:line` errors).
    Check {
        /// Indicator directory (e.g. indicators/).
        dir: PathBuf,
        /// The rule directory whose city names the sectors.
        #[arg(long, default_value = "alert-rules")]
        rules: PathBuf,
    },
}

#[derive(Subcommand)]
enum PlaybooksAction {
    /// Validate every playbook file in a directory (`file:line` errors).
    Check {
        /// Playbook directory (e.g. playbooks/).
        dir: PathBuf,
        /// The rule directory: the rules triggers name, the city's sectors.
        #[arg(long, default_value = "alert-rules")]
        rules: PathBuf,
    },
}

#[derive(Subcommand)]
enum DrillsAction {
    /// Validate every drill file in a directory (`file:line` errors).
    Check {
        /// Drill directory (e.g. drills/).
        dir: PathBuf,
        /// The rule directory: the city's stations and communes, the rules outcomes name.
        #[arg(long, default_value = "alert-rules")]
        rules: PathBuf,
        /// The playbook directory: the steps outcomes time.
        #[arg(long, default_value = "playbooks")]
        playbooks: PathBuf,
    },
}

/// Options of `watchfloor replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Rule directory.
    #[arg(long)]
    pub rules: PathBuf,
    /// NDJSON input, or `-` for standard input.
    #[arg(long)]
    pub input: String,
    /// Where alert transitions go, or `-` for standard output.
    #[arg(long, default_value = "-")]
    pub output: String,
    /// File for rejected and late events, one JSON record each, with the reason.
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// How far out of order a source's events may arrive (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub max_out_of_orderness: i64,
    /// How long a window still accepts events after the watermark passed its end.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub allowed_lateness: i64,
    /// After this long without progress a source stops holding the watermark back.
    #[arg(long, default_value = "2m", value_parser = duration_arg)]
    pub idle_timeout: i64,
}

fn duration_arg(text: &str) -> Result<i64, String> {
    parse_duration_ms(text)
}

impl ReplayArgs {
    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            max_out_of_orderness_ms: self.max_out_of_orderness,
            allowed_lateness_ms: self.allowed_lateness,
            idle_timeout_ms: self.idle_timeout,
            ..EngineConfig::default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Rules {
            action: RulesAction::Check { dir },
        } => rules_check(&dir),
        Command::Indicators {
            action: IndicatorsAction::Check { dir, rules },
        } => indicators_check(&dir, &rules),
        Command::Playbooks {
            action: PlaybooksAction::Check { dir, rules },
        } => playbooks::check(&dir, &rules),
        Command::Drills {
            action:
                DrillsAction::Check {
                    dir,
                    rules,
                    playbooks,
                },
        } => drills::check(&dir, &rules, &playbooks),
        Command::Drill { connection, action } => drill_cli::run(&connection, &action),
        Command::Replay(args) => replay::run(&args),
        Command::Run(args) => live::run(&args),
        Command::Broker(args) => live::broker(&args),
        Command::Loadgen(args) => loadgen::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::FanoutBench(args) => fanout::run(&args),
        Command::TokenHash { token } => {
            println!("{}", watchfloor_server::token_hash_hex(&token));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn rules_check(dir: &std::path::Path) -> Result<ExitCode> {
    match watchfloor_city::load_rules(dir) {
        Ok((set, city)) => {
            let city = city.map_or(String::new(), |c| {
                format!(
                    " (city: {} stations, {} zones)",
                    c.stations.len(),
                    c.zones.zones.len()
                )
            });
            println!("ok: {} rules in {}{city}", set.rules.len(), dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(problems(&errors)),
    }
}

fn indicators_check(dir: &std::path::Path, rules: &std::path::Path) -> Result<ExitCode> {
    let city = watchfloor_city::City::load(rules).map_err(|e| anyhow::anyhow!("{e}"))?;
    match watchfloor_server::indicators::load(Some(dir), city.as_ref()) {
        Ok(set) => {
            println!(
                "ok: {} indicators in {}",
                set.indicators.len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(problems(&errors)),
    }
}

/// Prints every problem of a check, then their count: the check failed.
pub(crate) fn problems(errors: &watchfloor_engine::RuleErrors) -> ExitCode {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    eprintln!("{} problem(s) found", errors.0.len());
    ExitCode::FAILURE
}
