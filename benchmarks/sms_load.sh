#!/usr/bin/env bash
# SMS webhook figures of issue 12: callbackd with callback.trigger.sms under wrk, every
# request a Twilio webhook signed as Twilio signs it (HMAC-SHA1 over the URL and the sorted
# fields), next to POST /v1/callbacks for the same accounts in the same run.
#
#   benchmarks/sms_load.sh [BUILD_DIR]        (default build-release)
#
# Needs wrk, python3, curl, and in BUILD_DIR/bin: callbackd, callbackctl, callback-fake-asterisk.
# SENDERS accounts (default 200), each with one registered number (1000, 1001, ...) and a
# big balance; every message "3001" from one of them: on the fake (--time-scale 0) A
# answers at once and B is busy, so each callback ends as fast as the fake goes.
#   1. new messages: REQUESTS distinct MessageSids (default 400000, more than a run sends):
#      signature, dedupe, sender lookup, policy, then a callback (billing, the fake);
#   2. messages the first run sent, again: Twilio's retries, refused after the signature
#      and the dedupe (no call, empty TwiML); the accepted count must not move;
#   3. one message at a time (LATENCY_MESSAGES, default 1000): the time from the webhook
#      to callbackd's answer, which comes once A's Originate is placed;
#   4. the peer: POST /v1/callbacks {"caller": "1000", "callee": "3001", "account": ...}.
# Environment: DURATION (10s), CONNECTIONS (64), WRK_THREADS (2), SERVER_THREADS (2), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
bin=$build/bin
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
wrk_threads=${WRK_THREADS:-2}
server_threads=${SERVER_THREADS:-2}
senders=${SENDERS:-200}
requests=${REQUESTS:-400000}
lua=$PWD/benchmarks/wrk/signed.lua
export WRK_LUA_DIR=$PWD/benchmarks/wrk WRK_THREADS_N=$wrk_threads WRK_PATH=/hooks/sms/twilio

command -v wrk >/dev/null || { echo "sms_load.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 2; }
for b in callbackd callbackctl callback-fake-asterisk; do
  [[ -x $bin/$b ]] || { echo "sms_load.sh: $bin/$b is missing; build it first" >&2; exit 2; }
done
tmp=$(mktemp -d /tmp/sms_load.XXXXXX)
source benchmarks/load_common.sh

echo "sms_load.sh: $(nproc) cores; wrk and the servers share them. build: $build"
start fake-asterisk 'listening on 127\.0\.0\.1:([0-9]+)' "$bin/callback-fake-asterisk" --port 0 --time-scale 0
ami_port=$port
fake_pid=$last_pid

url=http://bench.example/hooks/sms/twilio
export KEY_SCOPE=admin  # it adds the accounts too
callbackd_instance sms '{"plugin": "callback.billing.sqlite"}' \
  '[{"plugin": "callback.trigger.sms", "config": {"twilio_auth_token": "benchtoken", "twilio_url": "'$url'",
     "per_sender_per_hour": 1000000}}]'
printf 'prefix;description;rate;increment\n1;bench phones 1XXX;0.10;60/60\n3;bench phones 3XXX;0.10;60/60\n' >"$data/deck.csv"
CALLBACK_DATA_DIR=$data "$bin/callbackctl" --config "$cfg" rates import default "$data/deck.csv" >/dev/null
start callbackd-sms 'callbackd: listening on http://[^ ]*:([0-9]+)/' \
  env CALLBACK_DATA_DIR="$data" "$bin/callbackd" --config "$cfg"
