#!/usr/bin/env bash
# A burst of callbacks through callbackd (REST, SQLite billing) on a REAL Asterisk, as a new
# user would run it: N callbacks POSTed at once, A = 9000.. (answers at once), B = 2000..
# (answers after 1 s, hangs up 5 s later), each billed to its own prepaid account at
# 0.60/min per second. Every callback must end `completed`, B talked 5 s (Asterisk's Cdr), cost 0.05.
# Prints one line per callback and a summary; exits 1 if any was misreported.
# --cancel: each callback is canceled (DELETE) at a random moment 0-4 s after it was
# accepted, all at once: each must end canceled, or completed when it ended first; either
# way its account is charged exactly its cost (B's talk until then) and nothing stays
# reserved. Every run must leave Asterisk with no channel.
#
#   AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start .      # the real Asterisk
#   tests/real_asterisk/burst.sh [--bin build/bin] [--calls 20] [--b-first 2000] [--port 18080] [--cancel N]
#                                [--engine ami|ari] [--via rest|sms|ani]
#
# --cancel N: only the first N callbacks are canceled (without N: all). --engine: which
# engine callbackd runs (common.sh; default ami). A run must also leave no bridge on Asterisk.
# --via sms: each callback is asked for by SMS instead, through callback.trigger.sms: a
# Twilio webhook signed as Twilio signs it, from A's number (registered to its account), whose
# text is B; the callback's id is read from the TwiML reply.
# --via ani: each callback is asked for by a missed call, through callback.trigger.ani (ARI
# only: the IVR): caller 7000+i (registered to its account; EXTRA_DIALPLAN must include
# tests/real_asterisk/testcallers.conf) rings the access number 5000 and is rejected busy,
# unanswered; called back, it answers and keys 2<its last three digits>#, so B is 2000+i.
#
# Not run by CI (no Asterisk there); tests/README.md lists the runs made with it.
set -euo pipefail
bin=build/bin calls=20 b_first=2000 port=18080 a_first=9000 cancel=0 engine=ami via=rest
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --b-first) b_first=$2; shift 2 ;;
    --a-first) a_first=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --cancel) cancel=1; if [[ "${2:-}" =~ ^[0-9]+$ ]]; then cancel_count=$2; shift; fi; shift ;;
    --engine) engine=$2; shift 2 ;;
    --via) via=$2; shift 2 ;;
    *) echo "burst.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$(cd "$(dirname "$0")" && pwd)/common.sh"
if [ "$via" = ani ]; then
  [ "$engine" = ari ] || { echo "burst.sh: --via ani needs --engine ari (the IVR asks the caller for B)" >&2; exit 2; }
  a_first=7000 b_first=2000
fi
engine_json=$(engine_entry "$engine")
cancel_count=${cancel_count:-$calls}
bin=$(cd "$bin" && pwd)
work=$(mktemp -d)
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
export CALLBACK_DATA_DIR=$work
cat >"$work/callback.json" <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "store": {"plugin": "callback.store.sqlite"},
  "billing": {"plugin": "callback.billing.sqlite"},
  "engines": [$engine_json],
  "triggers": [{"plugin": "callback.trigger.sms",
                "config": {"twilio_auth_token": "burst-token", "twilio_url": "http://127.0.0.1:$port/hooks/sms/twilio",
                           "per_sender_per_hour": 1000}},
               {"plugin": "callback.trigger.ani",
                "config": {"access_numbers": ["5000"], "ring_seconds": 1, "callback_delay_seconds": 1,
                           "per_caller_per_hour": 1000}}],
  "service": {"max_in_flight": 100000},
  "server": {"listen": "127.0.0.1:$port", "shutdown_grace_seconds": 5},
  "log": {"level": "warning"}
}
EOF
ctl() { "$bin/callbackctl" --config "$work/callback.json" "$@"; }
printf 'prefix;description;rate;increment;connection_fee\n2;burst B numbers;0.60;1/1;0\n9;burst A numbers;0.60;1/1;0\n' >"$work/deck.csv"
ctl rates import default "$work/deck.csv" --currency CNY >/dev/null
# One prepaid account per caller (an authorization reserves what the balance pays for).
for i in $(seq 0 $((calls - 1))); do
  ctl accounts add "burst-$i" --currency CNY --balance 3.00 --number $((a_first + i)) >/dev/null
done
# Callbacks asked by SMS belong to no API key: an admin key reads them.
key=$(ctl keys add burst $([ "$via" != rest ] && echo --scope admin) | grep -o 'cbk_[A-Za-z0-9_-]*' | head -1)
"$bin/callbackd" --config "$work/callback.json" >"$work/callbackd.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"connected":1' && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"connected":1' || { echo "callbackd did not reach Asterisk"; cat "$work/callbackd.log"; exit 1; }

log=${AST_PREFIX:-/tmp/ast}/peer.log
before=$(wc -l <"$log")
# All POSTs at once.
for i in $(seq 0 $((calls - 1))); do
  printf '{"caller":"%d","callee":"%d","account":"burst-%d"}\n' $((a_first + i)) $((b_first + i)) "$i"
done >"$work/bodies"
if [ "$via" = sms ]; then
  # One signed Twilio webhook per callback, all at once: "<signature> <form body>" a line.
  python3 - "http://127.0.0.1:$port/hooks/sms/twilio" "$calls" "$a_first" "$b_first" >"$work/sms" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
