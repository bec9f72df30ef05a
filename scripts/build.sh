#!/usr/bin/env bash
# Configures and builds the whole tree. Usage: scripts/build.sh [--sanitize] [--release]
#   default:     build/         RelWithDebInfo
#   --release:   build-release/ Release
#   --sanitize:  build-asan/    Debug with AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build type=RelWithDebInfo sanitize=OFF
for arg in "$@"; do
  case "$arg" in
    --sanitize) dir=build-asan type=Debug sanitize=ON ;;
    --release) dir=build-release type=Release ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DCALLBACK_SANITIZE="$sanitize" >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "$dir"
