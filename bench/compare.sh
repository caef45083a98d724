#!/bin/sh
# Builds the benchmarks and prints, for each row, the FFN training step in
# libtorch, in xgrad, its GEMMs alone (the limit) and the limit plus the step's
# elementwise work as bare passes (the floor, step_floor.cpp: at n threads its
# passes credited a perfect split, and split for real), run side by side, with
# the ratios issue 8 and issue 23 set targets for.
#
#   bench/compare.sh                       # the default rows below
#   bench/compare.sh --rows "medium:relu:1 medium:relu:2" --rounds 3
#   bench/compare.sh --csv docs/performance.csv --svg docs/performance.svg
#
# Each program prints medians over --steps steps; with --rounds R the four
# programs run in turn R times (the tiny row, which takes seconds, 5 R times)
# and the median of their medians is reported. A ratio is the median of each
# round's ratio, whose two runs were seconds apart: a VM's slow spell then
# slows both sides of a ratio rather than one.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
# Small at every variant (issue 23's target); medium and large at the ones the README shows.
small="small:relu:1 small:relu:2 small:gelu:1 small:gelu:2 small:silu:1 small:silu:2 small:swiglu:1 small:swiglu:2 small:geglu:1 small:geglu:2 small:reglu:1 small:reglu:2"
rows="tiny:relu:1 $small medium:relu:1 medium:relu:2 medium:gelu:2 medium:swiglu:1 medium:swiglu:2 medium:geglu:2 large:relu:1 large:relu:2 large:swiglu:1 large:swiglu:2"
rounds=1
csv=""
svg=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --csv) csv=$2; shift 2 ;;
    --svg) svg=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCH=ON \
  -DXGRAD_BUILD_TESTS=OFF >/dev/null
targets="ffn_step gemm_limit step_floor"
# torch_step exists when CMake found libtorch (libtorch-dev); any generator lists it.
if cmake --build "$build" --target help 2>/dev/null | grep -qw torch_step; then
  targets="$targets torch_step"
fi
if [ -n "$svg" ]; then targets="$targets perf_chart"; fi
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $targets >/dev/null

steps_for() {
  case $1 in
    tiny) echo "--steps 2000 --warmup 200" ;;
    small) echo "--steps 100 --warmup 10" ;;
    medium) echo "--steps 10 --warmup 3" ;;  # a gated step grows the object pool once, in its third
    *) echo "--steps 4 --warmup 3" ;;  # the first steps fill the caches and Adam state
  esac
}

