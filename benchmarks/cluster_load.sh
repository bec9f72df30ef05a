#!/usr/bin/env bash
# Issue 13's scaling figure: callbacks per second through 1, 2 and 3 callbackd nodes on one
# PostgreSQL (fsync on), each node on both of two Asterisk fakes, measured in one run.
#
#   benchmarks/cluster_load.sh [BUILD_DIR]        (default build-release)
#
# Needs wrk, python3, curl, Debian's postgresql, and in BUILD_DIR/bin: callbackd, callbackctl,
# callback-fake-asterisk (and the plugins store_postgres, billing_postgres, engine_ami):
#   cmake --build build-release --target callbackd callbackctl callback-fake-asterisk \
#     store_postgres billing_postgres engine_ami
#
# For each N: a new database, N nodes ("node": "nK", "threads": 2 each), an account with a
# big balance and a deck, then one wrk per node at once (-t1, CONNECTIONS/N connections
# each) POSTing {"caller": "1001", "callee": "3001", "account": "bench"}: every POST is a
# new callback, billed (authorize, then release: 3XXX is busy on the fake) and journaled in
# PostgreSQL. Accepted/s is the sum of the nodes' 202s over the run; then the time until
# every node has nothing in flight. Environment: DURATION (10s), CONNECTIONS (64), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
bin=$build/bin
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
wrk_threads=1 server_threads=2
lua=$PWD/benchmarks/wrk/count.lua
command -v wrk >/dev/null || { echo "cluster_load.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
for b in callbackd callbackctl callback-fake-asterisk; do
  [[ -x $bin/$b ]] || { echo "cluster_load.sh: $bin/$b is missing; build it first" >&2; exit 2; }
done
tmp=$(mktemp -d /tmp/cluster_load.XXXXXX)
chmod 755 "$tmp"
source benchmarks/load_common.sh
pg_state=$tmp/postgres
stop_pg() { bash tests/support/postgres.sh stop "$pg_state" >/dev/null 2>&1 || true; cleanup; }
trap stop_pg EXIT
bash tests/support/postgres.sh start "$pg_state" --durable >/dev/null
server=$(cat "$pg_state/conninfo")
echo "cluster_load.sh: $(nproc) cores shared by PostgreSQL (fsync on), the fakes, the nodes and wrk. build: $build"

start fake1 'listening on 127\.0\.0\.1:([0-9]+)' "$bin/callback-fake-asterisk" --port 0 --time-scale 0
ami1=$port
start fake2 'listening on 127\.0\.0\.1:([0-9]+)' "$bin/callback-fake-asterisk" --port 0 --time-scale 0
ami2=$port
body='{"caller": "1001", "callee": "3001", "account": "bench"}'
summary=()
for n in 1 2 3; do
  db=bench$n
  psql "$server dbname=postgres" -qc "CREATE DATABASE $db" >/dev/null
  node_pids=() node_ports=()
  for k in $(seq "$n"); do
    cfg=$tmp/n$n-$k.json
    cat >"$cfg" <<JSON
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "store": {"plugin": "callback.store.postgres", "config": {"conninfo": "$server dbname=$db"}},
  "billing": {"plugin": "callback.billing.postgres"},
  "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:$ami1", "127.0.0.1:$ami2"],
               "username": "callback", "secret": "callbacksecret"}}],
  "service": {"node": "n$k"},
  "server": {"listen": "127.0.0.1:0", "threads": $server_threads},
  "log": {"level": "warning"}
}
JSON
    if [[ $k == 1 ]]; then
      printf 'prefix;description;rate;increment\n1;bench 1XXX;0.10;60/60\n3;bench 3XXX;0.10;60/60\n' >"$tmp/deck.csv"
      "$bin/callbackctl" --config "$cfg" rates import default "$tmp/deck.csv" >/dev/null
      "$bin/callbackctl" --config "$cfg" accounts add bench --balance 100000000.00 >/dev/null
      key=$("$bin/callbackctl" --config "$cfg" --json keys add bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
    fi
    start "node$n-$k" 'callbackd: listening on http://[^ ]*:([0-9]+)/' "$bin/callbackd" --config "$cfg"
    node_pids+=("$last_pid") node_ports+=("$port")
  done
  # One warm-up callback per node.
  for p in "${node_ports[@]}"; do
    curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" \
      "http://127.0.0.1:$p/v1/callbacks" >/dev/null
  done
  echo
  echo "== $n node(s): ${node_ports[*]}   (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  per=$(( connections / n ))
  wall0=$(date +%s%3N)
  wrk_pids=()
  for i in "${!node_ports[@]}"; do
    WRK_METHOD=POST WRK_BODY=$body WRK_AUTH=$key wrk -t1 -c"$per" -d"$duration" --latency -s "$lua" \
      "http://127.0.0.1:${node_ports[$i]}/v1/callbacks" >"$tmp/wrk$n-$i.txt" &
    wrk_pids+=($!)
  done
  for p in "${wrk_pids[@]}"; do wait "$p"; done
  accepted=0 seconds=0 other=""
  for i in "${!node_ports[@]}"; do
    line=$(grep '^RESULT' "$tmp/wrk$n-$i.txt")
    echo "   node n$((i + 1)): $line"
    a=$(sed -nE 's/.*[ ,=]202:([0-9]+).*/\1/p' <<<"$line")
    accepted=$(( accepted + ${a:-0} ))
    seconds=$(sed -nE 's/.* seconds=([0-9.]+).*/\1/p' <<<"$line")
  done
  rate=$(python3 -c "print(round($accepted / $seconds))")
  start_ms=$(date +%s%3N)
  for p in "${node_ports[@]}"; do
    for _ in $(seq 1200); do [[ $(in_flight "$p") == 0 ]] && break; sleep 0.1; done
  done
  drained=$(( $(date +%s%3N) - start_ms ))
  journal=$(psql "$server dbname=$db" -tAc "SELECT count(*) FILTER (WHERE final), count(*) FILTER (WHERE NOT final) FROM callback_journal")
  echo "-- $n node(s): $accepted accepted in ${seconds}s = $rate callbacks/s; all ended ${drained} ms after the run;" \
       "journal final|open: $journal"
  summary+=("$(printf '%d node(s): %6d callbacks/s accepted (%d in %ss), drained in %d ms' "$n" "$rate" "$accepted" "$seconds" "$drained")")
  for p in "${node_pids[@]}"; do stop "$p"; done
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
