#!/usr/bin/env bash
# Catch-up benchmark: how fast Watchfloor works off a backlog its broker kept while it was
# down (persistent session, QoS 1). Mosquitto on port 18830, `watchfloor run` with
# $PIPELINE (default benches/loadgen/pipeline.toml; durable.toml for crash-exact state),
# `watchfloor loadgen` filling the queue. Prints the
# pipeline's progress lines (received, rate per 5 s) while it drains.
#   benches/loadgen/drain.sh [rate] [seconds]    (backlog = rate × seconds messages)
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-30000}
seconds=${2:-30}
total=$((rate * seconds))
pipeline=${PIPELINE:-benches/loadgen/pipeline.toml}
source benches/loadgen/broker.sh
# Subscribe once (persistent session), then go away.
target/release/watchfloor run --pipeline "$pipeline" 2>/dev/null &
engine=$!
sleep 2
kill -TERM $engine; wait $engine || true
echo "filling the backlog: $total messages at QoS 1 while watchfloor is down"
target/release/watchfloor loadgen --port 18830 --rates "$rate" --seconds "$seconds" --qos 1 >/dev/null
echo "restarting watchfloor"
start=$(date +%s.%N)
target/release/watchfloor run --pipeline "$pipeline" 2>"$work/watchfloor.log" &
engine=$!
while :; do
  received=$(sed 's/\x1b\[[0-9;]*m//g' "$work/watchfloor.log" | grep -o "received=[0-9]*" | tail -1 | cut -d= -f2 || true)
  if [ "${received:-0}" -ge "$total" ]; then break; fi
  sleep 0.2
done
end=$(date +%s.%N)
sed 's/\x1b\[[0-9;]*m//g' "$work/watchfloor.log" | grep 'pipeline progress' | grep -o 'received=[0-9]* .*rate_per_s=[0-9.]*'
echo "backlog of $total worked off; last progress line at $(awk "BEGIN{printf \"%.1f\", $end - $start}") s after the restart (lines come every 5 s)"
