#!/usr/bin/env bash
# Validates generated Kubernetes YAML with real tools:
#   - the CRD and every object `clockify-operator render` prints for every example in
#     manifests/examples, against Kubernetes 1.33's published schemas (kubernetes-validate --strict);
#   - yamllint on crds/ and manifests/.
# ServiceMonitor, HTTPRoute and ScaledObject have no published schema there; their shapes are
# covered by the operator's tests, and HTTPRoute's and ScaledObject's by e2e/ against the
# Gateway API's and KEDA's own CRDs (E2E_GATEWAY_API_CRDS, E2E_KEDA_CRDS).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
K8S_VERSION=${K8S_VERSION:-1.33.0}
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/yamllint" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "yamllint==1.38.0"
fi

[ -n "${PREBUILT:-}" ] || cargo build -q -p clockify-operator
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for f in manifests/examples/*.yaml operator/tests/fixtures/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    ./target/debug/clockify-operator render -f "$f" > "$out/$(basename "$f")"
    ./target/debug/clockify-operator render --no-service-monitor-api --no-gateway-api -f "$f" > "$out/no-sm-$(basename "$f")"
    ./target/debug/clockify-operator render --keda -f "$f" > "$out/keda-$(basename "$f")"
done

status=0
report=$("$VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" crds/clockify-addons.io_clockifyaddons.yaml "$out"/*.yaml 2>&1) || status=$?
printf '%s\n' "$report" | grep -v '^INFO' || true
unexpected=$(printf '%s\n' "$report" | grep -E '^(WARN|ERROR)' | grep -Ev "Couldn't find schema for kind (ServiceMonitor|HTTPRoute|ScaledObject) " || true)
passed=$(printf '%s\n' "$report" | grep -c '^INFO .* passed' || true)
if [ "$status" -ne 0 ] || [ -n "$unexpected" ]; then
    echo "kubernetes-validate found problems" >&2
    exit 1
fi
echo "kubernetes-validate --strict ($K8S_VERSION): $passed objects passed"

"$VENV/bin/yamllint" -s -c .yamllint.yaml crds manifests charts/clockify-operator/Chart.yaml charts/clockify-operator/values.yaml charts/clockify-operator/files/rules.yaml charts/clockify-operator/files/lease-rules.yaml charts/clockify-operator/files/crd.yaml
echo "yamllint: ok"
