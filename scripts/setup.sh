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
  # The PostgreSQL backend (several callbackd nodes): libpq, and the server its tests start
  # on 127.0.0.1 in a folder of their own (tests/support/postgres.sh).
  libpq-dev postgresql
  libssl-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev
  # The programs' allocator (tcmalloc_minimal; cmake/CallbackOptions.cmake).
  libgoogle-perftools-dev
  # The e-mail trigger: MIME headers (GMime); its tests read a real IMAP server (dovecot)
  # and take its replies with a real SMTP server (aiosmtpd).
  libgmime-3.0-dev dovecot-imapd python3-aiosmtpd
  # The dialplan's announcements, spoken at build time (scripts/make_prompts.sh).
  espeak-ng sox
  # Tests and benchmarks: the web page in a real browser (tests/browser: chromium driven by
  # node through playwright-core; CJK glyphs for its screenshots) and HTTP load with wrk.
  chromium fonts-wqy-microhei wrk
  # The Python bindings (bindings/python: pybind11) and their tests (pytest).
  python3-dev pybind11-dev python3-pytest
  # Fuzzing (scripts/fuzz.sh): clang 14 with libFuzzer and the sanitizers' runtimes.
  clang libclang-rt-14-dev
)
# Debian 12's nodejs (18) is enough for tests/browser (playwright-core pinned to a release
# that supports it); a newer node already on the machine is used as it is.
if ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

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
  # dovecot is only for the e-mail trigger's tests, which start their own on 127.0.0.1: the
  # package's system service (IMAP on every address) is not wanted on this machine.
  if [[ " ${missing[*]} " == *" dovecot-imapd "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
    echo "setup: dovecot's system service, if one runs here, is stopped and disabled (the tests start their own)"
  fi
  # The same for PostgreSQL's: a deployment configures its own (README, "Several machines").
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
else
  echo "setup: all build and test dependencies are installed"
fi
