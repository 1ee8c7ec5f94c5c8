#!/usr/bin/env bash
# WebSocket fan-out benchmark: `watchfloor demo` (embedded broker, simulated city, engine,
# server) with the shipped rules plus a probe rule; a burst of 20,000 readings/s from the
# simulator; 1,000 WebSocket clients subscribed to alerts and KPIs; probe alerts timed from
# publish to each client. Results go to docs/performance.md.
#   benches/fanout/run.sh [clients] [rate] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-1000}
rate=${2:-20000}
seconds=${3:-30}
cargo build --release -q
work=$(mktemp -d)
cp -r alert-rules "$work/rules"
cp benches/fanout/probe.yaml "$work/rules/"
ulimit -n 65536 || true
source benches/demo-pipeline.sh
demo_pipeline "$work/rules" "$work/demo.toml"
RUST_LOG=warn target/release/watchfloor demo --pipeline "$work/demo.toml" --http-port 18090 --mqtt-port 18893 --data-dir "$work/data" > "$work/demo.log" 2>&1 &
demo=$!
trap 'kill $burst $demo 2>/dev/null || true; rm -rf "$work"' EXIT
burst=
sleep 3
target/release/watchfloor simulate --rules alert-rules --mqtt 127.0.0.1:18893 --burst "$rate" --duration "$((seconds + 40))s" 2>"$work/burst.log" &
burst=$!
target/release/watchfloor fanout-bench --http-port 18090 --mqtt-port 18893 --clients "$clients" --seconds "$seconds" --server-pid "$demo"
curl -s localhost:18090/metrics | grep -E '^watchfloor_(ingested_total|received_total|queue_depth|ws_clients|ws_resyncs_total) |^watchfloor_rejected_total.* [1-9]'
