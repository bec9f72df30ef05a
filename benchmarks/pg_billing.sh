#!/usr/bin/env bash
# Durable billing on both backends in one run: authorize + settle per second (1,024 calls
# in flight, billing_bench's BM_AuthorizeSettleDurableAsync) on the embedded SQLite
# (synchronous=FULL) and on a PostgreSQL 15 with its durable defaults (fsync, every commit
# flushed), started here on 127.0.0.1 and stopped at the end; then a 1,000,000-row rate
# deck imported into each (callbackctl rates import; COPY on PostgreSQL).
#
#   benchmarks/pg_billing.sh [BUILD_DIR]     # default build-release
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
state=$(mktemp -d /tmp/callback-pgbench.XXXXXX)
work=$(mktemp -d /tmp/callback-pgbench-work.XXXXXX)
cleanup() { bash tests/support/postgres.sh stop "$state" || true; rm -rf "$state" "$work"; }
trap cleanup EXIT
bash tests/support/postgres.sh start "$state" --durable
server=$(cat "$state/conninfo")
sql() { psql "$server dbname=postgres" -qAtc "$1"; }

echo "== authorize + settle, SQLite (synchronous=FULL)"
CALLBACK_DATA_DIR="$work" "$build/bin/billing_bench" --benchmark_filter='AuthorizeSettleDurableAsync/1024' \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>&1 | grep -E "items_per_second|^BM"
for writers in 1 4 8; do
  sql "DROP DATABASE IF EXISTS bench" && sql "CREATE DATABASE bench"
  echo "== authorize + settle, PostgreSQL (fsync on), $writers writer connection(s)"
  CALLBACK_BENCH_PG="$server dbname=bench" CALLBACK_BENCH_PG_WRITERS=$writers "$build/bin/billing_bench" \
    --benchmark_filter='AuthorizeSettleDurableAsync/1024' 2>&1 | grep -E "^BM"
done

python3 benchmarks/make_deck.py 1000000 > "$work/deck.csv"
echo "== 1,000,000-row deck import, SQLite"
CALLBACK_DATA_DIR="$work/sqlite" /usr/bin/time -f "%e s wall, %M KB max RSS" "$build/bin/callbackctl" rates import big "$work/deck.csv"
sql "DROP DATABASE IF EXISTS imp" && sql "CREATE DATABASE imp"
cat > "$work/pg.json" <<JSON
{"store": {"plugin": "callback.store.postgres", "config": {"conninfo": "$server dbname=imp"}},
 "billing": {"plugin": "callback.billing.postgres"}}
JSON
echo "== 1,000,000-row deck import, PostgreSQL (COPY), into an empty database, then replacing it"
for run in first replacing; do
  /usr/bin/time -f "$run: %e s wall, %M KB max RSS" "$build/bin/callbackctl" --config "$work/pg.json" rates import big "$work/deck.csv"
done
