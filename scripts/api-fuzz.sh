#!/usr/bin/env bash
# A property-based run of schemathesis (PyPI) against each add-on's own /openapi.json: it
# generates requests from the document (valid and invalid parameters and bodies, then
# stateful sequences that follow its links: create a flow, read it, change it, delete it) and
# checks every answer: no 5xx, a status the document names, the content type and the body
# schema it states. The add-ons run as `clockify-addons dev` does (SQLite, signature
# verification on), installed in a workspace with real signed tokens, against a local stand-in
# for Clockify's API, with a flow and a delivery stored first.
#
#   ./scripts/api-fuzz.sh                 # every add-on
#   ./scripts/api-fuzz.sh api-studio      # one
#   API_FUZZ_EXAMPLES=200 API_FUZZ_SEED=random ./scripts/api-fuzz.sh
#
# Exit code 0 when every add-on passes; the failures schemathesis found otherwise (each with a
# curl command that reproduces it).
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${API_FUZZ_EXAMPLES:-25}
SEED=${API_FUZZ_SEED:-20261205}
VENV=$(realpath -m "${API_FUZZ_VENV:-target/api-fuzz-venv}")
SCHEMATHESIS_VERSION=4.32.5
ADDONS=("$@")
[ ${#ADDONS[@]} -gt 0 ] || ADDONS=(api-studio universal-webhook reference)

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build -q -p clockify-addons --locked
BIN=$PWD/target/debug/clockify-addons

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Clockify's API, stood in for: every call answers 200 with JSON naming what was asked.
cat > "$WORK/clockify.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Clockify(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Clockify's API: no connection closed under a pooled client
    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"id": "stand-in", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Clockify).serve_forever()
EOF
CLOCKIFY_PORT=$(free_port)
python3 "$WORK/clockify.py" "$CLOCKIFY_PORT" &
PIDS+=($!)

WS=65a1b2c3d4e5f60718293a4b
failed=()
for addon in "${ADDONS[@]}"; do
  port=$(free_port)
  data="$WORK/$addon"
  sign() { "$BIN" sign --data-dir "$data" --addon "$addon" --workspace $WS --kind "$1" --api-url "http://127.0.0.1:$CLOCKIFY_PORT/api"; }
  CLOCKIFY_API_ALLOWED_HOSTS="http://127.0.0.1:$CLOCKIFY_PORT" RUST_LOG=warn \
    "$BIN" dev --data-dir "$data" --addon "$addon" --port "$port" > "$WORK/$addon.log" 2>&1 &
  PIDS+=($!)
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -sf "$base/ready" > /dev/null && break; sleep 0.1; done
  curl -sf "$base/ready" > /dev/null || { echo "$addon did not start:"; cat "$WORK/$addon.log"; exit 1; }

  LIFECYCLE=$(sign lifecycle)
  WEBHOOK=$(sign webhook)
  USER_TOKEN=$(sign user)
  webhook_path=/webhooks/clockify
  [ "$addon" = reference ] && webhook_path=/webhooks/time/new
  json() { curl -sf -H 'Content-Type: application/json' "$@"; }
  json -X POST "$base/lifecycle/installed" -H "X-Addon-Lifecycle-Token: $LIFECYCLE" -d '{
    "addonId":"dev","authToken":"'"$(sign installation)"'","workspaceId":"'$WS'","asUser":"u1",
    "apiUrl":"http://127.0.0.1:'"$CLOCKIFY_PORT"'/api",
    "webhooks":[{"path":"'$webhook_path'","webhookType":"ADDON","authToken":"'"$WEBHOOK"'"}]}' > /dev/null
  # Something to read, change and run again: a flow and a delivery it ran on.
  if [ "$addon" != reference ]; then
    json -X POST "$base/ui/flows" -H "Authorization: Bearer $USER_TOKEN" -d '{
      "name":"Tag billable entries","triggerEvents":["NEW_TIME_ENTRY"],
      "conditions":[{"path":"$.billable","op":"==","value":true}],
      "actions":[{"method":"PUT","path":"/v1/workspaces/{{workspaceId}}/time-entries/{{$.id}}",
                  "body":{"tagIds":["t1"],"description":"{{$.description}}"}}]}' > /dev/null
  fi
  json -X POST "$base$webhook_path" -H "Clockify-Signature: $WEBHOOK" \
    -H 'Clockify-Webhook-Event-Type: NEW_TIME_ENTRY' \
    -d '{"id":"te1","workspaceId":"'$WS'","billable":true,"description":"Call"}' > /dev/null

  echo "== $addon: schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES examples per operation, seed $SEED"
  seed_args=(--seed "$SEED")
  [ "$SEED" = random ] && seed_args=()
  # First every route but the lifecycle ones, with the user token (the console's routes) and
  # a registered webhook token (Clockify's deliveries); then the lifecycle routes with a
  # lifecycle token (last: a DELETED it manages to send revokes every token issued before).
  run() {
    local name=$1; shift
    # From the scratch directory: schemathesis keeps its cache where it runs.
    if ! (cd "$WORK" && "$VENV/bin/schemathesis" run "$base/openapi.json" "$@" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples "$EXAMPLES" "${seed_args[@]}" --workers 1 \
        --suppress-health-check all ${API_FUZZ_WARNINGS:+--warnings $API_FUZZ_WARNINGS} --no-color \
        > "$WORK/$addon.$name.out" 2>&1); then
      failed+=("$addon ($name)")
      cat "$WORK/$addon.$name.out"
    else
      echo "-- $name"
      sed -n "/WARNINGS\|SUMMARY/,\$ p" "$WORK/$addon.$name.out" | grep -v "^[[:space:]]*$"
    fi
  }
  run routes --exclude-tag lifecycle \
    -H "Authorization: Bearer $USER_TOKEN" -H "Clockify-Signature: $WEBHOOK"
  run lifecycle --include-tag lifecycle --phases examples,coverage,fuzzing \
    -H "X-Addon-Lifecycle-Token: $LIFECYCLE"
  # The add-on must have stayed up through all of it.
  curl -sf "$base/healthz" > /dev/null || { echo "$addon stopped answering"; failed+=("$addon (down)"); }
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "api-fuzz: failures in ${failed[*]}"
  exit 1
fi
echo "api-fuzz: ${ADDONS[*]}: no 5xx, every answer as documented"
