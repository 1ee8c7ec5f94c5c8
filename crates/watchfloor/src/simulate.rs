//! `watchfloor simulate`: the demo city's stations with scripted incidents, written as
//! NDJSON as fast as possible, or published to MQTT paced to simulated time (`--speed`
//! compresses it: 60 plays an hour in a minute).

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use watchfloor_city::City;
use watchfloor_engine::duration::parse_duration_ms;
use watchfloor_simulators::{parse_script, seeded_script, SimConfig, SimRecord, Simulator};

/// Options of `watchfloor simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Rule directory holding the city (`city/stations.csv`, `city/zones.geojson`).
    #[arg(long, default_value = "alert-rules")]
    pub rules: PathBuf,
    /// Seed of every random choice: the same seed gives the same telemetry.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulated span (e.g. 6h, 1d).
    #[arg(long, default_value = "6h")]
    pub duration: String,
    /// Simulated start, RFC 3339 (default: 2026-11-27 00:00 Vietnam time for files, now
    /// when publishing).
    #[arg(long)]
    pub start: Option<String>,
    /// Incident script (TOML); without it the seed picks one incident of each type.
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// NDJSON output file, or `-` for standard output.
    #[arg(long)]
    pub output: Option<String>,
    /// Publish to this MQTT broker (`host:port`) instead, paced to simulated time.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// Publish to these Kafka brokers (`host:port[,…]`) instead, keyed by station id.
    #[arg(long)]
    pub kafka: Option<String>,
    /// The Kafka topic telemetry goes to.
    #[arg(long, default_value = "ioc.telemetry")]
    pub kafka_topic: String,
    /// Simulated seconds per wall-clock second when publishing.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Also publish discharge readings as Circular 10/2021 lines on `ioc/tt10/<station>`.
    #[arg(long)]
    pub tt10: bool,
    /// Synthetic stations to add beyond the registry (scale runs).
    #[arg(long, default_value_t = 0)]
    pub extra_stations: usize,
    /// Burst mode (with --mqtt): publish readings at this many messages per second for
    /// `--duration` of wall-clock time, stamped with the wall clock, ignoring cadences.
    #[arg(long)]
    pub burst: Option<u64>,
    /// Print the incidents of the run to standard error.
    #[arg(long)]
    pub list_incidents: bool,
}

const DEFAULT_START: &str = "2026-11-27T00:00:00+07:00";

/// Builds the simulator the arguments describe (shared with `watchfloor demo`).
pub fn build(args: &SimulateArgs, start_ms: i64) -> Result<Simulator> {
    let city = City::load(&args.rules)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_context(|| format!("no city in {} (city/stations.csv)", args.rules.display()))?;
    let duration_ms = parse_duration_ms(&args.duration).map_err(anyhow::Error::msg)?;
    let incidents = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            parse_script(&text, &city)?
        }
        // Burst mode is for load: steady readings, no incidents.
        None if args.burst.is_some() => Vec::new(),
        None => seeded_script(args.seed, duration_ms, &city),
    };
    if args.list_incidents {
        for i in &incidents {
            eprintln!(
                "incident {:?} at {} +{} min for {} min (magnitude {})",
                i.kind,
                i.station,
                i.at_ms / 60_000,
                i.duration_ms / 60_000,
                i.magnitude
            );
        }
    }
    Ok(Simulator::new(
        &city,
        &SimConfig {
            seed: args.seed,
            start_ms,
            duration_ms,
            incidents,
            extra_stations: args.extra_stations,
            camera_cadence_ms: None,
        },
    ))
}

/// The MQTT topic of a record: `ioc/<ward>/<station>/telemetry`.
pub fn topic_of(record: &SimRecord) -> String {
    format!(
        "ioc/{}/{}/telemetry",
        record.ward.as_deref().unwrap_or("city"),
        record.source
    )
}

