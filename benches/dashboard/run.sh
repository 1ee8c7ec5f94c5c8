#!/usr/bin/env bash
# Dashboard map benchmark (10,000 stations): see map.mjs. Results in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 benches/dashboard/make_big_city.py "$work/rules" 10000
source benches/demo-pipeline.sh
demo_pipeline "$work/rules" "$work/demo.toml"
node benches/dashboard/map.mjs "$PWD/target/release/watchfloor" "$work/demo.toml" 18095 18895 "$work/data" "${1:-30}"
