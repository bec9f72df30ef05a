#!/usr/bin/env bash
# The exported CMake package works for people outside this tree: install to a fresh
# prefix, build examples/ against it (embedding apps and an out-of-tree plugin), run them
# (embed_callbacks against the Asterisk fake of the build tree), check the installed
# callbackctl finds the installed plugins by itself, and that the installed Python package
# imports and runs a callback with them.
# Usage: check_package.sh BUILD_DIR SOURCE_DIR [extra CXX flags]
set -euo pipefail
build=$1 source=$2 flags=${3:-}
work=$(mktemp -d)
fake_pid=""
trap '[ -z "$fake_pid" ] || kill "$fake_pid" 2>/dev/null; rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/examples" -B "$work/examples" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$work/examples" >/dev/null

out=$("$work/examples/embed_store" "$work/data/callback.db")
[ "$out" = "account 123 balance 4.80 CNY" ] || { echo "embed_store printed: $out"; exit 1; }

# The embedding API against the fake Asterisk: billing, an account, a callback to its cost,
# a cancel, the records.
mkdir -p "$work/run"
"$build/bin/callback-fake-asterisk" --port 0 --time-scale 0.01 > "$work/run/fake.out" &
fake_pid=$!
for _ in $(seq 100); do grep -q "listening" "$work/run/fake.out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/run/fake.out")
[ -n "$port" ] || { echo "the Asterisk fake did not start"; exit 1; }
config() {  # DATABASE BILLING(true|false)
  cat <<EOF
{"numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
 "store": {"plugin": "callback.store.sqlite", "config": {"path": "$1"}},
 "billing": {"plugin": "callback.billing.sqlite", "enabled": $2, "config": {"path": "$1"}},
 "engines": [{"plugin": "callback.engine.ami", "config": {"servers": ["127.0.0.1:$port"], "secret": "callbacksecret"}}],
 "service": {"b_ring_timeout_seconds": 600, "campaigns": {"free": {"limit_seconds": 30}}}, "log": {"level": "warning"}}
EOF
}
config "$work/run/callback.db" true > "$work/run/callback.json"
embedded=$("$work/examples/embed_callbacks" "$work/run/callback.json")
for line in "event bridged" "outcome time_up cost 0.30" "canceled canceled" "listed 2" "cdrs 2" "balance 5.70"; do
  grep -qx "$line" <<<"$embedded" || { echo "embed_callbacks did not print \"$line\":"; echo "$embedded"; exit 1; }
done

# The installed Python package (when it was built): Debian's python3 finds it under the
# prefix, and it loads the installed libcallback and plugins by itself.
site=$(ls -d "$work"/prefix/lib/python3*/dist-packages 2>/dev/null || true)
if [ -n "$site" ]; then
  config "$work/run/python.db" false > "$work/run/python.json"
  preload=""  # a sanitizer build: python3 is not built with them, so their runtimes come first
  [ -z "$flags" ] || preload="$(c++ -print-file-name=libasan.so):$(c++ -print-file-name=libubsan.so)"
  called=$(cd /tmp && LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$site" /usr/bin/python3 -m callback --config "$work/run/python.json" \
    call 1001 3001 --campaign free || true)
  grep -q "ended: partner_busy" <<<"$called" || { echo "installed python3 -m callback:"; echo "$called"; exit 1; }
fi

list=$("$work/prefix/bin/callbackctl" plugins list)
grep -E "^callback.store.sqlite +store +[0-9.]+ +loaded +$work/prefix/" <<<"$list" >/dev/null \
  || { echo "installed callbackctl did not find the installed store plugin:"; echo "$list"; exit 1; }

described=$("$work/prefix/bin/callbackctl" plugins describe --plugin-dir "$work/examples" example.trigger.hello)
grep -q "example.trigger.hello 1.0.0 (trigger plugin)" <<<"$described" \
  || { echo "out-of-tree plugin not described:"; echo "$described"; exit 1; }
grep -q "greeting" <<<"$described" || { echo "option missing:"; echo "$described"; exit 1; }
echo "package OK: embedding apps, out-of-tree plugin, installed plugin search path${site:+, Python package}"