/// Runs `watchfloor simulate`.
pub fn run(args: &SimulateArgs) -> Result<ExitCode> {
    if let Some(output) = &args.output {
        {
            let start = args.start.as_deref().unwrap_or(DEFAULT_START);
            let start_ms = watchfloor_model::parse_rfc3339(start)
                .with_context(|| format!("`{start}` is not an RFC 3339 time"))?;
            let mut sim = build(args, start_ms)?;
            let mut out: Box<dyn Write> = if output == "-" {
                Box::new(BufWriter::new(io::stdout().lock()))
            } else {
                Box::new(BufWriter::new(
                    std::fs::File::create(output)
                        .with_context(|| format!("cannot create {output}"))?,
                ))
            };
            let began = Instant::now();
            let mut batch = Vec::new();
            let mut written = 0u64;
            while sim.next_minute(&mut batch) {
                for record in batch.drain(..) {
                    out.write_all(record.json.as_bytes())?;
                    out.write_all(b"\n")?;
                    written += 1;
                }
            }
            out.flush()?;
            let secs = began.elapsed().as_secs_f64();
            eprintln!(
                "simulate: {} stations, {written} messages in {secs:.2} s ({:.0} msg/s)",
                sim.station_count(),
                written as f64 / secs.max(1e-9)
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    let start_ms = match &args.start {
        Some(s) => watchfloor_model::parse_rfc3339(s)
            .with_context(|| format!("`{s}` is not an RFC 3339 time"))?,
        None => now_ms(),
    };
    let sim = build(args, start_ms)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut sink = Sink::open(args)?;
        match args.burst {
            Some(rate) => {
                let span = parse_duration_ms(&args.duration).map_err(anyhow::Error::msg)?;
                burst(sim, &mut sink, rate, Duration::from_millis(span as u64)).await
            }
            None => publish(sim, &mut sink, args.speed, start_ms, None).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where published telemetry goes.
pub enum Sink {
    /// An MQTT broker: envelopes on `ioc/<ward>/<station>/telemetry`, and with `tt10` the
    /// discharge readings also as Circular 10/2021 lines on `ioc/tt10/<station>`.
    Mqtt {
        /// The client (its event loop runs in its own task).
        client: AsyncClient,
        /// Also publish TT10 lines.
        tt10: bool,
    },
    /// A Kafka topic, keyed by station id (so a station's readings stay in order).
    #[cfg(feature = "kafka")]
    Kafka(watchfloor_connectors::kafka::KafkaOutput),
}

impl Sink {
    fn open(args: &SimulateArgs) -> Result<Sink> {
        match (&args.mqtt, &args.kafka) {
            (Some(broker), None) => Ok(Sink::mqtt(broker, args.tt10)?),
            #[cfg(feature = "kafka")]
            (None, Some(brokers)) => Ok(Sink::Kafka(
                watchfloor_connectors::kafka::KafkaOutput::open(
                    brokers,
                    &args.kafka_topic,
                    &Default::default(),
                )?,
            )),
            #[cfg(not(feature = "kafka"))]
            (None, Some(_)) => bail!("this build has no Kafka support (feature `kafka`)"),
            _ => bail!("give exactly one of --output, --mqtt or --kafka"),
        }
    }

    /// An MQTT sink on `broker` (`host:port`).
    pub fn mqtt(broker: &str, tt10: bool) -> Result<Sink> {
        let (host, port) = broker
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .with_context(|| format!("`{broker}` is not host:port"))?;
        let mut options = MqttOptions::new(
            format!("watchfloor-simulator-{}", std::process::id()),
            host,
            port,
        );
        options.set_keep_alive(Duration::from_secs(30));
        options.set_inflight(1000);
        let (client, mut event_loop) = watchfloor_connectors::mqtt_client(options, 10_000);
        // The event loop runs in its own task; the caller only publishes.
        tokio::spawn(async move {
            loop {
                if let Err(e) = event_loop.poll().await {
                    tracing::warn!(error = %e, "simulator: broker connection lost, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        Ok(Sink::Mqtt { client, tt10 })
    }

    async fn send(&mut self, record: SimRecord) -> Result<()> {
        match self {
            Sink::Mqtt { client, tt10 } => {
                let topic = topic_of(&record);
                client
                    .publish(topic, QoS::AtLeastOnce, false, record.json.into_bytes())
                    .await?;
                if let (true, Some(lines)) = (*tt10, record.tt10) {
                    client
                        .publish(
                            format!("ioc/tt10/{}", record.source),
                            QoS::AtLeastOnce,
                            false,
                            lines.into_bytes(),
                        )
                        .await?;
                }
            }
            #[cfg(feature = "kafka")]
            Sink::Kafka(kafka) => kafka.send(&record.source, record.json.into_bytes())?,
        }
        Ok(())
    }

    /// Waits for deliveries where the transport reports them (Kafka).
    async fn flush(&mut self) -> Result<()> {
        match self {
            Sink::Mqtt { .. } => Ok(()),
            #[cfg(feature = "kafka")]
            Sink::Kafka(kafka) => Ok(kafka.flush().await?),
        }
    }
}

/// Burst mode: `rate` readings per second for `span`, cycling through the stations,
/// stamped with the wall clock (each station's stamps strictly increasing).
pub async fn burst(mut sim: Simulator, sink: &mut Sink, rate: u64, span: Duration) -> Result<()> {
    let began = tokio::time::Instant::now();
    let mut last_ts = vec![i64::MIN; sim.station_count()];
    let total = rate.saturating_mul(span.as_millis() as u64) / 1000;
    for n in 0..total {
        tokio::time::sleep_until(began + Duration::from_nanos(n * 1_000_000_000 / rate.max(1)))
            .await;
        let station = sim.burst_station(n);
        let ts = now_ms().max(last_ts[station] + 1);
        last_ts[station] = ts;
        sink.send(sim.burst_record(n, ts)).await?;
        if n % 1000 == 999 {
            sink.flush().await?;
        }
    }
    sink.flush().await?;
    let secs = began.elapsed().as_secs_f64();
    eprintln!(
        "simulate: burst of {total} messages in {secs:.1} s ({:.0} msg/s)",
        total as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Publishes a simulation to `sink`, paced so that simulated time runs `speed` times
/// faster than the wall clock from `start_ms`; stops early when `stop` changes.
pub async fn publish(
    mut sim: Simulator,
    sink: &mut Sink,
    speed: f64,
    start_ms: i64,
    mut stop: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<()> {
    let began = tokio::time::Instant::now();
    let mut batch = Vec::new();
    while sim.next_minute(&mut batch) {
        for record in batch.drain(..) {
            let due = Duration::from_secs_f64(
                ((record.ts - start_ms).max(0) as f64 / 1000.0) / speed.max(1e-6),
            );
            if let Some(stop) = &mut stop {
                tokio::select! {
                    _ = tokio::time::sleep_until(began + due) => {}
                    _ = stop.changed() => return Ok(()),
                }
            } else {
                tokio::time::sleep_until(began + due).await;
            }
            sink.send(record).await?;
        }
        sink.flush().await?;
    }
    Ok(())
}