rounds_for() {
  case $1 in
    tiny) echo $((5 * rounds)) ;;
    *) echo "$rounds" ;;
  esac
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for row in $rows; do
  size=${row%%:*}; rest=${row#*:}; variant=${rest%%:*}; threads=${rest#*:}
  export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
  round=0
  row_rounds=$(rounds_for "$size")
  while [ "$round" -lt "$row_rounds" ]; do
    for program in torch_step ffn_step gemm_limit step_floor; do
      [ -x "$build/bench/$program" ] || continue
      # shellcheck disable=SC2046
      "$build/bench/$program" --size "$size" --variant "$variant" --threads "$threads" \
        $(steps_for "$size") >>"$results"
    done
    round=$((round + 1))
  done
done

# One table row per (size, variant, threads): medians over rounds of each
# value, and of each round's ratio (every program adds one value per round, so
# the i-th values of two programs come from the same round).
awk -v csv="$csv" '
function median(v, n,   i, j, t) {
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
  return n == 0 ? "" : (n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2)
}
function med(key,   n, v) { n = split(vals[key], v, " "); return median(v, n) }
function ratio(a, b,   na, nb, va, vb, r, i, m) {
  na = split(vals[a], va, " "); nb = split(vals[b], vb, " ")
  m = 0
  for (i = 1; i <= na && i <= nb; i++) if (vb[i] > 0) r[++m] = va[i] / vb[i]
  return m == 0 ? "n/a" : sprintf("%.2f", median(r, m))
}
{
  delete f
  for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  row = f["size"] " " f["variant"] " " f["threads"]
  if (!(row in seen)) { seen[row] = 1; order[++nrows] = row; dims[row] = f["d_model"] "/" f["d_ff"] "/" f["tokens"] }
  for (k in f) if (k ~ /_ms$|allocs|rss/) vals[row SUBSEP f["impl"] SUBSEP k] = vals[row SUBSEP f["impl"] SUBSEP k] " " f[k]
}
function ms(x) { return x == "" ? "n/a" : (x < 0.1 ? sprintf("%.4f", x) : x < 10 ? sprintf("%.3f", x) : sprintf("%.1f", x)) }
END {
  print "| size (d_model/d_ff/tokens) | variant | threads | libtorch step ms | xgrad step ms | GEMMs alone ms | xgrad / limit | xgrad / libtorch | libtorch / limit | floor ms | floor / limit | xgrad / floor | split floor / limit | xgrad fwd ms | fwd limit ms | xgrad fwd / limit | fwd floor / limit | xgrad allocs/step | peak RSS MiB xgrad / libtorch |"
  print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  if (csv != "") print "size,variant,threads,d_model,d_ff,tokens,libtorch_ms,xgrad_ms,limit_ms,xgrad_fwd_ms,limit_fwd_ms,libtorch_fwd_ms,xgrad_rss,libtorch_rss,floor_ms,floor_fwd_ms,xgrad_limit,libtorch_limit,split_floor_ms,split_floor_fwd_ms" > csv
  for (r = 1; r <= nrows; r++) {
    row = order[r]; split(row, p, " ")
    t = med(row SUBSEP "libtorch" SUBSEP "step_ms"); x = med(row SUBSEP "xgrad" SUBSEP "step_ms"); l = med(row SUBSEP "limit" SUBSEP "step_ms")
    xf = med(row SUBSEP "xgrad" SUBSEP "forward_ms"); lf = med(row SUBSEP "limit" SUBSEP "forward_ms"); tf = med(row SUBSEP "libtorch" SUBSEP "forward_ms")
    fl = med(row SUBSEP "floor" SUBSEP "step_ms"); ff = med(row SUBSEP "floor" SUBSEP "forward_ms")
    sl = med(row SUBSEP "floor" SUBSEP "split_step_ms"); sf = med(row SUBSEP "floor" SUBSEP "split_forward_ms")
    xa = med(row SUBSEP "xgrad" SUBSEP "allocs_per_step")
    xr = med(row SUBSEP "xgrad" SUBSEP "peak_rss_mib"); tr = med(row SUBSEP "libtorch" SUBSEP "peak_rss_mib")
    X = row SUBSEP "xgrad" SUBSEP; L = row SUBSEP "limit" SUBSEP; T = row SUBSEP "libtorch" SUBSEP; F = row SUBSEP "floor" SUBSEP
    printf "| %s %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", p[1], dims[row], p[2], p[3], ms(t), ms(x), ms(l), ratio(X "step_ms", L "step_ms"), ratio(X "step_ms", T "step_ms"), ratio(T "step_ms", L "step_ms"), ms(fl), ratio(F "step_ms", L "step_ms"), ratio(X "step_ms", F "step_ms"), ratio(F "split_step_ms", L "step_ms"), ms(xf), ms(lf), ratio(X "forward_ms", L "forward_ms"), ratio(F "forward_ms", L "forward_ms"), xa, xr, (tr == "" ? "n/a" : tr)
    if (csv != "") {
      xl = ratio(X "step_ms", L "step_ms"); tl = ratio(T "step_ms", L "step_ms")
      split(dims[row], d, "/")
      printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", p[1], p[2], p[3], d[1], d[2], d[3], t, x, l, xf, lf, tf, xr, tr, fl, ff, (xl == "n/a" ? "" : xl), (tl == "n/a" ? "" : tl), sl, sf >> csv
    }
  }
}' "$results"

if [ -n "$svg" ]; then
  [ -n "$csv" ] || { echo "compare.sh: --svg needs --csv" >&2; exit 2; }
  "$build/bench/perf_chart" "$csv" "$svg"
fi
