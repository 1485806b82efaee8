#!/usr/bin/env bash
# Install what building, testing and the demo need, from Debian's packages; only what is missing.
# Sourced by tests/run.sh and tests/demo.sh. Uses sudo when not root.
cas_deps_packages=(
  gcc make cmake pkg-config
  libcurl4-openssl-dev libssl-dev libcjson-dev libcmocka-dev
  nginx-light openssl curl ca-certificates coreutils findutils procps iproute2 diffutils
  strace bsdutils util-linux jq passwd dpkg-dev file man-db systemd valgrind
)

cas_deps_install() {
  local missing=() p
  command -v dpkg-query >/dev/null || return 0 # not Debian: the build says what is missing
  for p in "${cas_deps_packages[@]}"; do
    # nginx-light is one of several packages that provide /usr/sbin/nginx; any will do.
    [ "$p" = nginx-light ] && [ -x /usr/sbin/nginx ] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; return 1; }
    sudo="sudo"
  fi
  echo "Installing: ${missing[*]}"
  # Keep the nginx package from starting a system-wide server on port 80: the tests and the
  # demo run their own nginx on a free loopback port. policy-rc.d is Debian's switch for that.
  local prc=/usr/sbin/policy-rc.d made_prc=0
  if [ ! -e "$prc" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$prc" >/dev/null && $sudo chmod 755 "$prc" && made_prc=1
  fi
  local rc=0
  $sudo apt-get update -qq || rc=$?
  [ $rc -eq 0 ] && { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?; }
  [ $made_prc -eq 1 ] && $sudo rm -f "$prc"
  return $rc
}
