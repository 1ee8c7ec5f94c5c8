# Sourced by the load scripts: builds the release binary and starts a Mosquitto on port
# 18830 (no persistence, unbounded queues, Nagle off) in a scratch directory `$work`.
# Sets `broker` and an empty `engine`; both are stopped when the script exits.
cargo build --release -q
# A durable pipeline's state (benches/loadgen/durable.toml) starts empty each run.
rm -rf benches/loadgen/state
work=$(mktemp -d)
cat > "$work/mosquitto.conf" <<CONF
listener 18830 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
set_tcp_nodelay true
CONF
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto" -c "$work/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
engine=
trap 'kill ${engine:-} $broker 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5
