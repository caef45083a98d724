#!/bin/sh
# Runs examples/train_ffn and examples/train_tokens against the same models, data, steps and
# threads in PyTorch eager from Python (bench/torch_train_ffn.py and torch_train_tokens.py under
# /usr/bin/python3, Debian's python3-torch 1.13) and prints a Markdown table: the median train
# step of each, the whole process's wall time (start-up and `import torch` included) and the
# ratios xgrad / PyTorch.
#
#   bench/compare_python.sh                                 # every row, 1 and 2 threads, 5 rounds
#   bench/compare_python.sh --rounds 1 --threads 1 --rows "train_ffn:relu"
#   bench/compare_python.sh --rows "train_ffn:gelu train_ffn:relu:128:512:4" --csv python.csv
#
# A row is train_tokens or train_ffn:VARIANT[:D_MODEL:D_FF:BLOCKS] (the example's defaults
# otherwise). Each run is a whole training with --quiet; both programs end with one key=value
# line (xgrad's with --bench-line). For each row and thread count the two programs run in turn,
# R rounds, and the table shows medians over the rounds. --build DIR is the build folder
# (default build/); train_ffn and train_tokens are built there only if missing. PYTHON overrides
# /usr/bin/python3.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
python=${PYTHON:-/usr/bin/python3}
# The default size of both examples (the only one the README runs), for ReLU and for SwiGLU,
# which the example's header suggests trying.
rows="train_ffn:relu train_ffn:swiglu train_tokens"
rounds=5
threads_list="1 2"
csv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --csv) csv=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "compare_python.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/openblas_coretype.sh
. "$root/bench/openblas_coretype.sh"

bin=$build/examples
if [ ! -x "$bin/train_ffn" ] || [ ! -x "$bin/train_tokens" ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$build" -j2 --target train_ffn train_tokens >/dev/null
fi
for example in train_ffn train_tokens; do
  if ! "$bin/$example" --help 2>&1 | grep -q -- '--bench-line'; then
    echo "compare_python.sh: $bin/$example has no --bench-line flag (built before it was added);" \
      "rebuild it: cmake --build $build --target train_ffn train_tokens" >&2
    exit 2
  fi
done
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "compare_python.sh: $python cannot import torch (apt-get install -y python3-torch)" >&2
  exit 2
fi

results=$(mktemp)
out=$(mktemp)
trap 'rm -f "$results" "$out"' EXIT

# run ROW CMD...: runs one whole training and appends its last line (key=value), the row's name
# and the process's wall time to $results.
run() {
  row=$1; shift
  start=$(date +%s.%N)
  if ! "$@" >"$out" 2>&1; then
    echo "compare_python.sh: failed: $*" >&2
    cat "$out" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  line=$(tail -n 1 "$out")
  case $line in
    impl=*) ;;
    *) echo "compare_python.sh: no key=value last line from: $*" >&2; cat "$out" >&2; exit 1 ;;
  esac
  echo "$line row=$row wall_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')" \
    >>"$results"
}

for row in $rows; do
  example=${row%%:*}
  case $row in
    train_ffn:*)
      # shellcheck disable=SC2046  # the row's fields become $1...$4
      set -- $(echo "${row#*:}" | tr ':' ' ')
      args="--variant $1"
      [ $# -ge 4 ] && args="$args --d-model $2 --d-ff $3 --blocks $4"
      script=torch_train_ffn.py ;;
    train_tokens) args=""; script=torch_train_tokens.py ;;
    *) echo "compare_python.sh: unknown row $row" >&2; exit 2 ;;
  esac
  for threads in $threads_list; do
    # train_tokens has no --threads flag: xgrad takes OpenBLAS's count, which these set.
    export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
    xgrad_threads=""
    [ "$example" = train_ffn ] && xgrad_threads="--threads $threads"
    round=1
    while [ "$round" -le "$rounds" ]; do
      echo "$row, $threads thread(s), round $round/$rounds" >&2
      # shellcheck disable=SC2086
      run "$row" "$bin/$example" $args $xgrad_threads --quiet --bench-line
      # shellcheck disable=SC2086
      run "$row" "$python" "$root/bench/$script" $args --threads "$threads" --quiet
      round=$((round + 1))
    done
  done
done

echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, medians over $rounds round(s); ratios are" \
  "xgrad / PyTorch; whole run = the process's wall time, start-up included"
echo
# One table row per (row, threads): medians over rounds of each value.
awk -v csv="$csv" '
function med(key,   n, i, j, t, v) {
  n = split(vals[key], v, " ")
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
  return n == 0 ? "" : (n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2)
}
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "n/a" : sprintf("%.2f", a / b) }
function num(x, fmt) { return x == "" ? "n/a" : sprintf(fmt, x) }
{
  delete f
  for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  key = f["row"] " " f["threads"]
  if (!(key in seen)) {
    seen[key] = 1; order[++nkeys] = key; example[key] = f["example"]; threads[key] = f["threads"]
    if (f["example"] == "train_ffn")
      size[key] = f["variant"] " " f["d_model"] "/" f["d_ff"] " x" f["blocks"] ", batch " f["batch"]
    else
      size[key] = "swiglu " f["d_model"] "/" f["d_ff"] ", vocab " f["vocab"] ", batch " f["batch"]
  }
  impl = f["impl"] == "xgrad" ? "xgrad" : "torch"
  steps[key SUBSEP impl] = f["steps"]
  for (k in f) if (k ~ /_ms$|_s$/) vals[key SUBSEP impl SUBSEP k] = vals[key SUBSEP impl SUBSEP k] " " f[k]
}
END {
  print "| example | size (d_model/d_ff) | threads | xgrad step ms | PyTorch step ms | ratio | xgrad whole run s | PyTorch whole run s | ratio |"
  print "|---|---|---|---|---|---|---|---|---|"
  if (csv != "") print "example,size,threads,steps,xgrad_step_ms,torch_step_ms,step_ratio,xgrad_train_s,torch_train_s,xgrad_wall_s,torch_wall_s,wall_ratio" > csv
  for (r = 1; r <= nkeys; r++) {
    key = order[r]
    if (steps[key SUBSEP "xgrad"] != steps[key SUBSEP "torch"])  # a sign the two runs differ
      printf "compare_python.sh: %s, %s thread(s): xgrad ran %s steps, PyTorch %s\n", example[key],
        threads[key], steps[key SUBSEP "xgrad"], steps[key SUBSEP "torch"] > "/dev/stderr"
    xs = med(key SUBSEP "xgrad" SUBSEP "step_ms"); ts = med(key SUBSEP "torch" SUBSEP "step_ms")
    xt = med(key SUBSEP "xgrad" SUBSEP "train_s"); tt = med(key SUBSEP "torch" SUBSEP "train_s")
    xw = med(key SUBSEP "xgrad" SUBSEP "wall_s"); tw = med(key SUBSEP "torch" SUBSEP "wall_s")
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", example[key], size[key], threads[key],
      num(xs, "%.3f"), num(ts, "%.3f"), ratio(xs, ts), num(xw, "%.2f"), num(tw, "%.2f"), ratio(xw, tw)
    if (csv != "") printf "%s,\"%s\",%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", example[key], size[key], threads[key],
      steps[key SUBSEP "torch"], xs, ts, ratio(xs, ts), xt, tt, xw, tw, ratio(xw, tw) >> csv
  }
}' "$results"
