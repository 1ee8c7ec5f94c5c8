#!/usr/bin/env bash
# The command centre under load: the durable load pipeline (benches/loadgen/durable.toml)
# with and without `[server]` + `[store]`, side by side, at one rate. One message in
# `probe_every` is a probe that fires its own alert, so 20,000 msg/s with probe_every 2 is
# 10,000 alert transitions a second into the incident store (docs/performance.md,
# "The incident store").
#   benches/loadgen/centre.sh [none|sqlite|postgres] [rate] [seconds] [probe_every]
set -euo pipefail
cd "$(dirname "$0")/../.."
store=${1:-sqlite}
rate=${2:-20000}
seconds=${3:-60}
probe_every=${4:-2}
source benches/loadgen/broker.sh
pipeline=benches/loadgen/state/centre.toml
mkdir -p benches/loadgen/state

echo "account = []" > benches/loadgen/state/accounts.toml
cp benches/loadgen/durable.toml "$pipeline"
sed -i 's|^rules = "rules"|rules = "../rules"|; s|^checkpoint = "state/engine.checkpoint"|checkpoint = "engine.checkpoint"|' "$pipeline"
http=18831
pg=
case "$store" in
  none) ;;
  sqlite)
    printf '\n[server]\nlisten = "127.0.0.1:%s"\naccounts = "accounts.toml"\n\n[store]\nurl = "sqlite:incidents.db"\n' "$http" >> "$pipeline" ;;
  postgres)
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    # PostgreSQL refuses to run as root: the cluster belongs to `postgres` then.
    as=; [ "$(id -u)" = 0 ] && as="runuser -u postgres --"
    pgdata=$(mktemp -d)
    [ -n "$as" ] && chown postgres:postgres "$pgdata"
    $as "$bin/initdb" -D "$pgdata/data" -U postgres -A trust >/dev/null
    $as "$bin/pg_ctl" -D "$pgdata/data" -o "-p 18832 -k $pgdata -c listen_addresses=127.0.0.1" -l "$pgdata/pg.log" -w start >/dev/null
    pg="$as $bin/pg_ctl -D $pgdata/data -m immediate stop"
    "$bin/createdb" -h 127.0.0.1 -p 18832 -U postgres centre
    printf '\n[server]\nlisten = "127.0.0.1:%s"\naccounts = "accounts.toml"\n\n[store]\nurl = "postgres://postgres@127.0.0.1:18832/centre"\n' "$http" >> "$pipeline" ;;
  *) echo "store: none, sqlite or postgres" >&2; exit 2 ;;
esac
trap 'kill ${engine:-} $broker 2>/dev/null || true; ${pg:-true} >/dev/null 2>&1 || true; rm -rf "$work" ${pgdata:-}' EXIT
RUST_LOG=warn target/release/watchfloor run --pipeline "$pipeline" 2>"benches/loadgen/state/watchfloor-$store.log" &
engine=$!
sleep 2
echo "store: $store, $rate msg/s for $seconds s, one probe (one alert) in $probe_every"
target/release/watchfloor loadgen --port 18830 --rates "$rate" --seconds "$seconds" --qos 1 --probe-every "$probe_every"
if [ "$store" != none ]; then
  metrics() { curl -s "http://127.0.0.1:$http/metrics" | grep -E '^watchfloor_(store_backlog|store_written_total|store_batches_total|store_shed_total|received_total) ' | tr '\n' ' '; echo; }
  echo "right after the step: $(metrics)"
  start=$(date +%s)
  while [ "$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^watchfloor_store_backlog /{print $2}')" != 0 ]; do
    sleep 1
    if [ $(( $(date +%s) - start )) -gt 600 ]; then echo "store still behind after 600 s"; break; fi
  done
  echo "store caught up $(( $(date +%s) - start )) s after the step: $(metrics)"
fi
