#!/usr/bin/env bash
# Fuzzes the package reader (cpp_runtime/fuzz/archive_fuzzer.cc) under
# libFuzzer + ASan + UBSan.
#
# Usage: scripts/run_fuzzer.sh [SECONDS] [RUNS]
#   SECONDS  wall-clock budget (default 20)
#   RUNS     stop after this many executions per job (default: no limit)
# Environment:
#   FUZZ_JOBS       parallel fuzzing processes (default 1); each gets the
#                   limits above, logs go to build/fuzz/logs/
#   FUZZ_BUILD_DIR  build directory (default build/fuzz)
#   CXX_FUZZ        clang++ to use (default clang++)
#
# Builds with clang into build/fuzz (the fuzz directory is configured on its
# own, so neither zstd nor the rest of the runtime is needed), writes the seed
# corpus, fuzzes, prints libFuzzer's final stats, and exits non-zero if any
# input crashed, leaked, timed out or ran out of memory. New interesting inputs
# accumulate in build/fuzz/corpus across runs; crashing inputs land in
# build/fuzz/artifacts/ (reproduce with: build/fuzz/archive_fuzzer FILE).
set -euo pipefail

seconds=${1:-20}
runs=${2:--1}
jobs=${FUZZ_JOBS:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build/fuzz}
cxx=${CXX_FUZZ:-clang++}

cmake -S "$root/cpp_runtime/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target archive_fuzzer -j2

seeds=$build/seeds
corpus=$build/corpus
artifacts=$build/artifacts
logs=$build/logs
python3 "$root/scripts/make_fuzz_corpus.py" "$seeds" --dict "$build/archive.dict"
mkdir -p "$corpus" "$logs"
rm -rf "$artifacts"
rm -f "$logs"/*.log  # the summary below reads every log in there
mkdir -p "$artifacts"

# New inputs are written to the first corpus directory only; seeds stay as made.
flags=(-max_total_time="$seconds" -runs="$runs" -dict="$build/archive.dict"
  -artifact_prefix="$artifacts/" -print_final_stats=1 -max_len=8192 -timeout=10
  -rss_limit_mb=2048)
status=0
if [[ $jobs -le 1 ]]; then
  "$build/archive_fuzzer" "${flags[@]}" "$corpus" "$seeds" >"$logs/fuzz-0.log" 2>&1 || status=$?
else
  # -jobs writes fuzz-N.log into the working directory.
  (cd "$logs" && "$build/archive_fuzzer" "${flags[@]}" -jobs="$jobs" -workers="$jobs" \
    "$corpus" "$seeds") >"$logs/jobs.log" 2>&1 || status=$?
fi

total=0
for log in "$logs"/fuzz-*.log; do
  [[ -f $log ]] || continue
  echo "== $(basename "$log")"
  # The last status line carries executions, coverage and exec/s.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done )' "$log" || true
  n=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n 1)
  total=$((total + ${n:-0}))
done
echo "total executions: $total"

crashes=$(find "$artifacts" -type f | wc -l)
if [[ $status -ne 0 || $crashes -ne 0 ]]; then
  echo "FUZZING FAILED (exit status $status, $crashes artifact(s) in $artifacts):" >&2
  find "$artifacts" -type f >&2
  grep -hE 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error' \
    "$logs"/*.log >&2 || true
  exit 1
fi
echo "no crashes"
