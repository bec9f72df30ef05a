#!/usr/bin/env bash
# The exported CMake package works for people outside this tree: install to a fresh
# prefix, build examples/ against it (an embedding app and an out-of-tree plugin), run
# both, and check the installed callbackctl finds the installed plugins by itself.
# Usage: check_package.sh BUILD_DIR SOURCE_DIR [extra CXX flags]
set -euo pipefail
build=$1 source=$2 flags=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/examples" -B "$work/examples" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$work/examples" >/dev/null

out=$("$work/examples/embed_store" "$work/data/callback.db")
[ "$out" = "account 123 balance 4.80 CNY" ] || { echo "embed_store printed: $out"; exit 1; }

list=$("$work/prefix/bin/callbackctl" plugins list)
grep -E "^callback.store.sqlite +store +[0-9.]+ +loaded +$work/prefix/" <<<"$list" >/dev/null \
  || { echo "installed callbackctl did not find the installed store plugin:"; echo "$list"; exit 1; }

described=$("$work/prefix/bin/callbackctl" plugins describe --plugin-dir "$work/examples" example.trigger.hello)
grep -q "example.trigger.hello 1.0.0 (trigger plugin)" <<<"$described" \
  || { echo "out-of-tree plugin not described:"; echo "$described"; exit 1; }
grep -q "greeting" <<<"$described" || { echo "option missing:"; echo "$described"; exit 1; }
echo "package OK: embedding app, out-of-tree plugin, installed plugin search path"
