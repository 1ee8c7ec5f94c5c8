#!/usr/bin/env bash
# End-to-end load benchmark: Mosquitto → watchfloor run → MQTT alerts, timed by
# `watchfloor loadgen` (hdrhistogram percentiles). Results go to docs/performance.md.
#   benches/loadgen/run.sh [rates] [seconds] [qos] [pipeline|sink]
# `sink` measures Mosquitto alone: no pipeline, the generator subscribes to its own telemetry.
set -euo pipefail
cd "$(dirname "$0")/../.."
rates=${1:-10000,50000,100000}
seconds=${2:-10}
qos=${3:-1}
mode=${4:-pipeline}
pipeline=${PIPELINE:-benches/loadgen/pipeline.toml}
source benches/loadgen/broker.sh
if [ "$mode" = sink ]; then
  target/release/watchfloor loadgen --port 18830 --rates "$rates" --seconds "$seconds" --qos "$qos" --sink
  exit
fi
RUST_LOG=warn target/release/watchfloor run --pipeline "$pipeline" 2>"$work/watchfloor.log" &
engine=$!
sleep 1.5
target/release/watchfloor loadgen --port 18830 --rates "$rates" --seconds "$seconds" --qos "$qos"
