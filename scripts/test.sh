#!/usr/bin/env bash
# The README's test command and the only thing .ci/run does. Installs the
# dependencies, then four stages; the first failure stops the run:
#   1. Release build in build/: every test.
#   2. Fuzzing in build-fuzz/ (clang, libFuzzer, ASan + UBSan): every target in
#      fuzz/ for XGRAD_FUZZ_SECONDS (default 60) seconds; see fuzz/run.sh.
#   3. ThreadSanitizer build in build-tsan/ (see tsan/CMakeLists.txt): the tests
#      that run threads; any data race report fails the test it is in.
#   4. Sanitizer build in build-asan/ (RelWithDebInfo at -O1 -g1, XGRAD_SANITIZE=ON: ASan,
#      UBSan, LeakSanitizer): every test again; any report fails the test it is in.
# Every build treats warnings as errors: the code is warning-free under
# -Wall -Wextra with GCC and clang, and stays so.
# ctest's summary of the sanitizer run is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== 1/4 Release build and tests"
cmake -S . -B build -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2

echo "== 2/4 fuzzing"
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
cmake --build build-fuzz -j2
fuzz/run.sh build-fuzz "${XGRAD_FUZZ_SECONDS:-60}"

echo "== 3/4 ThreadSanitizer build and thread tests"
cmake -S tsan -B build-tsan -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
cmake --build build-tsan -j2
ctest --test-dir build-tsan --output-on-failure -j2

echo "== 4/4 sanitizer build and tests"
# Every report is fatal: ASan aborts, UBSan is built without recovery and halts,
# LeakSanitizer fails the process at exit.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# -O1 -g1 (ASan's advice; line tables are enough for its stack traces) compiles
# twice as fast as -O2 -g here, which keeps the whole run under 30 minutes.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXGRAD_SANITIZE=ON \
    -DCMAKE_COMPILE_WARNING_AS_ERROR=ON \
    -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
cmake --build build-asan -j2
# packaging.* only rebuild xgrad as an outside project: they check packaging,
# which stage 1 did, not memory, and would double this stage's build time.
ctest --test-dir build-asan --output-on-failure -j2 -E '^packaging\.'
