#!/usr/bin/env bash
# Installs everything callback needs to build and test, from Debian 12's own packages.
# Boost 1.81 is used instead of the 1.74 default because 1.74 has no Boost.JSON; the two
# cannot be installed side by side, so nothing here may pull in libboost-dev (1.74).
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-system1.81-dev
  libpistache-dev
  libsqlitecpp-dev libsqlite3-dev sqlite3
  libssl-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all build dependencies are installed"
fi
