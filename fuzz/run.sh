#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh <build-dir> [seconds per target].
# Mutations start from the committed seeds (fuzz/corpus/<target>/, never written to)
# and go to a scratch corpus in the build folder. Any crash, leak, sanitizer
# report, timeout (10 s) or out-of-memory (2 GiB) fails the run and leaves the input in
# <build-dir>/fuzz-artifacts/; copy it into fuzz/regressions/<target>/ so the test
# suite replays it forever (tests/core/serialize/test_fuzz_regressions.cpp).
set -euo pipefail
build=$(realpath "${1:?usage: fuzz/run.sh <build-dir> [seconds]}")
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$build/fuzz-artifacts"
for target in safetensors torch_pt load_state_dict; do
    scratch="$build/fuzz-corpus/$target"
    mkdir -p "$scratch"
    echo "fuzz: $target for $seconds s"
    # Replay the kept crashers first, then fuzz.
    regressions=("$here/regressions/$target"/*)
    if [ -e "${regressions[0]}" ]; then
        "$build/fuzz_$target" "${regressions[@]}" >"$build/fuzz-$target-replay.log" 2>&1 || {
            tail -n 60 "$build/fuzz-$target-replay.log"
            echo "fuzz: $target FAILED on a kept regression input" >&2
            exit 1
        }
        echo "fuzz: $target: ${#regressions[@]} kept regression inputs replayed"
    fi
    "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=16384 -dict="$here/$target.dict" -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/$target-" "$scratch" "$here/corpus/$target" \
        >"$build/fuzz-$target.log" 2>&1 || {
        tail -n 60 "$build/fuzz-$target.log"
        echo "fuzz: $target FAILED; the input is in $build/fuzz-artifacts/" >&2
        exit 1
    }
    grep -E '^Done' "$build/fuzz-$target.log"
done
