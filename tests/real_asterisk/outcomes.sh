#!/usr/bin/env bash
# Every outcome of a callback, one at a time (all at once), in English and Chinese, on a REAL
# Asterisk with the project's prompts installed; then Asterisk's own log must show no
# "Playback failed" and no missing sound file for any of them.
#
#   AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start . build/share/callback/sounds
#   tests/real_asterisk/outcomes.sh [--bin build/bin]
#
# Each row: A, B, what callbackctl must report. Not run by CI (no Asterisk there);
# tests/README.md lists the runs made with it.
set -euo pipefail
bin=build/bin
[ "${1:-}" = "--bin" ] && bin=$2
bin=$(cd "$bin" && pwd)
log=${AST_PREFIX:-/tmp/ast}/peer.log
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CALLBACK_DATA_DIR=$work
cat >"$work/callback.json" <<'EOF'
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "billing": {"plugin": "callback.billing.sqlite", "enabled": false},
  "engines": [{"plugin": "callback.engine.ami", "name": "asterisk",
               "config": {"servers": ["127.0.0.1:5038"], "username": "callback", "secret": "callbacksecret",
                          "dial_string": "Local/{number}@phones"}}],
  "service": {"campaigns": {"free": {"limit_seconds": 300}}, "b_ring_timeout_seconds": 6, "a_ring_timeout_seconds": 6},
  "log": {"level": "error"}
}
EOF
# A      B      expected outcome      (extra callbackctl options)
cases=(
  "1001 2001 partner_hangup"
  "1001 1002 time_up --limit 6"
  "1001 3001 partner_busy"
  "1001 4001 partner_away"
  "1001 5001 system_busy"
  "1001 5501 system_busy"
  "1001 6001 partner_busy"
  "1001 5801 call_failed"
  "1001 0002 call_failed"
  "3001 1002 caller_unreachable"
  "4001 1002 caller_unreachable"
  "0001 1002 caller_unreachable"
)
before=$(wc -l <"$log")
n=0
for language in en zh; do
  for c in "${cases[@]}"; do
    read -r a b want extra <<<"$c"
    # Distinct numbers per call: the phones context matches on the first digit.
    a=${a:0:2}$(printf '%02d' $((n % 100)))
    # Each call its own store: one service at a time owns a store's calls in flight.
    (
      mkdir -p "$work/$n.data"
      CALLBACK_DATA_DIR=$work/$n.data "$bin/callbackctl" --config "$work/callback.json" call "$a" "$b" --campaign free --language "$language" $extra \
        >"$work/$n.out" 2>&1 || true
    ) &
    echo "$n $language $a $b $want" >>"$work/cases"
    n=$((n + 1))
  done
done
wait
bad=0
while read -r i language a b want; do
  got=$(grep -o 'ended: [a-z_]*' "$work/$i.out" | tail -1 | cut -d' ' -f2 || true)  # none: shown below
  mark=ok
  [ "$got" = "$want" ] || { mark=WRONG; bad=$((bad + 1)); }
  printf '%-5s %s  A=%s B=%s  want %-18s got %s\n' "$mark" "$language" "$a" "$b" "$want" "${got:-nothing: $(tail -1 "$work/$i.out")}"
done <"$work/cases"
failed_playback=$(tail -n +"$((before + 1))" "$log" | grep -cE 'Playback failed|does not exist in any format' || true)
echo "Asterisk log during the run: $failed_playback lines of 'Playback failed' or a missing sound file"
tail -n +"$((before + 1))" "$log" | grep -E 'Playback failed|does not exist in any format' | head -5 || true
echo "$((n - bad)) of $n outcomes right"
[ "$bad" -eq 0 ] && [ "$failed_playback" -eq 0 ]
