#!/usr/bin/env bash
# The README's test command and the only thing .ci/run does. Installs the
# dependencies, then three stages; the first failure stops the run:
#   1. Release build in build/: every test, the examples, the packaging checks.
#   2. ThreadSanitizer build in build-tsan/ (see tests/tsan/CMakeLists.txt): the
#      tests that run threads; any data race report fails the test it is in.
#   3. Sanitizer build in build-asan/ (clang, RelWithDebInfo at -O1 -g1,
#      XGRAD_SANITIZE=ON: ASan, UBSan, LeakSanitizer, with the libFuzzer
#      targets of tests/fuzz): every fuzz target for XGRAD_FUZZ_SECONDS (default
#      10) seconds, then every test again, any report failing the test it is in.
# The sanitizer build precompiles each layer's common headers
# (XGRAD_PRECOMPILE_LAYERS; cmake/xgrad_layer.cmake says why not the first), the
# ThreadSanitizer build compiles six files to a unit (tests/tsan/CMakeLists.txt).
# Every build treats warnings as errors: the code is warning-free under
# -Wall -Wextra with GCC and clang, and stays so.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages only tests run (PyTorch, Chromium, dot: most of a fresh machine's
# download) arrive in the background while the first build compiles; the first
# ctest waits for them.
scripts/install-deps.sh build
test_deps_log=$(mktemp)
scripts/install-deps.sh test >"$test_deps_log" 2>&1 &
test_deps=$!
wait_for_test_deps() {
    if ! wait "$test_deps"; then
        cat "$test_deps_log" >&2
        echo "test.sh: installing the test-only packages failed" >&2
        exit 1
    fi
    cat "$test_deps_log"
    rm -f "$test_deps_log"
}

# Ninja keeps both cores busy across targets, where Make waits for a library
# to be linked before it compiles what links it. A build folder configured
# before, by hand, keeps its generator.
configure() {
    local dir=$1
    shift
    if [ -f "$dir/CMakeCache.txt" ]; then
        cmake -B "$dir" "$@"
    else
        cmake -G Ninja -B "$dir" "$@"
    fi
}

# CTest runs two tests at once on two cores: one BLAS thread each, or
# OpenBLAS's spinning threads take turns with the other test's (a 3 s example
# took 15 s beside another).
export OPENBLAS_NUM_THREADS=1

echo "== 1/3 Release build and tests"
configure build -S . -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
cmake --build build -j2
wait_for_test_deps
ctest --test-dir build --output-on-failure -j2

echo "== 2/3 ThreadSanitizer build and thread tests"
configure build-tsan -S tests/tsan -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
cmake --build build-tsan -j2
ctest --test-dir build-tsan --output-on-failure -j2

echo "== 3/3 sanitizer build, tests and fuzzing"
# Every report is fatal: ASan aborts, UBSan is built without recovery and halts,
# LeakSanitizer fails the process at exit.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# -O1 -g1 (ASan's advice; line tables are enough for its stack traces) compiles
# twice as fast as -O2 -g. One build serves the tests and the fuzzers: the
# fuzz targets need clang, so the whole stage uses it.
configure build-asan -S . -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DXGRAD_SANITIZE=ON -DXGRAD_BUILD_FUZZERS=ON -DCMAKE_COMPILE_WARNING_AS_ERROR=ON -DXGRAD_PRECOMPILE_LAYERS=ON \
    -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
cmake --build build-asan -j2
tests/fuzz/run.sh build-asan/tests/fuzz "${XGRAD_FUZZ_SECONDS:-10}"
# packaging.* only rebuild xgrad as an outside project: they check packaging,
# which stage 1 did, not memory, and would double this stage's build time.
# ctest's summary of the whole suite under the sanitizers is the last thing printed.
ctest --test-dir build-asan --output-on-failure -j2 -E '^packaging\.'

