#!/usr/bin/env bash
# Instructions per call of each contender, from two callgrind runs of `instructions` (N and
# N + 1000 calls): stable where wall-clock medians are noisy.
#
#   benches/instructions.sh ops_get seaorm_find_by_id          # SQLite in memory
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test benches/instructions.sh ops_get
set -euo pipefail
bin=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/instructions
total() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for name in "$@"; do
  low=$(total "$name" 200)
  high=$(total "$name" 1200)
  echo "$name $(( (high - low) / 1000 ))"
done
