#!/usr/bin/env bash
# Set up and run every test: install missing Debian packages, build, run CTest (cmocka unit tests
# and the integration tests against a real nginx on loopback).
#   bash tests/run.sh [--sanitize] [--werror] [--build-dir DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build="$top/build"
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) opts+=(-DCAS_SANITIZE=ON); build="$top/build-asan" ;;
    --werror) opts+=(-DCAS_WERROR=ON) ;;
    --build-dir) build="$2"; shift ;;
    *) echo "usage: bash tests/run.sh [--sanitize] [--werror] [--build-dir DIR]" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=tests/deps.sh
. "$here/deps.sh"
cas_deps_install
cmake -S "$top" -B "$build" "${opts[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2
