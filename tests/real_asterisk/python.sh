#!/usr/bin/env bash
# The Python module (bindings/python) on a REAL Asterisk: each outcome, a burst of N
# callbacks at once with an event handler each, a cancel while B rings, then nothing left
# on Asterisk.
#
#   AST_PREFIX=/tmp/ast ../shared/asterisk/peer.sh start . build/share/callback/sounds
#   tests/real_asterisk/python.sh [--build build] [--engine ami|ari] [--burst N]
#
# Not run by CI (no Asterisk there); tests/README.md lists the runs made with it.
set -euo pipefail
build=build engine=ami burst=40
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --burst) burst=$2; shift 2 ;;
    *) echo "python.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
build=$(cd "$build" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/callback.json" <<EOF
{
  "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
  "store": {"plugin": "callback.store.sqlite", "config": {"path": "$work/callback.db"}},
  "billing": {"plugin": "callback.billing.sqlite", "enabled": false},
  "engines": [$(engine_entry "$engine" callback-app-python)],
  "service": {"campaigns": {"free": {"limit_seconds": 300}}, "b_ring_timeout_seconds": 6, "a_ring_timeout_seconds": 6},
  "log": {"level": "warning"}
}
EOF
PYTHONPATH="$build/python" /usr/bin/python3 "$here/python_run.py" "$work/callback.json" "$build/lib/callback/plugins" "$burst"
echo "left on Asterisk: $(asterisk_left)"
[ "$(asterisk_left)" = "0 active channels, 0 bridges" ]
