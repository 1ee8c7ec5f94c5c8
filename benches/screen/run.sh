#!/usr/bin/env bash
# Sensor-to-screen benchmark: `watchfloor demo` (embedded broker, simulated city, engine,
# server) with the shipped rules plus a probe rule, a burst of 20,000 readings/s from the
# simulator, the city operator's dashboard in headless Chromium (1920×1080), and probe
# readings published over MQTT, each timed from its publish to the frame in which the page
# drew its alert's row. Results go to docs/performance.md.
#   benches/screen/run.sh [rate] [seconds] [probes per second]
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-20000}
seconds=${2:-60}
probes=${3:-2}
cargo build --release -q
work=$(mktemp -d)
cp -r alert-rules "$work/rules"
cp benches/screen/probe.yaml "$work/rules/"
source benches/demo-pipeline.sh
demo_pipeline "$work/rules" "$work/demo.toml"
RUST_LOG=warn target/release/watchfloor demo --pipeline "$work/demo.toml" --http-port 18091 --mqtt-port 18894 --data-dir "$work/data" > "$work/demo.log" 2>&1 &
demo=$!
burst=
trap 'kill $burst $demo 2>/dev/null || true; wait $demo 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do curl -sf localhost:18091/healthz >/dev/null && break; sleep 0.1; done
target/release/watchfloor simulate --rules alert-rules --mqtt 127.0.0.1:18894 --burst "$rate" --duration "$((seconds + 60))s" 2>"$work/burst.log" &
burst=$!
node benches/screen/screen.mjs 18091 18894 "$seconds" "$probes" "$demo"
