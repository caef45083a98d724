#!/bin/sh
# Builds encoder_step and torch_encoder_step and runs them in turn (interleaved,
# so both see the same machine state) for --rounds rounds at 1 and 2 threads;
# prints the median step time and peak RSS of each, and xgrad / libtorch.
#
#   bench/compare_encoder.sh [--rounds 5] [--steps 15] [--build DIR] [--csv FILE]
#
# --csv FILE replaces FILE's "encoder" rows (compare.sh's CSV format, no GEMM
# limit) with this run's, so perf_chart draws them after the FFN rows.
#
# OpenBLAS 0.3.21 picks its kernels by CPU model and falls back to generic SSE3
# ones (sgemm_kernel_PRESCOTT in perf) on CPUs newer than it knows; both
# programs share that OpenBLAS, so export OPENBLAS_CORETYPE=SkylakeX (AVX-512)
# or Haswell (AVX2) there to compare the real kernels.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
rounds=5
steps=15
csv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --csv) csv=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "compare_encoder.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCH=ON \
  -DXGRAD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target encoder_step torch_encoder_step >/dev/null

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for threads in 1 2; do
  export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
  round=0
  while [ "$round" -lt "$rounds" ]; do
    for program in torch_encoder_step encoder_step; do
      "$build/bench/$program" --threads "$threads" --steps "$steps" >>"$results"
    done
    round=$((round + 1))
  done
done

# The median of each (impl, threads) over the rounds, then the ratios.
awk '
  function value(key,   i, kv) {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] }
  }
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { core = value("blas_core"); key = value("impl") " " value("threads"); ms[key] = ms[key] " " value("step_ms"); rss[key] = rss[key] " " value("peak_rss_mib"); allocs[key] = allocs[key] " " value("allocs_per_step") }
  END {
    printf "OpenBLAS kernels: %s\n", core > "/dev/stderr"
    printf "%-9s %-7s %12s %12s\n", "impl", "threads", "step_ms", "peak_rss_mib" > "/dev/stderr"
    for (t = 1; t <= 2; t++) {
      x = "xgrad " t; l = "libtorch " t
      printf "%-9s %-7d %12.1f %12.1f\n", "libtorch", t, median(ms[l]), median(rss[l]) > "/dev/stderr"
      printf "%-9s %-7d %12.1f %12.1f\n", "xgrad", t, median(ms[x]), median(rss[x]) > "/dev/stderr"
      printf "xgrad / libtorch at %d thread(s): step %.2f, peak RSS %.2f; xgrad allocations per step %.1f\n", t,
        median(ms[x]) / median(ms[l]), median(rss[x]) / median(rss[l]), median(allocs[x]) > "/dev/stderr"
      # compare.sh columns: size,variant,threads,d_model,d_ff,tokens,libtorch_ms,xgrad_ms,limit_ms,
      # xgrad_fwd_ms,limit_fwd_ms,libtorch_fwd_ms,xgrad_rss,libtorch_rss
      printf "encoder,relu,%d,256,1024,2048,%.1f,%.1f,,,,,%.1f,%.1f\n", t, median(ms[l]),
        median(ms[x]), median(rss[x]), median(rss[l])
    }
  }' "$results" >"$results.csv"
if [ -n "$csv" ]; then
  grep -v '^encoder,' "$csv" >"$csv.new" || true
  cat "$results.csv" >>"$csv.new"
  mv "$csv.new" "$csv"
fi
rm -f "$results.csv"