cb_port=$port
cb_pid=$last_pid
python3 - "$cb_port" "$key" "$senders" <<'PY'
import http.client, json, sys
port, key, senders = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(senders):
    body = json.dumps({"id": f"s{i}", "currency": "CNY", "balance": "100000000.00", "numbers": [str(1000 + i)]})
    c.request("POST", "/v1/accounts", body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 201, (r.status, body)
PY
python3 - "$url" "$requests" "$senders" >"$tmp/requests.tsv" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
url, n, senders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout
for i in range(n):
    fields = {"MessageSid": "SM%030d" % i, "From": "+%d" % (1000 + i % senders), "To": "+10690000", "Body": "3001"}
    signed = url + "".join(k + fields[k] for k in sorted(fields))
    signature = base64.b64encode(hmac.new(b"benchtoken", signed.encode(), hashlib.sha1).digest()).decode()
    out.write(signature + "\t" + urllib.parse.urlencode(fields) + "\n")
PY
echo "accounts: $senders; signed webhooks: $(wc -l <"$tmp/requests.tsv")"

export WRK_REQUESTS=$tmp/requests.tsv
run "SMS webhooks, new messages" "$cb_pid" "http://127.0.0.1:$cb_port/hooks/sms/twilio"
after_post "$cb_port" "$tmp/callbackd-sms.log"
accepted=$(metric "$cb_port" 'callback_trigger_requests_total{trigger="sms",outcome="accepted"}')
echo "-- accepted (a callback each): ${accepted:-0}"
results+=("$(printf '%-37s accepted=%s' "  (SMS counters)" "${accepted:-0}")")

# Only messages the first run sent (each wrk thread sent about half of its share: 90 %
# of the first run's count is safely inside what went out).
sent=$(sed -nE 's/^RESULT requests=([0-9]+).*/\1/p' "$tmp/wrk.txt")
head -n $(( sent * 9 / 10 )) "$tmp/requests.tsv" >"$tmp/again.tsv"
export WRK_REQUESTS=$tmp/again.tsv
run "SMS webhooks, the same again" "$cb_pid" "http://127.0.0.1:$cb_port/hooks/sms/twilio"
echo "-- counters: $(curl -sf "http://127.0.0.1:$cb_port/metrics" | grep '^callback_trigger_requests_total' | tr '\n' ' ')"

# Time from an SMS to A being dialed, one message at a time (no queueing): Twilio's POST
# to callbackd's answer, which comes once billing has authorized the call, the journal has
# it and the engine has placed A's Originate (the fake rings A at once).
echo
echo "== one SMS at a time: webhook to A dialed (${LATENCY_MESSAGES:-1000} messages)"
latency=$(python3 - "$cb_port" "$url" "${LATENCY_MESSAGES:-1000}" "$senders" <<'PY'
import base64, hashlib, hmac, http.client, sys, time, urllib.parse
port, url, n, senders = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
took = []
for i in range(n):
    fields = {"MessageSid": "LAT%030d" % i, "From": "+%d" % (1000 + i % senders), "To": "+10690000", "Body": "3001"}
    signed = url + "".join(k + fields[k] for k in sorted(fields))
    signature = base64.b64encode(hmac.new(b"benchtoken", signed.encode(), hashlib.sha1).digest()).decode()
    body = urllib.parse.urlencode(fields)
    start = time.perf_counter()
    c.request("POST", "/hooks/sms/twilio", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                  "X-Twilio-Signature": signature})
    r = c.getresponse()
    text = r.read().decode()
    took.append(time.perf_counter() - start)
    assert r.status == 200 and "Calling you" in text, (r.status, text)
took.sort()
q = lambda p: took[min(len(took) - 1, int(p * len(took)))] * 1000
print("p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms" % (q(0.5), q(0.9), q(0.99), took[-1] * 1000))
PY
)
echo "-- $latency"
results+=("$(printf '%-37s %s' "SMS to A dialed, one at a time" "$latency")")

lua=$PWD/benchmarks/wrk/count.lua
run "callbackd POST account (the peer)" "$cb_pid" "http://127.0.0.1:$cb_port/v1/callbacks" POST \
  '{"caller": "1000", "callee": "3001", "account": "s0"}' "$key"
after_post "$cb_port" "$tmp/callbackd-sms.log"
stop "$cb_pid"

echo
echo "== summary (req/s over the run; latency in µs; status: answers by HTTP status)"
printf '%s\n' "${results[@]}"
