#!/bin/sh
# The web page's real-browser test (web_flow.test.mjs). Exit code = the test's result.
# Environment: CALLBACK_BIN_DIR, CALLBACK_ARTIFACTS_DIR, CALLBACK_CHROMIUM (see the test).
# Needs node >= 18 (Debian 12's nodejs) and npm; installs playwright-core from
# package-lock.json with `npm ci` when node_modules is missing or does not match it.
set -e
cd "$(dirname "$0")"
if ! node -e '
  const lock = require("./package-lock.json");
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === "") continue;
    if (require("./" + where + "/package.json").version !== entry.version) process.exit(1);
  }' 2>/dev/null; then
  npm ci --no-audit --no-fund
fi
exec node --test web_flow.test.mjs
