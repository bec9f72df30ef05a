#!/usr/bin/env bash
# Wall time of `callbackctl plugins list` over every plugin of the tree (aim: < 100 ms).
# Usage: benchmarks/plugins_list.sh [BUILD_DIR]   (hyperfine from Debian: apt-get install hyperfine)
set -euo pipefail
build=${1:-build-release}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
"$build/bin/callbackctl" plugins list
hyperfine --warmup 5 --runs 100 --shell=none "$build/bin/callbackctl plugins list"
