#!/bin/sh
# Every comparison in the README's Performance section, in one run: the FFN
# rows against libtorch and their GEMMs alone (compare.sh), the Transformer
# encoder layer against libtorch (compare_encoder.sh), the two examples against
# PyTorch from Python (compare_python.sh), then the chart of the first two.
#
#   bench/compare_all.sh                  # 3 rounds of each; ~30 minutes on 2 cores
#   OPENBLAS_CORETYPE=Haswell bench/compare_all.sh --rounds 1
#
# Writes docs/performance.csv, docs/performance_python.csv and
# docs/performance.svg and prints the three Markdown tables. OPENBLAS_CORETYPE
# (Haswell: AVX2 kernels, the default on a CPU with AVX2; SkylakeX: AVX-512)
# holds for every program, xgrad's, libtorch's and PyTorch's alike (they share
# OpenBLAS).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "compare_all.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/openblas_coretype.sh
. "$root/bench/openblas_coretype.sh"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(date -u '+%Y-%m-%d %H:%M UTC')"
"$root/bench/compare.sh" --rounds "$rounds" --csv "$root/docs/performance.csv"
"$root/bench/compare_encoder.sh" --rounds "$rounds" --csv "$root/docs/performance.csv"
"$root/bench/compare_python.sh" --rounds "$rounds" --csv "$root/docs/performance_python.csv"
cmake --build "$build" -j2 --target perf_chart >/dev/null
"$build/bench/perf_chart" "$root/docs/performance.csv" "$root/docs/performance.svg"
