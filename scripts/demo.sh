#!/usr/bin/env bash
# The main job on embedded defaults: callbackd with its web page and REST API, against
# callback-fake-asterisk (AMI) or callback-fake-ari (ARI) -- TEST AND DEMO DOUBLES of
# Asterisk, not a PBX: they speak AMI or ARI on 127.0.0.1 and their "phones" behave by
# number; nothing is dialled.
#
# Run it after scripts/build.sh (it builds nothing):
#   scripts/demo.sh [--engine ami|ari] [--listen HOST:PORT] [--ami-port N] [--ari-port N] [--time-scale X]
#     --engine ami|ari    which engine callbackd runs (default ami: callback.engine.ami)
#     --listen HOST:PORT  where callbackd serves the page and the API (default 127.0.0.1:8080)
#     --ami-port N        the AMI fake's port on 127.0.0.1 (default 5038)
#     --ari-port N        the ARI fake's HTTP port on 127.0.0.1 (default 8088)
#     --time-scale X      the fake's clock (default 1: real time; 0.1 runs it 10 times faster)
#
# Data: $CALLBACK_DATA_DIR (default ~/.local/share/callback-demo) gets, once, a demo rate
# deck (examples/demo/rates.csv), an account "demo" (5.00 CNY, PIN 1234), the campaign
# "free" that pays for the page's calls and, when callbackctl has `keys`, an API key.
# Ctrl-C (or SIGTERM) stops callbackd gracefully, then the fake.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

listen=127.0.0.1:8080 ami_port=5038 ari_port=8088 time_scale=1 engine=ami
usage() { sed -n '8,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) [ $# -ge 2 ] || usage; listen=$2; shift 2 ;;
    --listen=*) listen=${1#*=}; shift ;;
    --engine) [ $# -ge 2 ] || usage; engine=$2; shift 2 ;;
    --engine=*) engine=${1#*=}; shift ;;
    --ari-port) [ $# -ge 2 ] || usage; ari_port=$2; shift 2 ;;
    --ari-port=*) ari_port=${1#*=}; shift ;;
    --ami-port) [ $# -ge 2 ] || usage; ami_port=$2; shift 2 ;;
    --ami-port=*) ami_port=${1#*=}; shift ;;
    --time-scale) [ $# -ge 2 ] || usage; time_scale=$2; shift 2 ;;
    --time-scale=*) time_scale=${1#*=}; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1" >&2; usage ;;
  esac
done
case "$ami_port" in ''|*[!0-9]*) echo "demo.sh: --ami-port needs a number, got \"$ami_port\"" >&2; exit 2 ;; esac
case "$ari_port" in ''|*[!0-9]*) echo "demo.sh: --ari-port needs a number, got \"$ari_port\"" >&2; exit 2 ;; esac
case "$engine" in ami|ari) ;; *) echo "demo.sh: --engine is ami or ari, got \"$engine\"" >&2; exit 2 ;; esac
fake=callback-fake-asterisk fake_port=$ami_port
[ "$engine" = ami ] || { fake=callback-fake-ari; fake_port=$ari_port; }
case "$listen" in *:*) ;; *) echo "demo.sh: --listen needs HOST:PORT, got \"$listen\"" >&2; exit 2 ;; esac

bin=$root/build/bin
for program in callbackd callbackctl "$fake"; do
  if [ ! -x "$bin/$program" ]; then
    echo "demo.sh: $bin/$program is missing: run ./scripts/setup.sh && ./scripts/build.sh first" >&2
    exit 1
  fi
done

export CALLBACK_DATA_DIR=${CALLBACK_DATA_DIR:-$HOME/.local/share/callback-demo}
mkdir -p "$CALLBACK_DATA_DIR"
data=$CALLBACK_DATA_DIR

# The config: examples/config/demo.json, or a copy of it with the fake's port changed or
# the ARI engine chosen (its plugin line; ARI calls the secret "password", on port 8088).
config=$root/examples/config/demo.json
if [ "$engine" = ari ]; then
  config=$data/demo-ari.json
  sed -e 's/"callback\.engine\.ami"/"callback.engine.ari"/' -e 's/"secret":/"password":/' \
    -e "s/\"127\\.0\\.0\\.1:5038\"/\"127.0.0.1:$ari_port\"/" "$root/examples/config/demo.json" >"$config"
elif [ "$ami_port" != 5038 ]; then
  config=$data/demo.json
  sed "s/\"127\\.0\\.0\\.1:5038\"/\"127.0.0.1:$ami_port\"/" "$root/examples/config/demo.json" >"$config"
fi
ctl() { "$bin/callbackctl" --config "$config" "$@"; }
ctl config check "$config" >/dev/null

# ---- demo data (idempotent) ------------------------------------------------------------
echo "demo: data in $data"
rates=$root/examples/demo/rates.csv
if ! cmp -s "$rates" "$data/rates.imported.csv"; then
  ctl rates import default "$rates" --currency CNY
  cp "$rates" "$data/rates.imported.csv"
fi
if ! ctl accounts show demo >/dev/null 2>&1; then
  ctl accounts add demo --name "Demo account" --currency CNY --balance 5.00 --pin 1234 --number 1001 >/dev/null
  echo "demo: account demo: 5.00 CNY, PIN 1234, tariff default (examples/demo/rates.csv)"
