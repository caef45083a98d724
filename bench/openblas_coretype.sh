# Sourced by the comparison scripts. OpenBLAS 0.3.21 does not recognise newer
# CPUs and falls back to its generic SSE3 kernels (Prescott) unless told the
# core type. xgrad, libtorch and PyTorch all get their GEMMs from the same
# Debian OpenBLAS, so one setting keeps the comparison fair. A value the caller
# set wins, and a CPU without AVX2 could not run the Haswell kernels.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=Haswell
fi
