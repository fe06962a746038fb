#!/usr/bin/env bash
# Installs what building and testing clipsafety needs on Debian/Ubuntu, when it is missing:
# the C libraries (libzip, HDF5, OpenBLAS, zstd, snappy, zlib) with pkg-config, and python3 for the fetch step.
# The Swift 6 toolchain itself is a prerequisite (https://www.swift.org/install/linux/).
set -euo pipefail

packages=(pkg-config libzip-dev libhdf5-dev libopenblas-dev libzstd-dev libsnappy-dev zlib1g-dev python3)
bash "$(dirname "$0")/apt-install.sh" "${packages[@]}"
if ! command -v swift >/dev/null 2>&1; then
  echo "install-deps: no 'swift' on PATH; install a Swift 6 toolchain first (https://www.swift.org/install/linux/)" >&2
  exit 1
fi
