#!/usr/bin/env bash
# kill -9 of callbackd with callbacks bridged on a REAL Asterisk, then a restart, as
# tests/cli/crash_recovery_test.cpp does on the fake: SQLite store and billing in a temp
# folder, one account (100.00 CNY), a deck at 0.60/min per second.
#  - N callbacks A = 9001.. (answers at once), B = 1001.. (stays up); once they are bridged,
#    one more with B = 2099 (hangs up 5 s after answering), and kill -9 as soon as it is
#    bridged; 8 s later (the 2099 call has ended while nobody watched) callbackd starts again.
#  - The N must show `bridged` again; each is canceled (DELETE) and must end with a cost,
#    B's billsec > 0 and two CDRs (`callbackctl --json status ID`).
#  - The 2099 one must end from what Asterisk recorded of it (AMI: the dialplan's AstDB
#    record; ARI: the global its B's hangup handler set, [callback-ari-leg-end]): outcome
#    engine_lost, a cost, two CDRs. Nothing stays reserved; Asterisk is left with no channel.
# Prints one line per callback; exits 1 if any was wrong.
#
#   AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start . build/share/callback/sounds
#   tests/real_asterisk/crash.sh [--bin build/bin] [--calls 5] [--port 18090] [--engine ami|ari]
#
# --engine: which engine callbackd runs (common.sh; default ami). The same checks hold for
# both; the ARI engine adopts legs by their channel ids (<id>-a, <id>-b) from GET
# /ari/channels. A run must also leave no bridge on Asterisk. Runs: tests/README.md.
#
# Not run by CI (no Asterisk there); tests/README.md lists the runs made with it.
set -euo pipefail
bin=build/bin calls=5 port=18090 engine=ami
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    *) echo "crash.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
engine_json=$(engine_entry "$engine")
bin=$(cd "$bin" && pwd)
ast=${AST_PREFIX:-/tmp/ast}
work=$(mktemp -d)
daemon=
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
export CALLBACK_DATA_DIR=$work
cat >"$work/callback.json" <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": [], "min_subscriber_digits": 4},
  "store": {"plugin": "callback.store.sqlite", "config": {"path": "$work/callback.db"}},
  "billing": {"plugin": "callback.billing.sqlite", "config": {"path": "$work/callback.db"}},
  "engines": [$engine_json],
  "service": {"a_ring_timeout_seconds": 60, "b_ring_timeout_seconds": 20},
  "server": {"listen": "127.0.0.1:$port", "shutdown_grace_seconds": 1},
  "log": {"level": "warning"}
}
EOF
ctl() { "$bin/callbackctl" --config "$work/callback.json" "$@"; }
printf 'prefix;description;rate;increment;connection_fee\n1;Lab stays up;0.60;1/1;0\n2;Lab hangs up;0.60;1/1;0\n9;Lab answers;0.60;1/1;0\n' >"$work/deck.csv"
ctl rates import default "$work/deck.csv" --currency CNY >/dev/null
ctl accounts add acc --currency CNY --balance 100.00 >/dev/null
key=$(ctl --json keys add crash --scope admin | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
api() { curl -s -X "$1" "http://127.0.0.1:$port$2" -H "Authorization: Bearer $key" "${@:3}"; }
start() {
  "$bin/callbackd" --config "$work/callback.json" >>"$work/callbackd.log" 2>&1 &
  daemon=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"connected":1' && return 0
    sleep 0.1
  done
  echo "callbackd did not reach Asterisk"; cat "$work/callbackd.log"; exit 1
}
state_of() { api GET "/v1/callbacks/$1" | grep -o '"state":"[a-z_]*"' | head -1 | cut -d'"' -f4; }
wait_state() {  # id, states (regex); up to 60 s
  for _ in $(seq 600); do [[ "$(state_of "$1")" =~ ^($2)$ ]] && return 0; sleep 0.1; done
  return 1
}

start
ids=()
for i in $(seq 1 "$calls"); do
  ids+=("$(api POST /v1/callbacks -H 'Content-Type: application/json' \
    -d "{\"caller\":\"$((9000 + i))\",\"callee\":\"$((1000 + i))\",\"account\":\"acc\"}" | grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4)")
done
for id in "${ids[@]}"; do wait_state "$id" bridged || { echo "$id never bridged: $(api GET "/v1/callbacks/$id")"; exit 1; }; done
# The one that ends while callbackd is dead: placed last, the kill as soon as it is bridged.
lost=$(api POST /v1/callbacks -H 'Content-Type: application/json' -d '{"caller":"9099","callee":"2099","account":"acc"}' |
  grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4)
wait_state "$lost" bridged || { echo "$lost never bridged: $(api GET "/v1/callbacks/$lost")"; exit 1; }
kill -9 "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=
echo "killed -9 with $((calls + 1)) bridged; Asterisk: $("$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx 'core show channels count' | head -1)"
sleep 8  # B of the last one hangs up 5 s after answering: it ends while callbackd is dead
echo "restart; reserved before: $(ctl --json accounts show acc | python3 -c 'import json, sys; print(json.load(sys.stdin)["reserved"])')"
start
bad=0
for id in "${ids[@]}"; do
  s=$(state_of "$id"); echo "$id after restart: $s"; [ "$s" = bridged ] || bad=$((bad + 1))
  api DELETE "/v1/callbacks/$id" -o /dev/null
done
report() {  # id, expected outcome regex
  wait_state "$1" 'completed|failed|canceled' || true
  local body cdrs
  body=$(api GET "/v1/callbacks/$1")
  cdrs=$(ctl --json status "$1" || echo '{"cdrs":[]}')
  python3 -c '
import json, re, sys
c = json.loads(sys.argv[1]); n = len(json.loads(sys.argv[2])["cdrs"]); b = c["legs"]["b"]
ok = c.get("cost") and b["billsec"] > 0 and n == 2 and re.fullmatch(sys.argv[3], c.get("outcome") or "")
print(c["id"], c["state"], c.get("outcome"), "B billsec", b["billsec"], "cost", (c.get("cost") or {}).get("amount"),
      "CDRs", n, "ok" if ok else "WRONG")
sys.exit(0 if ok else 1)' "$body" "$cdrs" "$2"
}
for id in "${ids[@]}"; do report "$id" 'canceled|.*' || bad=$((bad + 1)); done
report "$lost" engine_lost || bad=$((bad + 1))
acct=$(ctl --json accounts show acc)
echo "account: $acct"
python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["reserved"] in ("0", "0.00") else 1)' "$acct" || { echo "money still reserved"; bad=$((bad + 1)); }
left=$(asterisk_left)
echo "Asterisk afterwards: $left"
[ "$left" = "0 active channels, 0 bridges" ] || bad=$((bad + 1))
echo "crash with $((calls + 1)) bridged: $bad wrong"
[ "$bad" -eq 0 ]
