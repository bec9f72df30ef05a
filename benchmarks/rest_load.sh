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
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME REGEX COMMAND...: runs COMMAND with its output in $tmp/NAME.log, waits for a
# line matching REGEX (first group: the port) and sets $port.
start() {
  local name=$1 regex=$2
  shift 2
  "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do
    if port=$(sed -nE "s|.*$regex.*|\\1|p" "$tmp/$name.log" | head -1) && [[ -n $port ]]; then
      last_pid=$pid
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "rest_load.sh: $name did not start:" >&2
  cat "$tmp/$name.log" >&2
  exit 1
}

# stop PID: SIGTERM, wait for it to exit.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# cpu_ms PID: user+system CPU the process has used so far, in ms (all its threads).
hz=$(getconf CLK_TCK)
cpu_ms() { awk -v hz="$hz" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }
# busy_ms: CPU time the whole machine has been busy (all cores), in ms.
busy_ms() { awk -v hz="$hz" '/^cpu /{print int(($2 + $3 + $4 + $7 + $8 + $9) * 1000 / hz)}' /proc/stat; }
# thread_ticks PID: "TID ticks" for each thread, sorted by TID (for join).
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat")"; done | sort
}
pct() { echo $(( $1 * 100 / ($2 > 0 ? $2 : 1) )); }

results=()
# run LABEL PID URL [METHOD BODY AUTH]: one wrk run; its RESULT line is kept for the summary,
# with the CPU each party used (% of one core): the server, wrk, the fake Asterisk, and
# everything else on the machine ("others": other people's builds and tests, the kernel's
# softirq work that lands on no process).
run() {
  local label=$1 pid=$2 url=$3 method=${4:-GET} body=${5:-} auth=${6:-}
  echo
  echo "== $label: $method $url   (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "   wrk -t$wrk_threads -c$connections -d$duration --latency -s benchmarks/wrk/count.lua $url"
  local cpu0 fake0 busy0 wall0
  cpu0=$(cpu_ms "$pid") fake0=$(cpu_ms "$fake_pid") busy0=$(busy_ms) wall0=$(date +%s%3N)
  [[ ${THREAD_CPU:-0} == 1 ]] && thread_ticks "$pid" >"$tmp/threads0.txt"
  WRK_METHOD=$method WRK_BODY=$body WRK_AUTH=$auth /usr/bin/time -f '%U %S' -o "$tmp/wrk.time" \
    wrk -t"$wrk_threads" -c"$connections" -d"$duration" --latency -s "$lua" "$url" | tee "$tmp/wrk.txt"
  local wall=$(( $(date +%s%3N) - wall0 )) busy=$(( $(busy_ms) - busy0 ))
  local cpu=$(( $(cpu_ms "$pid") - cpu0 )) fake=$(( $(cpu_ms "$fake_pid") - fake0 ))
  local wrk_cpu
  wrk_cpu=$(awk '{print int(($1 + $2) * 1000)}' "$tmp/wrk.time")
  local others=$(( busy - cpu - fake - wrk_cpu ))
  (( others < 0 )) && others=0
  local requests
  requests=$(sed -nE 's/^RESULT requests=([0-9]+).*/\1/p' "$tmp/wrk.txt")
  echo "-- CPU over the run (% of one core; the machine has $(nproc)): server $(pct "$cpu" "$wall")%," \
       "wrk $(pct "$wrk_cpu" "$wall")%, fake Asterisk $(pct "$fake" "$wall")%, others $(pct "$others" "$wall")%;" \
       "server $(( cpu * 1000 / (requests > 0 ? requests : 1) )) us of CPU per request"
  if [[ ${THREAD_CPU:-0} == 1 ]]; then
    thread_ticks "$pid" >"$tmp/threads1.txt"
    echo "-- per-thread CPU of the server over the run (% of one core), busiest first:"
    join "$tmp/threads0.txt" "$tmp/threads1.txt" |
      awk -v hz="$hz" -v wall="$wall" '{printf "%d %d\n", ($3 - $2) * 1000 / hz * 100 / wall, $1}' | sort -rn |
      awk '$1 > 0 {printf "   thread %s: %s%%\n", $2, $1}'
  fi
  results+=("$(printf '%-37s %s cpu%%:server=%d,wrk=%d,fake=%d,others=%d' "$label" \
                "$(grep '^RESULT' "$tmp/wrk.txt" | cut -d' ' -f2-)" "$(pct "$cpu" "$wall")" "$(pct "$wrk_cpu" "$wall")" \
                "$(pct "$fake" "$wall")" "$(pct "$others" "$wall")")")
}

metric() {  # metric PORT NAME_AND_LABELS: one value from /metrics
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m " ") == 1 {print $2}'
}
# /healthz answers 503 while the engine is not logged in: read the body anyway.
in_flight() { curl -s "http://127.0.0.1:$1/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_flight"])' 2>/dev/null || echo "?"; }

# after_post PORT LOG: what the service still has in flight after a POST run, and how long it takes to end.
after_post() {
  local port=$1 n start_ms end_ms
  n=$(in_flight "$port")
  start_ms=$(date +%s%3N)
  for _ in $(seq 1200); do
    [[ $(in_flight "$port") == 0 ]] && break
    sleep 0.1
  done
  end_ms=$(date +%s%3N)
  local left
  left=$(in_flight "$port")
  echo "-- callbacks in flight right after the run: $n; all ended $(( end_ms - start_ms )) ms later (left: $left)"
  echo "-- callbackd counters: http 2xx=$(metric "$port" 'callbackd_http_requests_total{class="2xx"}')" \
       "4xx=$(metric "$port" 'callbackd_http_requests_total{class="4xx"}')" \
       "5xx=$(metric "$port" 'callbackd_http_requests_total{class="5xx"}')"
  curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^callback_finished_total' | sed 's/^/   /' || true
  echo "-- engine reconnections so far (callbackd log): $(grep -c 'reconnecting' "$2" || true)"
  results+=("$(printf '%-37s in flight after: %s, ended in %s ms' "  (after the run)" "$n" "$(( end_ms - start_ms ))")")
}

# callbackd_instance NAME BILLING_JSON: a data folder, a config, an API key; sets $cfg, $data, $key.
callbackd_instance() {
  data=$tmp/$1
  mkdir -p "$data"
  cfg=$data/callback.json
  cat >"$cfg" <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "billing": $2,
  "engines": [{"plugin": "callback.engine.ami",
               "config": {"servers": ["127.0.0.1:$ami_port"], "username": "callback", "secret": "callbacksecret"}}],
  "service": {"campaigns": {"bench": {"limit_seconds": 60}}, "max_in_flight": ${MAX_IN_FLIGHT:-20000}},
  "server": {"listen": "127.0.0.1:0", "threads": $server_threads},
  "log": {"level": "warning"}
}
EOF
  key=$(CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$cfg" --json keys add bench |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
}

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
# in SQLite's busy handler (sleeps of 1 to 100 ms). Here the store writes cdr.db; billing,
# its accounts and the API keys stay in callback.db.
split=$data/callback-split.json
python3 - "$cfg" "$split" "$data" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["store"] = {"plugin": "callback.store.sqlite", "config": {"path": sys.argv[3] + "/cdr.db"}}
config["billing"] = {"plugin": "callback.billing.sqlite", "config": {"path": sys.argv[3] + "/callback.db"}}
config["server"]["keys_db"] = sys.argv[3] + "/callback.db"
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
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
