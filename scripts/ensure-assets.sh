#!/usr/bin/env bash
# Install the dashboard's front-end libraries from the npm registry (package-lock.json pins them);
# reuse node_modules while the lock file is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "==> npm is not installed: the dashboard's charts and styles will be missing (install Node.js and npm)" >&2
  exit 0
fi
echo "==> installing the dashboard's front-end libraries into node_modules"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
echo "$want" > "$stamp"
