#!/usr/bin/env bash
# How cost grows, on all three backends in one sitting, then the plots:
#   benches/curves.sh            # curves (get, managed session) and bulk_curves (load, read)
# Writes benches/results/{curves,bulk}-<backend>.csv and benches/plots/*.svg. PostgreSQL and
# MariaDB must be running (127.0.0.1:5432, user postgres; 127.0.0.1:3306, user root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ops-benches --bin curves --bin bulk_curves
bin="${CARGO_TARGET_DIR:-target}/release"
PG="postgres://postgres@127.0.0.1:5432/test"
MY="mysql://root@127.0.0.1:3306/test"
for url in "" "$PG" "$MY"; do
  BENCH_DATABASE_URL="$url" "$bin/curves" run
  BENCH_DATABASE_URL="$url" "$bin/bulk_curves" run
done
"$bin/curves" plot
"$bin/bulk_curves" plot
