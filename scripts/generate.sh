#!/usr/bin/env bash
# Regenerates every generated file from the code that owns it. CI fails when one is stale.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo run -q -p clockify-operator -- crd > crds/clockify-addons.io_clockifyaddons.yaml
for addon in api-studio universal-webhook reference; do
    cargo run -q -p clockify-addons -- sql-contract "$addon" --write
done

# Replace a marked block in a Markdown file with a command's output.
splice() {
    local file=$1 marker=$2; shift 2
    local out; out=$("$@")
    python3 - "$file" "$marker" "$out" <<'PY'
import sys, re
path, marker, body = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
begin, end = f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->"
new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{body}\n{end}", text, flags=re.S)
if new == text and begin not in text:
    sys.exit(f"{path}: no {begin} marker")
open(path, "w").write(new)
PY
}

splice README.md config-table cargo run -q -p clockify-addons -- config-table
splice docs/operator.md tier-table cargo run -q -p clockify-operator -- tiers
echo "generated files are up to date"
