#!/usr/bin/env bash
# A 1,000,000-row rate-deck import (benchmarks/make_deck.py, `callbackctl rates import`)
# with two builds (say, the commit before a change and after it), in alternated pairs so
# that both meet the same moment of this VM. PostgreSQL 15 with its durable defaults,
# started here; each run makes a fresh database, imports into it (empty), then imports
# the same deck again (replacing it). Prints the wall seconds of both.
#
#   benchmarks/import_ab.sh BASE_BUILD NEW_BUILD [PAIRS]   # build dirs with bin/ and lib/; default 3
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1 new=$2 pairs=${3:-3}
state=$(mktemp -d /tmp/callback-import-ab.XXXXXX)
work=$(mktemp -d /tmp/callback-import-ab-work.XXXXXX)
cleanup() { bash tests/support/postgres.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state" "$work"; }
trap cleanup EXIT
bash tests/support/postgres.sh start "$state" --durable >/dev/null
server=$(cat "$state/conninfo")
python3 benchmarks/make_deck.py 1000000 >"$work/deck.csv"
cat >"$work/pg.json" <<JSON
{"store": {"plugin": "callback.store.postgres", "config": {"conninfo": "$server dbname=imp"}},
 "billing": {"plugin": "callback.billing.postgres"}}
JSON
run() {  # build dir
  psql "$server dbname=postgres" -qAtc "DROP DATABASE IF EXISTS imp" 2>/dev/null
  psql "$server dbname=postgres" -qAtc "CREATE DATABASE imp"
  local times=()
  for _ in empty replacing; do
    times+=("$( { /usr/bin/time -f "%e" "$1/bin/callbackctl" --config "$work/pg.json" rates import big "$work/deck.csv" \
                  >/dev/null; } 2>&1 | tail -1)")
  done
  echo "empty ${times[0]} s, replacing ${times[1]} s"
}
for pair in $(seq 1 "$pairs"); do
  echo "pair $pair: base $(run "$base"); new $(run "$new")"
done
