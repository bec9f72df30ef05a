#!/usr/bin/env bash
# REST figures of issue 5: callbackd under wrk (keep-alive) next to a trivial Pistache
# endpoint measured in the same run.
#
#   benchmarks/rest_load.sh [BUILD_DIR]        (default build-release)
#
# Needs wrk (apt-get install -y wrk), python3, curl, and in BUILD_DIR/bin: callbackd,
# callbackctl, callback-fake-asterisk, pistache_trivial
#   cmake --build build-release --target callbackd callback-fake-asterisk callbackctl pistache_trivial
#
# What it runs, each with `wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency`:
#   1. trivial   GET  /hello                       (pistache_trivial, --threads 2)
#   2. callbackd GET  /v1/callbacks/{id}           (an id POSTed just before; API key)
#   3. trivial   POST /hello                       (the same JSON body as 4)
#   4. callbackd POST /v1/callbacks  campaign      (billing off: {"plugin": ..., "enabled": false})
#   5. callbackd POST /v1/callbacks  account       (billing on: SQLite billing, an account with a
#                                                   big balance, a rate deck for 1XXX and 3XXX)
#   6. the same as 5 with the CDR store in a database file of its own (a diagnostic: see below)
# The POST body is {"caller": "1001", "callee": "3001", ...}: on the fake, 1XXX answers at
# once and 3XXX is busy, so with --time-scale 0 every call ends as fast as the fake and the
# engine go (outcome partner_busy). No Idempotency-Key: every POST is a new callback.
# Every answer is counted by status (benchmarks/wrk/count.lua); only 202 is "accepted".
# After each POST run: callbacks still in flight (/healthz) and how long they took to end.
#
# Environment: DURATION (10s), CONNECTIONS (64), WRK_THREADS (2), SERVER_THREADS (2),
#   THREAD_CPU=1 also prints the CPU of each of the server's threads over each run,
#   KEEP=1 keeps the temporary folder (configs, logs),
#   MAX_IN_FLIGHT (20000, the default of service.max_in_flight; 0: no limit).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
bin=$build/bin
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
wrk_threads=${WRK_THREADS:-2}
server_threads=${SERVER_THREADS:-2}
lua=$PWD/benchmarks/wrk/count.lua

command -v wrk >/dev/null || { echo "rest_load.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
for b in callbackd callbackctl callback-fake-asterisk pistache_trivial; do
  [[ -x $bin/$b ]] || { echo "rest_load.sh: $bin/$b is missing; build it first" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/rest_load.XXXXXX)
source benchmarks/load_common.sh

echo "rest_load.sh: $(nproc) cores; wrk and the servers share them. build: $build"
echo "wrk: $(wrk --version 2>&1 | head -1)"

start fake-asterisk 'listening on 127\.0\.0\.1:([0-9]+)' "$bin/callback-fake-asterisk" --port 0 --time-scale 0
ami_port=$port
fake_pid=$last_pid
start trivial 'listening on http://127\.0\.0\.1:([0-9]+)/' "$bin/pistache_trivial" --port 0 --threads "$server_threads"
trivial_port=$port
trivial_pid=$last_pid

# --- billing off: campaign callbacks ---------------------------------------------------
callbackd_instance campaign '{"plugin": "callback.billing.sqlite", "enabled": false}'
start callbackd-campaign 'callbackd: listening on http://[^ ]*:([0-9]+)/' \
  env CALLBACK_DATA_DIR="$data" "$bin/callbackd" --config "$cfg"
cb_port=$port
cb_pid=$last_pid
campaign_body='{"caller": "1001", "callee": "3001", "campaign": "bench"}'

run "trivial GET /hello" "$trivial_pid" "http://127.0.0.1:$trivial_port/hello"

id=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$campaign_body" \
       "http://127.0.0.1:$cb_port/v1/callbacks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 0.5
echo
echo "GET target: $id, $(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$cb_port/v1/callbacks/$id" | wc -c) bytes:"
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$cb_port/v1/callbacks/$id"
echo
run "callbackd GET /v1/callbacks/{id}" "$cb_pid" "http://127.0.0.1:$cb_port/v1/callbacks/$id" GET "" "$key"

run "trivial POST /hello" "$trivial_pid" "http://127.0.0.1:$trivial_port/hello" POST "$campaign_body"

run "callbackd POST campaign (no billing)" "$cb_pid" "http://127.0.0.1:$cb_port/v1/callbacks" POST "$campaign_body" "$key"
after_post "$cb_port" "$tmp/callbackd-campaign.log"
stop "$cb_pid"

# --- billing on: account callbacks -----------------------------------------------------
callbackd_instance account '{"plugin": "callback.billing.sqlite"}'
printf 'prefix;description;rate;increment\n1;bench phones 1XXX;0.10;60/60\n3;bench phones 3XXX;0.10;60/60\n' >"$data/deck.csv"
CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$cfg" rates import default "$data/deck.csv" >/dev/null
CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$cfg" accounts add bench --balance 100000000.00 >/dev/null
start callbackd-account 'callbackd: listening on http://[^ ]*:([0-9]+)/' \
  env CALLBACK_DATA_DIR="$data" "$bin/callbackd" --config "$cfg"
cb_port=$port
cb_pid=$last_pid
account_body='{"caller": "1001", "callee": "3001", "account": "bench"}'
curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$account_body" \
  "http://127.0.0.1:$cb_port/v1/callbacks" >/dev/null
run "callbackd POST account (billing)" "$cb_pid" "http://127.0.0.1:$cb_port/v1/callbacks" POST "$account_body" "$key"
after_post "$cb_port" "$tmp/callbackd-account.log"
echo "-- the account afterwards:"
CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$cfg" accounts show bench | sed 's/^/   /' || true
stop "$cb_pid"

# --- diagnostic: the same, with the CDR store in a file of its own -----------------------
# By default the store (CDRs, written on the service thread) and billing (its writer
# thread) share callback.db, and SQLite lets one of them write at a time: the other waits
# in SQLite's busy handler (sleeps of 1 to 100 ms). Here the store writes cdr.db (with
# the API keys, which are the store's: a key is made there); billing and its accounts
# stay in callback.db.
split=$data/callback-split.json
python3 - "$cfg" "$split" "$data" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["store"] = {"plugin": "callback.store.sqlite", "config": {"path": sys.argv[3] + "/cdr.db"}}
config["billing"] = {"plugin": "callback.billing.sqlite", "config": {"path": sys.argv[3] + "/callback.db"}}
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
key=$(CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$split" --json keys add bench --scope "${KEY_SCOPE:-callbacks}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
start callbackd-split 'callbackd: listening on http://[^ ]*:([0-9]+)/' \
  env CALLBACK_DATA_DIR="$data" "$bin/callbackd" --config "$split"
cb_port=$port
cb_pid=$last_pid
run "callbackd POST account, CDRs apart" "$cb_pid" "http://127.0.0.1:$cb_port/v1/callbacks" POST "$account_body" "$key"
after_post "$cb_port" "$tmp/callbackd-split.log"
stop "$cb_pid"

echo
echo "== summary (req/s over the run; latency in µs; status: answers by HTTP status)"
printf '%s\n' "${results[@]}"
