#!/usr/bin/env bash
# Prints the medians of the last `cargo bench -p ops-benches` run for one backend as a Markdown
# table, each contender with its ratio to the first one of its group (ops).
#
#   benches/table.sh postgres        # or sqlite, mysql
#
# Reads criterion's estimates from $CARGO_TARGET_DIR/criterion (default: target/criterion).
set -euo pipefail
backend=${1:-sqlite}
root=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/criterion

fmt() { # nanoseconds -> a readable duration
  awk -v ns="$1" 'BEGIN {
    if (ns >= 1e6) printf "%.2f ms", ns / 1e6;
    else if (ns >= 1e3) printf "%.1f µs", ns / 1e3;
    else printf "%.1f ns", ns }'
}

# Each comparison: its criterion group, then its contenders with the ops one first. The ratio is
# the ops median over the contender's (below 1: ops is faster).
groups=(
  "pk_read:ops_get seaorm_find_by_id sqlx_fetch_one"
  "insert:ops_create seaorm_insert sqlx_insert"
  "transaction:ops_managed seaorm_begin_commit"
  "retry:get_db_retry get_bare"
  "retry:nothing_db_retry nothing_bare"
  "bulk:ops_create_many seaorm_insert_many sqlx_multi_row"
  "page:ops_list seaorm_paginate sqlx_two_queries"
  "defaults:ops_db_connect_get seaorm_database_connect_find_by_id"
  "defaults_isolated:ops_db_connect_get seaorm_database_connect_find_by_id"
)
echo "| bench | contender | median | ops / contender |"
echo "| --- | --- | --- | --- |"
for entry in "${groups[@]}"; do
  group=${entry%%:*}
  read -r -a names <<<"${entry#*:}"
  dir="$root/${group}_${backend}"
  [ -d "$dir" ] || continue
  base=""
  for name in "${names[@]}"; do
    file="$dir/$name/new/estimates.json"
    [ -f "$file" ] || continue
    median=$(jq '.median.point_estimate' "$file")
    if [ -z "$base" ]; then
      base=$median
      ratio="1.00"
    else
      ratio=$(awk -v a="$base" -v b="$median" 'BEGIN { printf "%.2f", a / b }')
    fi
    echo "| $group | $name | $(fmt "$median") | $ratio |"
  done
done