fi
# The page's calls are paid by the campaign "free": billing checks it in its own table.
campaigns=$(ctl --json campaigns list)
if ! grep -q '"id":"free"' <<<"$campaigns"; then
  ctl campaigns add free --limit 300 >/dev/null
  echo "demo: campaign free: 300 s a call, no daily limit"
fi
# An API key for the operator API, once (callbackctl keys may not exist in this build).
key_file=$data/demo-api-key.txt
ctl_help=$("$bin/callbackctl" --help 2>/dev/null || true)
if grep -Eq '^ +keys ' <<<"$ctl_help"; then
  if [ ! -s "$key_file" ]; then
    (umask 077 && ctl keys add demo --scope admin >"$key_file.new" && mv "$key_file.new" "$key_file") ||
      { rm -f "$key_file.new"; echo "demo: could not create an API key (callbackctl keys add demo --scope admin)" >&2; }
  fi
else
  key_file=""
fi

# ---- the fake Asterisk -----------------------------------------------------------------
fake_pid="" callbackd_pid="" fifo_dir=""
# shellcheck disable=SC2317  # called from the traps
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$callbackd_pid" ] && kill -0 "$callbackd_pid" 2>/dev/null; then
    kill -TERM "$callbackd_pid" 2>/dev/null || true
    wait "$callbackd_pid" 2>/dev/null || true
  fi
  if [ -n "$fake_pid" ] && kill -0 "$fake_pid" 2>/dev/null; then
    kill -TERM "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    echo "demo: $fake stopped"
  fi
  [ -z "$fifo_dir" ] || rm -rf "$fifo_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fake_log=$data/$fake.log
echo "demo: starting $fake on 127.0.0.1:$fake_port -- a TEST AND DEMO DOUBLE, NOT Asterisk"
echo "      (no SIP, no audio, nothing is dialled; its log: $fake_log)"
# In a session of its own: Ctrl-C must not end it while callbackd is still draining its
# calls (the trap below stops it once callbackd is gone). setsid execs here (no fork).
setsid "$bin/$fake" --port "$fake_port" --time-scale "$time_scale" >"$fake_log" 2>&1 </dev/null &
fake_pid=$!
for _ in $(seq 100); do
  grep -q 'listening on 127\.0\.0\.1:' "$fake_log" 2>/dev/null && break
  if ! kill -0 "$fake_pid" 2>/dev/null; then
    echo "demo: $fake did not start (is port $fake_port taken? try --$engine-port N):" >&2
    sed 's/^/  /' "$fake_log" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q 'listening on 127\.0\.0\.1:' "$fake_log" || { echo "demo: $fake is not listening after 10 s" >&2; exit 1; }

# ---- callbackd -------------------------------------------------------------------------
# What to tell the person once callbackd says where it listens.
banner() {
  local url=$1
  cat <<EOF

  Open $url — phones 1XXX answer, 3XXX are busy, 4XXX do not answer (the fake Asterisk)
  (also 2XXX answer and hang up after 5 s, 5XXX congestion, 6XXX rejected; ${url}?lang=zh in Chinese)
  Without the page:
    curl -s -XPOST -H 'Content-Type: application/json' ${url}v1/public/callbacks -d '{"caller":"1001","callee":"1002"}'
    curl -N '${url}v1/public/callbacks/<id>/events?token=<token>'    (the events_url it answers with)
EOF
  if [ -n "$key_file" ] && [ -s "$key_file" ]; then
    local key
    key=$(grep -Eo 'cbk_[A-Za-z0-9_.-]+' "$key_file" | head -n 1 || true)
    [ -z "$key" ] || echo "    curl -s -H 'Authorization: Bearer $key' '${url}v1/callbacks?limit=10'"
    echo "  The API key \"demo\" is in $key_file"
  fi
  echo "  Ctrl-C stops it."
  echo
}
announce() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in "callbackd: listening on "*) banner "${line#callbackd: listening on }" ;; esac
  done
}

# callbackd runs in the background with its output read through a FIFO, so that a signal
# to this script is handled at once (bash would wait for a foreground child before running
# a trap). Ctrl-C reaches callbackd itself (same process group); a SIGTERM or SIGINT sent
# to this script is passed on as SIGTERM. Either way callbackd drains and stops.
fifo_dir=$(mktemp -d)
mkfifo "$fifo_dir/out"
(trap '' INT TERM; announce) <"$fifo_dir/out" &
reader_pid=$!
"$bin/callbackd" --config "$config" --listen "$listen" >"$fifo_dir/out" &
callbackd_pid=$!
trap 'kill -TERM "$callbackd_pid" 2>/dev/null || true' INT TERM
status=0
while :; do
  wait "$callbackd_pid" && status=0 || status=$?
  kill -0 "$callbackd_pid" 2>/dev/null || break  # wait returned early for a trapped signal
done
callbackd_pid=""
wait "$reader_pid" 2>/dev/null || true
[ "$status" -eq 0 ] || echo "demo: callbackd exited with status $status" >&2
exit "$status"
