#!/usr/bin/env bash
# Regenerates the console's screenshots in docs/ui/ (docs/ui.md walks through them): the
# Chromium test of the console, saving a screenshot of every section as it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ui.sh
UI_SCREENSHOTS="$PWD/docs/ui" cargo test -p api-studio --test console -- --nocapture
