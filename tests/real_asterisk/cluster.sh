#!/usr/bin/env bash
# Two callbackd nodes on one PostgreSQL and one REAL Asterisk (issue 13), as
# tests/cli/cluster_test.cpp does on the fakes. PostgreSQL from tests/support/postgres.sh in a
# temp folder; one account (100.00 CNY); a deck at 0.60/min per second; nodes n1 and n2
# with a 3-second lease, each logged in to Asterisk over AMI.
#  - a callback placed on n1 is read on n2 once bridged, canceled through n2 (DELETE), and
#    must end canceled on n1 with two CDRs;
#  - a burst of BURST callbacks posted at once, alternately to n1 and n2 (A = 9101..,
#    answers; B = 2101.., answers and hangs up 5 s later): each must end completed /
#    partner_hangup with a cost and two CDRs, read on the other node (each node sees every
#    call's AMI events, and must act on its own only);
#  - INBOUND callers (7001.., each registered to an account of its own) ring the access
#    number 5000 at once (EXTRA_DIALPLAN must include tests/real_asterisk/testcallers.conf:
#    Local/70NN@ring-access-ami). Both nodes see every AsyncAGIStart; each call must be
#    taken by one node only (one row in inbound_claim), rejected busy unanswered, and called
#    back once: A answers and keys 2NNN# in its node's IVR (the other node leaves that leg
#    alone), B answers and hangs up 5 s later: completed / partner_hangup, two CDRs;
#  - N callbacks (A = 9001.., answers; B = 1001.., stays up; limit_seconds LIMIT) placed on
#    n1; once all are bridged (read on n2), n1 gets kill -9. n2 takes them over when n1's
#    lease runs out and follows them until Asterisk's L() ends them: each must end
#    completed / time_up with a cost, B billsec > 0 and two CDRs, read on n2;
#  - RINGING callbacks (A = 4001.., rings until the originate's timeout) placed on n1 just
#    before the kill -9: still ringing when n1 dies, they must end failed, uncharged (ARI: a
#    ringing channel cannot be moved into n2's application; n2 hangs it up at once);
#  - with n1 dead, caller 7001 rings the access number once more: n2 must take the call
#    (AMI: claims it; ARI: CB_ARI_APPS fails over from n1's application) and call back;
#  - afterwards: one charge a callback (distinct references), nothing reserved, no journal
#    row still n1's, and no channel or bridge left on Asterisk.
# Prints one line per callback; exits 1 if any was wrong.
#
#   EXTRA_DIALPLAN=tests/real_asterisk/testcallers.conf AST_PREFIX=/tmp/ast \
#     ../shared/asterisk/peer.sh start . build/share/callback/sounds
#   tests/real_asterisk/cluster.sh [--bin build/bin] [--burst 40] [--inbound 20] [--calls 20] [--limit 20]
#                                  [--port 18190] [--engine ami|ari] [--ringing 3]
#
# --engine ari: the nodes run callback.engine.ari (common.sh), each its own Stasis application
# (callback-app-n1, callback-app-n2; CB_ARI_APPS set to both on Asterisk, so the access
# number's calls go to the first node that runs: no claims). The nodes do not see each
# other's calls; n2 takes n1's over by moving their channels into its application, and times
# their limit itself. ari.conf's password must be callbacksecret (tests/README.md).
#
# Not run by CI (no Asterisk there); tests/README.md lists the runs made with it.
set -euo pipefail
bin=build/bin burst=40 inbound=20 calls=20 limit=20 port=18190 engine=ami ringing=3
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --burst) burst=$2; shift 2 ;;
    --inbound) inbound=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --ringing) ringing=$2; shift 2 ;;
    *) echo "cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
