#!/usr/bin/env bash
# Every outcome of a callback, one at a time (all at once), in English and Chinese, on a REAL
# Asterisk with the project's prompts installed; then Asterisk's own log must show no
# "Playback failed" and no missing sound file for any of them.
#
#   AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start . build/share/callback/sounds
#   tests/real_asterisk/outcomes.sh [--bin build/bin] [--engine ami|ari] [--keep DIR]
#
# Each row: A, B, what callbackctl must report, and the prompts A heard (from Asterisk's
# log, by A's channel name). --engine: which engine callbackd runs (common.sh; default ami).
# --keep DIR: each case's final callback and CDR rows (`callbackctl --json status`) are
# kept there as <language>-<case>.json (callbackctl's output and log as .out), and `runs.py compare DIR1 DIR2` sets one engine's run
# beside the other's. Not run by CI (no Asterisk there); tests/README.md lists the runs made with it.
set -euo pipefail
bin=build/bin engine=ami keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "outcomes.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
engine_entry "$engine" >/dev/null
bin=$(cd "$bin" && pwd)
[ -n "$keep" ] && mkdir -p "$keep" && keep=$(cd "$keep" && pwd)
log=${AST_PREFIX:-/tmp/ast}/peer.log
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CALLBACK_DATA_DIR=$work
config() {  # the config of case N: with ARI an app of its own (common.sh)
  cat <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "billing": {"plugin": "callback.billing.sqlite", "enabled": false},
  "engines": [$(engine_entry "$engine" "callback-app-$1")],
  "service": {"campaigns": {"free": {"limit_seconds": 300}}, "b_ring_timeout_seconds": 6, "a_ring_timeout_seconds": 6},
  "log": {"level": "warning"}
}
EOF
}
# A      B      expected outcome      (extra callbackctl options)
cases=(
  "1001 2001 partner_hangup"
  "1001 1002 time_up --limit 6"
  "1001 1003 time_up --limit 25"
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
    mkdir -p "$work/$n.data"
    config "$n" >"$work/$n.json"
    (
      CALLBACK_DATA_DIR=$work/$n.data "$bin/callbackctl" --config "$work/$n.json" --json call "$a" "$b" --campaign free --language "$language" $extra \
        >"$work/$n.out" 2>&1 || true
    ) &
    echo "$n $language $a $b $want" >>"$work/cases"
    n=$((n + 1))
  done
done
wait
bad=0
while read -r i language a b want; do
  read -r id got <<<"$(python3 "$here/runs.py" last "$work/$i.out")"
  mark=ok
  [ "$got" = "$want" ] || { mark=WRONG; bad=$((bad + 1)); }
  # What A heard: the log's "Playing '<file>.<ext>' (language '<l>')" lines of A's channel.
  status=$(CALLBACK_DATA_DIR=$work/$i.data "$bin/callbackctl" --config "$work/$i.json" --json status "$id" 2>/dev/null || echo '{"cdrs":[]}')
  channel=$(python3 -c 'import json, sys; print(next((c["channel"] for c in json.loads(sys.argv[1])["cdrs"] if c["leg"] == "A"), ""))' "$status")
  heard=
  [ -n "$channel" ] && heard=$(tail -n +"$((before + 1))" "$log" | grep -F "<$channel> Playing '" |
    sed -E "s/.*Playing '([^.']*)[^']*' \(language '([a-z]*)'\).*/\1(\2)/" | tr '\n' ' ' || true)
  printf '%-5s %s  A=%s B=%s  want %-18s got %-18s heard: %s\n' "$mark" "$language" "$a" "$b" "$want" \
    "${got:-nothing: $(tail -1 "$work/$i.out")}" "${heard:-nothing}"
  if [ -n "$keep" ]; then
    python3 "$here/runs.py" keep "$work/$i.out" "$status" "$language $a $b $want" "$heard" >"$keep/$language-$(printf '%02d' "$i").json"
    cp "$work/$i.out" "$keep/$language-$(printf '%02d' "$i").out"
  fi
done <"$work/cases"
failed_playback=$(tail -n +"$((before + 1))" "$log" | grep -cE 'Playback failed|does not exist in any format' || true)
echo "Asterisk log during the run: $failed_playback lines of 'Playback failed' or a missing sound file"
tail -n +"$((before + 1))" "$log" | grep -E 'Playback failed|does not exist in any format' | head -5 || true
echo "$((n - bad)) of $n outcomes right"
[ "$bad" -eq 0 ] && [ "$failed_playback" -eq 0 ]
