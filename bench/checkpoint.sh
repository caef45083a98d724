#!/bin/sh
# Builds checkpoint_step and runs its two modes side by side: --plain and
# --checkpoint alternate (which goes first alternates too), --rounds times,
# each run its own process so that each peak RSS is its mode's own. Prints the
# medians over rounds, the peak RSS reduction and the step time ratio against
# the targets (RSS at least 40 % lower, time at most 1.4x), and checks that
# both modes end on the same loss, to the bit (checkpointing changes no value).
#
#   bench/checkpoint.sh                      # 8 blocks, 512/2048/2048, 2 threads, 3 rounds
#   bench/checkpoint.sh --rounds 5 --threads 1 --steps 10
#
# Exits 1 when the losses differ; the targets are reported, not enforced.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
rounds=3
threads=2
steps=8
warmup=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "checkpoint.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCH=ON \
  -DXGRAD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target checkpoint_step >/dev/null

# One thread pool size for OpenBLAS and xgrad (docs: PERFORMANCE.md).
export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
round=0
while [ "$round" -lt "$rounds" ]; do
  # Neither mode always runs first, on a cooler machine or a warmer page cache.
  if [ $((round % 2)) -eq 0 ]; then order="plain checkpoint"; else order="checkpoint plain"; fi
  for mode in $order; do
    "$build/bench/checkpoint_step" "--$mode" --threads "$threads" --steps "$steps" \
      --warmup "$warmup" | tee -a "$results"
  done
  round=$((round + 1))
done

# Both modes must have reported: a run that failed leaves no line to take a median of.
for mode in plain checkpoint; do
  grep -q "mode=$mode " "$results" || { echo "checkpoint.sh: no result for --$mode" >&2; exit 1; }
done

awk -v rss_target=40 -v time_target=1.4 '
function med(key,   n, i, j, t, v) {
  n = split(vals[key], v, " ")
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
  return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
{
  delete f
  for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  m = f["mode"]
  vals[m SUBSEP "step_ms"] = vals[m SUBSEP "step_ms"] " " f["step_ms"]
  vals[m SUBSEP "rss"] = vals[m SUBSEP "rss"] " " f["peak_rss_mib"]
  state = f["state_mib"]
  if (!(m in loss)) loss[m] = f["loss"]
  else if (loss[m] != f["loss"]) loss[m] = "varies"
}
END {
  pt = med("plain" SUBSEP "step_ms"); ct = med("checkpoint" SUBSEP "step_ms")
  pr = med("plain" SUBSEP "rss"); cr = med("checkpoint" SUBSEP "rss")
  print ""
  print "| mode | step ms | peak RSS MiB | RSS above the state MiB |"
  print "|---|---|---|---|"
  printf "| plain | %.1f | %.1f | %.1f |\n", pt, pr, pr - state
  printf "| checkpoint | %.1f | %.1f | %.1f |\n", ct, cr, cr - state
  reduction = 100 * (1 - cr / pr); ratio = ct / pt
  above = (pr > state) ? 100 * (1 - (cr - state) / (pr - state)) : 0
  printf "peak RSS reduction: %.1f %% (target >= %d %%: %s)\n", reduction, rss_target, (reduction >= rss_target ? "met" : "missed")
  printf "  of the RSS above parameters, gradients and Adam state (%.1f MiB): %.1f %%\n", state, above
  printf "step time ratio checkpoint / plain: %.2f (target <= %.1f: %s)\n", ratio, time_target, (ratio <= time_target ? "met" : "missed")
  same = (loss["plain"] == loss["checkpoint"] && loss["plain"] != "varies")
  printf "last loss: plain %s, checkpoint %s (%s)\n", loss["plain"], loss["checkpoint"], (same ? "identical" : "DIFFERENT")
  exit (same ? 0 : 1)
}' "$results"