engine_json=$(engine_entry "$engine")
bin=$(cd "$bin" && pwd)
work=$(mktemp -d)
chmod 755 "$work"
n1= n2=
cleanup() {
  [ -n "$n1" ] && kill "$n1" 2>/dev/null
  [ -n "$n2" ] && kill "$n2" 2>/dev/null
  wait 2>/dev/null || true
  bash "$here/../support/postgres.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bash "$here/../support/postgres.sh" start "$work/pg" >/dev/null
conninfo="$(cat "$work/pg/conninfo") dbname=postgres"
for n in 1 2; do
  cat >"$work/n$n.json" <<JSON
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": [], "min_subscriber_digits": 4},
  "store": {"plugin": "callback.store.postgres", "config": {"conninfo": "$conninfo"}},
  "billing": {"plugin": "callback.billing.postgres"},
  "engines": [$engine_json],
  "triggers": [{"plugin": "callback.trigger.ani",
                "config": {"access_numbers": ["5000"], "ring_seconds": 1, "callback_delay_seconds": 1,
                           "per_caller_per_hour": 1000}}],
  "service": {"node": "n$n", "node_lease_seconds": 3, "a_ring_timeout_seconds": 60, "b_ring_timeout_seconds": 20},
  "server": {"listen": "127.0.0.1:$((port + n))", "shutdown_grace_seconds": 1},
  "log": {"level": "info"}
}
JSON
done
ctl() { "$bin/callbackctl" --config "$work/n1.json" "$@"; }
printf 'prefix;description;rate;increment;connection_fee\n1;Lab stays up;0.60;1/1;0\n2;Lab hangs up;0.60;1/1;0\n9;Lab answers;0.60;1/1;0\n' >"$work/deck.csv"
ctl rates import default "$work/deck.csv" --currency CNY >/dev/null
ctl accounts add acc --currency CNY --balance 100.00 >/dev/null
for i in $(seq 1 "$inbound"); do ctl accounts add "ani-$i" --currency CNY --balance 3.00 --number $((7000 + i)) >/dev/null; done
key=$(ctl --json keys add cluster --scope admin | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
api() { curl -s -X "$2" "http://127.0.0.1:$((port + $1))$3" -H "Authorization: Bearer $key" "${@:4}"; }
start() {  # node number
  "$bin/callbackd" --config "$work/n$1.json" >>"$work/n$1.log" 2>&1 &
  eval "n$1=$!"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$((port + $1))/healthz" | grep -q '"connected":1' && return 0
    sleep 0.1
  done
  echo "n$1 did not reach Asterisk"; cat "$work/n$1.log"; exit 1
}
state_of() { api "$1" GET "/v1/callbacks/$2" | grep -o '"state":"[a-z_]*"' | head -1 | cut -d'"' -f4; }
wait_state() {  # node, id, states (regex), seconds
  for _ in $(seq $(( ${4:-60} * 10 ))); do [[ "$(state_of "$1" "$2")" =~ ^($3)$ ]] && return 0; sleep 0.1; done
  return 1
}
post() {  # node, caller, callee
  api "$1" POST /v1/callbacks -H 'Content-Type: application/json' \
    -d "{\"caller\":\"$2\",\"callee\":\"$3\",\"account\":\"acc\",\"limit_seconds\":$limit}" | grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4
}
psql_n() { psql "$conninfo" -tAc "$1"; }
report() {  # node, id, expected state, expected outcome regex
  local body n
  body=$(api "$1" GET "/v1/callbacks/$2")
  n=$(psql_n "SELECT count(*) FROM cdr WHERE callback_id = '$2'")
  python3 -c '
import json, re, sys
c = json.loads(sys.argv[1]); n = int(sys.argv[2]); b = c["legs"]["b"]
ok = c["state"] == sys.argv[3] and re.fullmatch(sys.argv[4], c.get("outcome") or "") and n == 2 and \
     (sys.argv[3] != "completed" or (c.get("cost") and b["billsec"] > 0))
print(c["id"], c["state"], c.get("outcome"), "B billsec", b["billsec"], "cost", (c.get("cost") or {}).get("amount"),
      "CDRs", n, "ok" if ok else "WRONG")
sys.exit(0 if ok else 1)' "$body" "$n" "$3" "$4"
}

start 1
start 2
bad=0
# A cancel sent to the node that does not run the call.
one=$(post 1 9000 1000)
wait_state 2 "$one" bridged || { echo "$one never bridged (read on n2): $(api 2 GET "/v1/callbacks/$one")"; exit 1; }
echo "cross-node cancel of $one: HTTP $(api 2 DELETE "/v1/callbacks/$one" -o /dev/null -w '%{http_code}')"
wait_state 1 "$one" 'canceled|completed|failed' 30 || true
report 1 "$one" canceled canceled || bad=$((bad + 1))
# A burst over both nodes at once; each callback is read on the node that did not take it.
mkdir "$work/burst"
posts=()
for i in $(seq 1 "$burst"); do
  node=$((1 + i % 2))
  (post "$node" $((9100 + i)) $((2100 + i)) >"$work/burst/$i.$node") &
  posts+=($!)
done
# (Not a bare wait, nor one of an empty list: the nodes run in the background too.)
[ "${#posts[@]}" -eq 0 ] || wait "${posts[@]}"
burst_ids=()
shopt -s nullglob  # (no file for a burst of 0)
for f in "$work"/burst/*; do
  id=$(cat "$f") other=$((3 - ${f##*.}))
  [ -n "$id" ] || { echo "a POST of the burst got no id"; bad=$((bad + 1)); continue; }
  burst_ids+=("$id")
  wait_state "$other" "$id" 'completed|failed|canceled' 90 || true
  report "$other" "$id" completed partner_hangup || bad=$((bad + 1))
done
echo "burst: ${#burst_ids[@]} of $burst accepted over both nodes at once, $bad wrong so far; Asterisk: $(asterisk_left)"
# Missed calls to the access number, all at once; both nodes see each.
if [ "$inbound" -gt 0 ]; then
  ast=${AST_PREFIX:-/tmp/ast} rings=()
  [ "$engine" = ari ] && "$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx \
    "dialplan set global CB_ARI_APPS callback-app-n1,callback-app-n2" >/dev/null
  for i in $(seq 1 "$inbound"); do
    ( trap - EXIT; "$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx \
        "channel originate Local/$((7000 + i))@ring-access$([ "$engine" = ami ] && echo -ami) application Wait 30" \
        >/dev/null 2>&1 || true ) &
    rings+=($!)
  done
  wait "${rings[@]}"
  inbound_ids=()
  for _ in $(seq 300); do
    # (The ANI trigger's idempotency key: ani:<server>:<channel>.)
    mapfile -t inbound_ids < <(psql_n "SELECT id FROM callback_journal WHERE idempotency_key LIKE 'ani:%' ORDER BY id")
    [ "${#inbound_ids[@]}" -ge "$inbound" ] && break
    sleep 0.1
  done
  for id in "${inbound_ids[@]}"; do
    wait_state 1 "$id" 'completed|failed|canceled' 90 || true
    report 2 "$id" completed partner_hangup || bad=$((bad + 1))
  done
  claims=$(psql_n "SELECT count(*) FROM inbound_claim")
  by_node=$(psql_n "SELECT string_agg(node || ' ' || n, ', ') FROM (SELECT node, count(*) AS n FROM inbound_claim GROUP BY node ORDER BY node) c")
  echo "inbound: ${#inbound_ids[@]} callbacks for $inbound missed calls; $claims claims ($by_node); Asterisk: $(asterisk_left)"
  [ "$engine" = ari ] && claims=$inbound  # (one application gets each call: nothing to claim)
  [ "${#inbound_ids[@]}" = "$inbound" ] && [ "$claims" = "$inbound" ] || bad=$((bad + 1))
fi
# kill -9 with N bridged.
ids=()
for i in $(seq 1 "$calls"); do ids+=("$(post 1 $((9000 + i)) $((1000 + i)))"); done
for id in "${ids[@]}"; do wait_state 2 "$id" bridged || { echo "$id never bridged: $(api 2 GET "/v1/callbacks/$id")"; exit 1; }; done
echo "$calls bridged on n1 (read on n2); Asterisk: $(asterisk_left)"
rings=()
for i in $(seq 1 "$ringing"); do rings+=("$(post 1 $((4000 + i)) $((1100 + i)))"); done
# Their phones ring once Asterisk has both halves of each A's Local channel.
ast=${AST_PREFIX:-/tmp/ast}
ringing_now() { "$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx 'core show channels concise' | grep -c '^Local/40' || true; }
for _ in $(seq 300); do [ "$(ringing_now)" -ge $((2 * ringing)) ] && break; sleep 0.1; done
echo "$ringing ringing on n1 ($(ringing_now) channels); Asterisk: $(asterisk_left)"
kill -9 "$n1"; wait "$n1" 2>/dev/null || true; n1=
echo "killed n1 at $(date -u +%T)"
for id in "${ids[@]}"; do wait_state 2 "$id" 'completed|failed|canceled' $((limit + 60)) || true; done
echo "all final at $(date -u +%T); n2's log: $(grep -c 'took over' "$work/n2.log") takeover line(s)"
for id in "${ids[@]}"; do report 2 "$id" completed time_up || bad=$((bad + 1)); done
for id in "${rings[@]}"; do
  wait_state 2 "$id" 'completed|failed|canceled' 90 || true
  body=$(api 2 GET "/v1/callbacks/$id")
  echo "ringing at the kill: $id $(echo "$body" | python3 -c 'import json, sys; c = json.load(sys.stdin)
print(c["state"], c.get("outcome"), "cost", (c.get("cost") or {}).get("amount"))')" \
    "CDRs $(psql_n "SELECT count(*) FROM cdr WHERE callback_id = '$id'")"
  [ "$(state_of 2 "$id")" = failed ] || bad=$((bad + 1))
done
if [ "$inbound" -gt 0 ]; then
  "$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx \
    "channel originate Local/7001@ring-access$([ "$engine" = ami ] && echo -ami) application Wait 30" >/dev/null 2>&1 || true
  again=
  for _ in $(seq 300); do
    if [ "$(psql_n "SELECT count(*) FROM callback_journal WHERE idempotency_key LIKE 'ani:%'")" -gt "$inbound" ]; then
      again=$(psql_n "SELECT id FROM callback_journal WHERE idempotency_key LIKE 'ani:%' ORDER BY created_at DESC LIMIT 1")
      break
    fi
    sleep 0.1
  done
  if [ -z "$again" ]; then
    echo "a missed call with n1 dead: no callback"; bad=$((bad + 1))
  else
    wait_state 2 "$again" 'completed|failed|canceled' 90 || true
    echo -n "a missed call with n1 dead, taken by $(psql_n "SELECT owner FROM callback_journal WHERE id = '$again'"): "
    report 2 "$again" completed partner_hangup || bad=$((bad + 1))
    inbound=$((inbound + 1))
  fi
fi
charges=$(psql_n "SELECT count(*) || ' ' || count(DISTINCT reference) FROM ledger WHERE kind = 'call_charge'")
echo "charges (count, distinct references): $charges"
charged=$((burst + inbound + calls))
[ "$charges" = "$charged $charged" ] || bad=$((bad + 1))
reserved=$(psql_n "SELECT reserved_micros FROM account WHERE id = 'acc'")
owned=$(psql_n "SELECT count(*) FROM callback_journal WHERE owner = 'n1' AND NOT final")
echo "reserved micros: $reserved; open journal rows still n1's: $owned"
[ "$reserved" = 0 ] && [ "$owned" = 0 ] || bad=$((bad + 1))
left=$(asterisk_left)
echo "Asterisk afterwards: $left"
[ "$left" = "0 active channels, 0 bridges" ] || bad=$((bad + 1))
echo "cluster: cross-node cancel, a burst of $burst over both nodes, kill -9 of n1 with $calls bridged: $bad wrong"
[ "$bad" -eq 0 ]
