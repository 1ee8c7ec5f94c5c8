//! `watchfloor loadgen`: publishes telemetry at fixed rates to an MQTT broker and measures
//! publish-to-alert latency with hdrhistogram.
//!
//! The telemetry is the city simulator's burst mode (`Simulator::burst_record`: readings of
//! synthetic discharge, air, hydrology and traffic stations at any rate); one message in
//! `--probe-every` is a *probe* (a traffic reading with speed 1000 and a unique `attrs.seq`) that the `load_probe` rule (see `benches/loadgen/rules`) turns into an
//! alert. The generator subscribes to the alert topic and times each probe from its publish
//! to its alert. A rate is *sustained* when every probe of the step arrives and the
//! latency of the last tenth of the step is not growing away from the first tenth.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use rumqttc::{Event, MqttOptions, Packet, QoS};

/// Options of `watchfloor loadgen`.
#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Publish rates to try, messages per second, in order.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,100000")]
    pub rates: Vec<u64>,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Distinct stations.
    #[arg(long, default_value_t = 1000)]
    pub stations: u64,
    /// One message in this many is a latency probe.
    #[arg(long, default_value_t = 100)]
    pub probe_every: u64,
    /// QoS of the published telemetry (0 or 1).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Measure the broker alone: subscribe to the telemetry itself (at `--qos`) and time
    /// each probe from its publish to its arrival, with no pipeline running.
    #[arg(long)]
    pub sink: bool,
}

/// Sources the probes are spread over.
const PROBE_SOURCES: usize = 64;

struct StepResult {
    rate: u64,
    seconds: u64,
    sent: u64,
    achieved_rate: f64,
    probes: u64,
    received: u64,
    histogram: Histogram<u64>,
    first_tenth_p50_us: u64,
    last_tenth_p50_us: u64,
}

