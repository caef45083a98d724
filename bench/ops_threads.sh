#!/bin/sh
# bench/ops at 1 and 2 threads, run in turn for R rounds, and each row's 2-thread
# time over its 1-thread time (issue 23: <= 0.6 for the [2048, 2048] rows).
# StreamRelu is the memory's own ratio: bare loops over the same arrays.
#
#   bench/ops_threads.sh [--rounds 3] [--filter REGEX]
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
rounds=3
filter=.
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "ops_threads.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCH=ON \
  -DXGRAD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target ops >/dev/null
# OpenBLAS 0.3.21 runs its generic kernels on CPUs it does not know unless told.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=Haswell
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
round=0
while [ "$round" -lt "$rounds" ]; do
  for threads in 1 2; do
    OPENBLAS_NUM_THREADS=$threads "$build/bench/ops" --benchmark_filter="$filter" \
      --benchmark_min_time=0.2 2>/dev/null |
      awk -v t="$threads" '/^BM_/ { print t, $1, $2 }' >>"$results"
  done
  round=$((round + 1))
done

# Per row: the median time at each thread count, and their ratio.
awk '
function med(s,   n, v, i, j, t) {
  n = split(s, v, " ")
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
  return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
{ if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } times[$2, $1] = times[$2, $1] " " $3 }
END {
  print "| op ([2048, 2048] float32, forward + backward) | 1 thread ms | 2 threads ms | 2 / 1 |"
  print "|---|---|---|---|"
  for (i = 1; i <= n; i++) {
    a = med(times[order[i], 1]); b = med(times[order[i], 2])
    name = order[i]; sub(/^BM_/, "", name)
    printf "| %s | %.2f | %.2f | %.2f |\n", name, a, b, b / a
  }
}' "$results"
