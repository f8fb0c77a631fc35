#!/usr/bin/env bash
# setup.sh: installs the Debian packages hkt builds with (CMake, g++, Catch2,
# nlohmann/json, CLI11, OpenBLAS, zlib, Boost.Context for the block emulator), clang-format
# (the format check among the tests), matplotlib (the experiment's plots) and the
# Fashion-MNIST data set (Debian's dataset-fashion-mnist: real images in
# /usr/share/datasets/fashion-mnist). Idempotent: asks apt only for what is missing, so a
# second run does nothing. The CUDA toolkit is optional and not installed here: with
# nvcc on PATH the CUDA backend is built, without it the stubs are.
set -euo pipefail

packages=(cmake g++ make catch2 nlohmann-json3-dev libcli11-dev libopenblas-dev zlib1g-dev libboost-context-dev clang-format python3-matplotlib dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all build dependencies are installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
