#!/bin/sh
# The web page's real-browser test (web_flow.test.mjs). Exit code = the test's result.
# Environment: CALLBACK_BIN_DIR, CALLBACK_ARTIFACTS_DIR, CALLBACK_CHROMIUM (see the test).
set -e
cd "$(dirname "$0")"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
exec node --test web_flow.test.mjs