url, n, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    f = {"MessageSid": "SMburst%06d" % i, "From": str(a + i), "To": "10690000", "Body": str(b + i)}
    s = base64.b64encode(hmac.new(b"burst-token", (url + "".join(k + f[k] for k in sorted(f))).encode(),
                                  hashlib.sha1).digest()).decode()
    print(s, urllib.parse.urlencode(f))
PY
  xargs -P "$calls" -d '\n' -n 1 sh -c 'curl -s -w "\n" -XPOST "$0" -H "X-Twilio-Signature: ${1%% *}" \
      -H "Content-Type: application/x-www-form-urlencoded" --data "${1#* }"' "http://127.0.0.1:$port/hooks/sms/twilio" \
    <"$work/sms" | tee "$work/responses" | grep -o '(cb-[^)]*)' | tr -d '()' >"$work/ids"
elif [ "$via" = ani ]; then
  # Every caller rings at once; each is rejected busy (its Dial() ends BUSY), then called back.
  ast=${AST_PREFIX:-/tmp/ast} rings=()
  for i in $(seq 0 $((calls - 1))); do
    # (A subshell of its own, without the EXIT trap, which would stop callbackd.)
    ( trap - EXIT; "$ast/sbin/asterisk" -C "$ast/etc/asterisk/asterisk.conf" -rx \
        "channel originate Local/$((a_first + i))@ring-access application Wait 30" >/dev/null 2>&1 || true ) &
    rings+=($!)
  done
  wait "${rings[@]}"  # (not callbackd)
  # The callbacks, once the trigger has asked for them all (callbackd's list, newest first).
  for _ in $(seq 300); do
    curl -s "http://127.0.0.1:$port/v1/callbacks?limit=1000" -H "Authorization: Bearer $key" |
      grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4 >"$work/ids" || true
    [ "$(wc -l <"$work/ids")" -ge "$calls" ] && break
    sleep 0.1
  done
  cp "$work/ids" "$work/responses"
else
  xargs -P "$calls" -d '\n' -I{} curl -s -w '\n' -XPOST "http://127.0.0.1:$port/v1/callbacks" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{}' <"$work/bodies" | tee "$work/responses" | grep -o '"id":"cb-[^"]*"' | cut -d'"' -f4 >"$work/ids"
fi
[ "$(wc -l <"$work/ids")" -eq "$calls" ] || { echo "only $(wc -l <"$work/ids") of $calls accepted"; grep -v "\"id\":\"cb-" "$work/responses" | sort | uniq -c | head -5; exit 1; }

if [ "$cancel" = 1 ]; then
  cancels=()
  head -n "$cancel_count" "$work/ids" >"$work/cancel-ids"
  while read -r id; do
    ( sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", r % 4000 / 1000 }')"
      curl -s -o /dev/null -XDELETE "http://127.0.0.1:$port/v1/callbacks/$id" -H "Authorization: Bearer $key" ) &
    cancels+=($!)
  done <"$work/cancel-ids"
  wait "${cancels[@]}"
fi

# Each to its end.
bad=0
while read -r id; do
  for _ in $(seq 600); do
    body=$(curl -s "http://127.0.0.1:$port/v1/callbacks/$id" -H "Authorization: Bearer $key")
    state=$(grep -o '"state":"[a-z_]*"' <<<"$body" | head -1 | cut -d'"' -f4)
    case "$state" in completed|failed|canceled|refused) break ;; esac
    sleep 0.2
  done
  account=$(ctl --json accounts show "$(grep -o '"account":"burst-[0-9]*"' <<<"$body" | cut -d'"' -f4)")
  line=$(python3 -c '
import json, sys
from decimal import Decimal
c = json.loads(sys.argv[1]); b = c["legs"]["b"]; acct = json.loads(sys.argv[2])
cost = Decimal(c["cost"]["amount"]) if c.get("cost") else Decimal(0)
charged = Decimal("3.00") - Decimal(acct["balance"])
money = "money ok" if charged == cost and Decimal(acct["reserved"]) == 0 else "MONEY charged %s reserved %s" % (charged, acct["reserved"])
print(c["id"], c["state"], c.get("outcome"), "B cause", b["cause"], "B billsec", b["billsec"], "cost", cost, money)
' "$body" "$account")
  echo "$line"
  if [ "$cancel" = 1 ]; then
    case "$line" in *" canceled canceled "*"money ok"|*" completed partner_hangup "*"B billsec 5 "*"money ok") ;; *) bad=$((bad + 1)) ;; esac
  else
    case "$line" in *" completed "*"B billsec 5 "*"money ok") ;; *) bad=$((bad + 1)) ;; esac
  fi
done <"$work/ids"
echo "Asterisk's log of the run, prompts played: $(tail -n +"$((before + 1))" "$log" | grep -o "Playing '[a-z/-]*" |
  cut -d"'" -f2 | sort | uniq -c | awk '{ printf "%s%s x%s", n++ ? ", " : "", $2, $1 }'); 'Playback failed': $(
  tail -n +"$((before + 1))" "$log" | grep -c 'Playback failed' || true)"
left=$(asterisk_left)
echo "Asterisk afterwards: $left"
[ "$left" = "0 active channels, 0 bridges" ] || bad=$((bad + 1))
echo "burst of $calls$([ "$cancel" = 1 ] && echo " with cancels")$([ "$via" = sms ] && echo " asked by SMS")$([ "$via" = ani ] && echo " asked by missed calls (ANI, the IVR)") on $(AST_PREFIX=${AST_PREFIX:-/tmp/ast} "${AST_PREFIX:-/tmp/ast}/sbin/asterisk" -V 2>/dev/null || echo Asterisk): $((calls - bad)) right, $bad misreported"
[ "$bad" -eq 0 ]