impl StepResult {
    fn sustained(&self) -> bool {
        self.received == self.probes
            && self.sent == self.rate * self.seconds
            && self.achieved_rate >= self.rate as f64 * 0.95
            && self.last_tenth_p50_us <= self.first_tenth_p50_us * 3 + 20_000
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Runs the rate steps and prints one line per step plus a summary.
pub fn run(args: &LoadgenArgs) -> Result<ExitCode> {
    // One thread: the generator shares the machine with the broker and the pipeline.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut best = None;
    for (i, rate) in args.rates.iter().enumerate() {
        let result = runtime.block_on(step(args, *rate, i))?;
        println!(
            "rate {:>7}/s: sent {:>8} ({:>9.0}/s), probes {}/{}, latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, backlog {} ({:.2} → {:.2} ms)",
            result.rate,
            result.sent,
            result.achieved_rate,
            result.received,
            result.probes,
            ms(result.histogram.value_at_quantile(0.5)),
            ms(result.histogram.value_at_quantile(0.99)),
            ms(result.histogram.value_at_quantile(0.999)),
            ms(result.histogram.max()),
            if result.sustained() { "steady" } else { "GROWING or lost" },
            ms(result.first_tenth_p50_us),
            ms(result.last_tenth_p50_us),
        );
        if result.sustained() {
            best = Some(result.rate);
        }
    }
    match best {
        Some(rate) => {
            println!("highest rate sustained without a growing backlog: {rate} messages/s")
        }
        None => println!("no rate was sustained"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn step(args: &LoadgenArgs, rate: u64, step_index: usize) -> Result<StepResult> {
    let qos = if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();

    // The alert listener.
    let mut options = MqttOptions::new(
        format!("loadgen-listener-{step_index}"),
        args.host.clone(),
        args.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (listener, mut listener_loop) = watchfloor_connectors::mqtt_client(options, 64);
    if args.sink {
        listener.subscribe("ioc/load/+/telemetry", qos).await?;
    } else {
        listener
            .subscribe("ioc/alerts/+/load_probe", QoS::AtMostOnce)
            .await?;
    }
    let (times, lat) = (sent_at.clone(), latencies.clone());
    let listening = tokio::spawn(async move {
        while let Ok(event) = listener_loop.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let now = Instant::now();
                // An alert names its probe in `key`; a probe itself (--sink) in `attrs.seq`.
                if p.topic.starts_with("ioc/load/") && p.topic != "ioc/load/probe/telemetry" {
                    continue;
                }
                let Ok(message) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                    continue;
                };
                let seq = message["key"].as_str().or(message["attrs"]["seq"].as_str());
                let Some(seq) = seq.and_then(|k| k.parse::<u64>().ok()) else {
                    continue;
                };
                if let Some(sent) = times.lock().expect("lock").get(&seq) {
                    lat.lock()
                        .expect("lock")
                        .push((seq, now.duration_since(*sent).as_micros() as u64));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The publisher: paced in 1 ms slots, every message due in a slot written at once.
    let mut publisher = BatchPublisher::connect(
        &args.host,
        args.port,
        &format!("loadgen-publisher-{step_index}"),
        qos,
    )
    .await?;
    let total = rate * args.seconds;
    let start = Instant::now();
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let seq_base = (step_index as u64 + 1) * 1_000_000_000;
    let mut probes = 0;
    // The bulk of the traffic is the city simulator's burst mode (discharge, air, hydrology
    // and traffic readings of synthetic stations); one message in `probe_every` is a probe.
    let mut sim = watchfloor_simulators::Simulator::synthetic(
        step_index as u64,
        args.stations as usize,
        base_ms,
    );
    let mut last_ts = vec![i64::MIN; sim.station_count()];
    // Probes come from several sources, so that at a high probe rate each source's
    // timestamps can stay strictly increasing and near the clock (one source sending
    // 10,000 probes a second would run ahead of the clock and be refused).
    let mut last_probe_ts = [i64::MIN; PROBE_SOURCES];
    let mut n = 0;
    while n < total {
        let elapsed = start.elapsed();
        let due = ((elapsed.as_nanos() as u64).saturating_mul(rate) / 1_000_000_000 + 1).min(total);
        let now_ms = base_ms + elapsed.as_millis() as i64;
        while n < due {
            let seq = seq_base + n;
            // Each source's readings get strictly increasing timestamps (a real station
            // never sends two readings in the same millisecond; the engine refuses that as
            // a duplicate).
            if n % args.probe_every == 0 {
                let source = probes as usize % PROBE_SOURCES;
                let ts = now_ms.max(last_probe_ts[source] + 1);
                last_probe_ts[source] = ts;
                probes += 1;
                sent_at.lock().expect("lock").insert(seq, Instant::now());
                let payload = format!(
                    r#"{{"source":"LOAD-PROBE-{source:02}","kind":"traffic","ts":{ts},"values":{{"speed":1000}},"attrs":{{"seq":"{seq}"}}}}"#
                );
                publisher.queue("ioc/load/probe/telemetry", payload.as_bytes())?;
            } else {
                let station = sim.burst_station(n);
                let ts = now_ms.max(last_ts[station] + 1);
                last_ts[station] = ts;
                let record = sim.burst_record(n, ts);
                publisher.queue(
                    &format!("ioc/load/{}/telemetry", record.source),
                    record.json.as_bytes(),
                )?;
            }
            n += 1;
        }
        if let Err(e) = publisher.flush().await {
            // Beyond what the broker can take: the step ends here, not sustained.
            println!("rate {rate:>7}/s: stopped after {n} messages: {e}");
            break;
        }
        // Sleep to the next 1 ms slot (or on at once when behind).
        let next = Duration::from_millis(start.elapsed().as_millis() as u64 + 1);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let send_time = start.elapsed();
    // Wait for the probes to come back (or give up after 10 s of silence).
    let mut last_count = 0;
    let mut quiet = Instant::now();
    loop {
        let count = latencies.lock().expect("lock").len() as u64;
        if count >= probes || quiet.elapsed() > Duration::from_secs(10) {
            break;
        }
        if count != last_count {
            last_count = count;
            quiet = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listening.abort();
    publisher.disconnect().await;
    let mut samples = latencies.lock().expect("lock").clone();
    samples.sort();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    for (_, us) in &samples {
        histogram.saturating_record(*us);
    }
    let tenth = (samples.len() / 10).max(1);
    let p50 = |part: &[(u64, u64)]| {
        let mut v: Vec<u64> = part.iter().map(|(_, us)| *us).collect();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let (first, last) = if samples.is_empty() {
        (0, 0)
    } else {
        (
            p50(&samples[..tenth.min(samples.len())]),
            p50(&samples[samples.len().saturating_sub(tenth)..]),
        )
    };
    Ok(StepResult {
        rate,
        seconds: args.seconds,
        sent: n,
        achieved_rate: n as f64 / send_time.as_secs_f64(),
        probes,
        received: samples.len() as u64,
        histogram,
        first_tenth_p50_us: first,
        last_tenth_p50_us: last,
    })
}

/// A load publisher that encodes the messages of a pacing slot with rumqttc's MQTT 3.1.1
/// codec and writes them with one system call. rumqttc's client writes and flushes one
/// packet per request, which made the generator, not the system under test, the limit.
struct BatchPublisher {
    writer: tokio::net::tcp::OwnedWriteHalf,
    buffer: bytes::BytesMut,
    qos: QoS,
    next_pkid: u16,
    sent: u64,
    acked: Arc<std::sync::atomic::AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

/// QoS 1 publishes awaiting their PUBACK at most (packet ids must not be reused in flight).
const MAX_UNACKED: u64 = 30_000;

impl BatchPublisher {
    async fn connect(host: &str, port: u16, client_id: &str, qos: QoS) -> Result<Self> {
        use rumqttc::mqttbytes::v4::{Connect, Packet as Wire};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        stream.set_nodelay(true)?;
        let (mut read_half, mut writer) = stream.into_split();
        let mut buffer = bytes::BytesMut::with_capacity(1 << 20);
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 0;
        Wire::Connect(connect).write(&mut buffer, 1 << 20)?;
        writer.write_all(&buffer).await?;
        buffer.clear();
        // The CONNACK, then PUBACKs counted by a reader task.
        let mut incoming = bytes::BytesMut::with_capacity(64 * 1024);
        loop {
            if read_half.read_buf(&mut incoming).await? == 0 {
                anyhow::bail!("broker closed the connection before CONNACK");
            }
            match Wire::read(&mut incoming, 1 << 20) {
                Ok(Wire::ConnAck(ack)) if ack.code == rumqttc::ConnectReturnCode::Success => break,
                Ok(other) => anyhow::bail!("broker refused the connection: {other:?}"),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => continue,
                Err(e) => anyhow::bail!("bad CONNACK: {e}"),
            }
        }
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = acked.clone();
        let reader = tokio::spawn(async move {
            loop {
                loop {
                    match Wire::read(&mut incoming, 1 << 20) {
                        Ok(Wire::PubAck(_)) => {
                            counter.fetch_add(1, std::sync::atomic::Ordering::Release);
                        }
                        Ok(_) => {}
                        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                        Err(e) => {
                            eprintln!("loadgen: unreadable packet from the broker: {e}");
                            return;
                        }
                    }
                }
                match read_half.read_buf(&mut incoming).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        Ok(Self {
            writer,
            buffer,
            qos,
            next_pkid: 0,
            sent: 0,
            acked,
            reader,
        })
    }

    /// Encodes one message into the slot's buffer.
    fn queue(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        let mut publish = rumqttc::Publish::new(topic, self.qos, payload.to_vec());
        if self.qos != QoS::AtMostOnce {
            self.next_pkid = self.next_pkid % u16::MAX + 1;
            publish.pkid = self.next_pkid;
            self.sent += 1;
        }
        publish.write(&mut self.buffer)?;
        Ok(())
    }

    /// Writes the slot's messages; with QoS 1, first waits while too many are unacknowledged.
    async fn flush(&mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let waiting_since = Instant::now();
        while self
            .sent
            .saturating_sub(self.acked.load(std::sync::atomic::Ordering::Acquire))
            > MAX_UNACKED
        {
            if waiting_since.elapsed() > Duration::from_secs(30) || self.reader.is_finished() {
                anyhow::bail!(
                    "the broker stopped acknowledging: {} published at QoS 1, {} acknowledged",
                    self.sent,
                    self.acked.load(std::sync::atomic::Ordering::Acquire)
                );
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        self.writer.write_all(&self.buffer).await?;
        self.buffer.clear();
        Ok(())
    }

    async fn disconnect(mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.writer.write_all(&[0xE0, 0x00]).await;
        self.reader.abort();
    }
}
