#!/usr/bin/env bash
# Installs the Debian 12 packages xgrad needs to build and test, and nothing else.
# Idempotent: does nothing when every package is already installed. Uses sudo when not root.
#
#   scripts/install-deps.sh         # everything
#   scripts/install-deps.sh build   # what the builds need
#   scripts/install-deps.sh test    # what only the tests run (PyTorch, Chromium, dot)
#
# The groups exist so that scripts/test.sh can fetch the test-only packages,
# the bulk of the download on a fresh machine, while the first build compiles.
set -euo pipefail

build_packages=(
    cmake g++ make ninja-build ccache
    libxtensor-dev libxtensor-blas-dev libopenblas-dev libfmt-dev
    nlohmann-json3-dev libzip-dev  # safetensors headers and torch.save zip files
    libcli11-dev  # examples: command-line flags
    libopenmpi-dev openmpi-bin  # optional distributed/ (data-parallel training over MPI)
    clang libclang-rt-14-dev  # CI: the sanitizer stage and libFuzzer (tests/fuzz/) use clang and its runtimes
    doctest-dev python3 python3-numpy  # tests (serialize tests read files back with numpy)
)
test_packages=(
    python3-torch  # tests only: PyTorch 1.13 reads the .pt files xgrad writes, as users' will
    chromium graphviz  # tests only: the HTML report in a real browser, graph pictures by dot
)
case "${1:-all}" in
    all) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
    build) packages=("${build_packages[@]}") ;;
    test) packages=("${test_packages[@]}") ;;
    *)
        echo "install-deps: unknown group '$1' (expected build, test or nothing for all)" >&2
        exit 2
        ;;
esac

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
install=("${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}")

echo "install-deps: installing ${missing[*]}"
# Refresh the package lists only when they are missing or too old to install from.
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || ! "${install[@]}"; then
    "${sudo[@]}" apt-get update
    "${install[@]}"
fi
