#!/usr/bin/env bash
# Two billing_bench binaries (say, the commit before a change and after it) measured in
# alternated pairs, so that both meet the same moment of the machine (a VM's speed moves
# by tens of percent from one minute to the next): BM_AuthorizeSettleDurableAsync/1024 on
# a PostgreSQL 15 with its durable defaults started here (a fresh database each run), or
# on SQLite (synchronous=FULL).
#
#   benchmarks/billing_ab.sh BASE_BIN NEW_BIN [postgres|sqlite] [PAIRS]   # default postgres 3
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1 new=$2 backend=${3:-postgres} pairs=${4:-3}
state=$(mktemp -d /tmp/callback-billing-ab.XXXXXX)
cleanup() { [ "$backend" = postgres ] && bash tests/support/postgres.sh stop "$state" >/dev/null 2>&1; rm -rf "$state"; }
trap cleanup EXIT
if [ "$backend" = postgres ]; then
  bash tests/support/postgres.sh start "$state" --durable >/dev/null
  server=$(cat "$state/conninfo")
fi
run() {  # binary
  local data
  if [ "$backend" = postgres ]; then
    psql "$server dbname=postgres" -qAtc "DROP DATABASE IF EXISTS bench" 2>/dev/null
    psql "$server dbname=postgres" -qAtc "CREATE DATABASE bench"
    CALLBACK_BENCH_PG="$server dbname=bench" "$1" --benchmark_filter='AuthorizeSettleDurableAsync/1024' 2>&1
  else
    data=$(mktemp -d /tmp/callback-billing-ab-data.XXXXXX)
    CALLBACK_DATA_DIR="$data" "$1" --benchmark_filter='AuthorizeSettleDurableAsync/1024' 2>&1
    rm -rf "$data"
  fi | grep -o 'items_per_second=[0-9.k]*' | cut -d= -f2
}
for pair in $(seq "$pairs"); do
  echo "pair $pair ($backend): base $(run "$base")/s, new $(run "$new")/s"
done
