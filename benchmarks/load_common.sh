# Shared by the load scripts (rest_load.sh, sms_load.sh), sourced after they set: bin (the
# build's bin folder), tmp (a scratch folder), lua (the wrk script), wrk_threads,
# connections, duration, server_threads; and, before run(), fake_pid and ami_port.
# Starts and stops the processes, runs wrk with the CPU of each party, and makes callbackd
# instances.
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
  echo "$(basename "$0"): $name did not start:" >&2
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

# callbackd_instance NAME BILLING_JSON [TRIGGERS_JSON]: a data folder, a config, an API key; sets $cfg, $data, $key.
callbackd_instance() {
  data=$tmp/$1
  mkdir -p "$data"
  cfg=$data/callback.json
  local triggers=${3:-[]}
  cat >"$cfg" <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "billing": $2,
  "engines": [{"plugin": "callback.engine.ami",
               "config": {"servers": ["127.0.0.1:$ami_port"], "username": "callback", "secret": "callbacksecret"}}],
  "triggers": $triggers,
  "service": {"campaigns": {"bench": {"limit_seconds": 60}}, "max_in_flight": ${MAX_IN_FLIGHT:-20000}},
  "server": {"listen": "127.0.0.1:0", "threads": $server_threads},
  "log": {"level": "warning"}
}
EOF
  key=$(CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$cfg" --json keys add bench --scope "${KEY_SCOPE:-callbacks}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
}

