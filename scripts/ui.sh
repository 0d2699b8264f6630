#!/usr/bin/env bash
# Builds the add-ons' console (services/addon-core/ui/app, TypeScript + Preact) into
# services/addon-core/ui/dist, which is committed and compiled into the binary: installs the
# pinned packages (npm ci: esbuild, TypeScript, Preact, axe-core for the page tests), type-checks
# and bundles. scripts/generate.sh runs it; CI fails when dist/ is stale. --deps: install only.
set -euo pipefail
cd "$(dirname "$0")/../services/addon-core/ui/app"
if ! command -v npm >/dev/null; then
    echo "npm is missing: install Node.js 18 or newer (apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -x node_modules/.bin/esbuild ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
# --deps: only the packages (scripts/test.sh, before it checks that dist/ is current).
[ "${1:-}" = "--deps" ] && exit 0
node_modules/.bin/tsc --noEmit -p .
node build.mjs
