#!/usr/bin/env bash
# Runs every fuzz target for a bounded time:
#   tests/fuzz/run.sh <dir with the fuzz_* binaries> [seconds per target]
# Targets run side by side, one per core (each fuzzer is one process on one
# core, so each gets the whole core for its seconds). Mutations start from the
# committed seeds (tests/fuzz/corpus/<target>/, never written to) and go to a
# scratch corpus in the build folder. Any crash, leak, sanitizer report,
# timeout (10 s) or out-of-memory (2 GiB) fails the run and leaves the input in
# <dir>/fuzz-artifacts/; copy it into tests/fuzz/regressions/<target>/ so the test
# suite replays it forever (tests/core/serialize/test_fuzz_regressions.cpp).
set -euo pipefail
shopt -s nullglob
build=$(realpath "${1:?usage: tests/fuzz/run.sh <dir with the fuzz_* binaries> [seconds]}")
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
cores=$(nproc)

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$build/fuzz-artifacts"

# One target: replay the kept crashers, then fuzz. Prints one verdict line.
fuzz_one() {
    local target=$1 scratch="$build/fuzz-corpus/$1"
    mkdir -p "$scratch"
    local regressions=("$here/regressions/$target"/*)
    if [ ${#regressions[@]} -gt 0 ] &&
        ! "$build/fuzz_$target" "${regressions[@]}" >"$build/fuzz-$target-replay.log" 2>&1; then
        tail -n 60 "$build/fuzz-$target-replay.log"
        echo "fuzz: $target FAILED on a kept regression input" >&2
        return 1
    fi
    if ! "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=16384 -dict="$here/$target.dict" -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/$target-" "$scratch" "$here/corpus/$target" \
        >"$build/fuzz-$target.log" 2>&1; then
        tail -n 60 "$build/fuzz-$target.log"
        echo "fuzz: $target FAILED; the input is in $build/fuzz-artifacts/" >&2
        return 1
    fi
    echo "fuzz: $target: ${#regressions[@]} kept inputs replayed, $(grep -E '^Done' "$build/fuzz-$target.log")"
}

failed=0
running=0
for target in safetensors torch_pt load_state_dict sharded_index; do
    if [ "$running" -ge "$cores" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    echo "fuzz: $target for $seconds s"
    fuzz_one "$target" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
exit "$failed"
