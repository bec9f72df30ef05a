#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build-fuzz/ and
# runs each for a while. Usage: scripts/fuzz.sh [--seconds N] [--runs N] [--seed S] [target...]
#   targets: ami config phone money rate_deck rest_body query sms (default: all), N default 30.
#   --seed S: start from the committed seeds only, with libFuzzer's random seed S, so a run is
#   the same sequence of inputs every time and a shorter run is a prefix of a longer one. CI
#   runs `--seconds 30 --seed 1`; `--seconds 600 --seed 1` on a workstation covers it (a gate
#   must not pass or fail by luck). --runs N stops after N inputs.
# Each run starts from the committed seeds (tests/fuzz/corpus/<target>/) plus what earlier
# runs found (build-fuzz/corpus/<target>/). Exits 1 if any target crashed or broke an
# invariant; the input that did it is saved in build-fuzz/crashes/<target>/: copy it into
# tests/fuzz/corpus/<target>/ and add a GoogleTest case with it when fixing the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30
limit=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) limit+=(-runs="$2"); shift 2 ;;
    --seed) limit+=(-seed="$2"); shift 2 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(ami config phone money rate_deck rest_body query sms)

cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCALLBACK_FUZZ=ON -DCALLBACK_BUILD_TESTS=OFF -DCALLBACK_BUILD_BENCHMARKS=OFF -DCALLBACK_INSTALL=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t crashes=build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  log=build-fuzz/fuzz-$t.log
  bound=(-max_total_time="$seconds" "${limit[@]}")
  echo "fuzz.sh: $t ${bound[*]}"
  if [[ " ${limit[*]} " == *" -seed="* ]]; then
    corpus=build-fuzz/corpus-seeded/$t  # only the committed seeds, so the run is reproducible
    rm -rf "$corpus" && mkdir -p "$corpus"
  fi
  if build-fuzz/fuzz/fuzz_$t "${bound[@]}" -print_final_stats=1 -artifact_prefix="$crashes/" \
      "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done' "$log" | tr '\n' ' '; echo
  else
    echo "fuzz.sh: $t FAILED; the input is in $crashes/ (log: $log):" >&2
    grep -E 'FUZZ_CHECK|ERROR|runtime error|what\(\)' "$log" | head -5 >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${targets[*]}: no crash"
