#!/usr/bin/env bash
# Installs what the tests need, then runs every check and test. CI runs this (.ci/run).
#
#   ./scripts/test.sh            everything: fmt, clippy, generated files, manifest validation, tests
#   ./scripts/test.sh --quick    tests only
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and Redis on 127.0.0.1:6379;
# starts the machine's own servers when they are installed but stopped. Override with
# TEST_POSTGRES_URL and TEST_REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> [%s] %s\n' "$(date +%T)" "$*"; }

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
    if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
        say "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
    echo "PostgreSQL is not reachable on 127.0.0.1:5432 (set TEST_POSTGRES_URL to use another server)" >&2
    exit 1
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
    if command -v redis-server >/dev/null; then
        say "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    fi
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 1; done
    echo "Redis is not reachable on 127.0.0.1:6379 (set TEST_REDIS_URL to use another server)" >&2
    exit 1
}

# Headless Chromium for the reference add-on's settings-page test (skips without it).
ensure_chromium() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return; fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=$(command -v sudo || true)
    if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
        say "installing chromium and chromium-driver"
        $sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
            || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
            || echo "could not install chromium; the browser test will skip" >&2
    fi
}

# pg_dump, pg_restore and psql for the backup tests.
ensure_pg_client() {
    if command -v pg_dump >/dev/null && command -v pg_restore >/dev/null && command -v psql >/dev/null; then return; fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=$(command -v sudo || true)
    say "installing postgresql-client"
    $sudo apt-get install -y -q postgresql-client >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q postgresql-client >/dev/null 2>&1; } \
        || { echo "pg_dump/pg_restore/psql are missing and could not be installed" >&2; exit 1; }
}

# Python tools in .venv: Kubernetes' schemas, yamllint, moto's S3 server (the backup tests'
# object storage; they skip their S3 part without it), Helm's SDK and Lua (the chart and the
# Argo CD health check).
ensure_python_tools() {
    local venv=${VENV:-.venv}
    if [ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/yamllint" ] && [ -x "$venv/bin/moto_server" ] \
        && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q 4.32.5 \
        && "$venv/bin/python" -c "import helm_python, lupa" 2>/dev/null; then return; fi
    say "installing Python test tools into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "kubernetes-validate==1.37.0" "yamllint==1.38.0" "moto[server]==5.2.5" \
        "helm-python-sdk==0.2.2" "lupa==2.8" "schemathesis==4.32.5"
}

# Node.js and npm: the console's build (scripts/ui.sh) and axe-core for its page test.
ensure_node() {
    if command -v node >/dev/null && command -v npm >/dev/null; then return; fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=$(command -v sudo || true)
    say "installing nodejs and npm"
    $sudo apt-get install -y -q nodejs npm >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q nodejs npm >/dev/null 2>&1; } \
        || { echo "node and npm are missing and could not be installed" >&2; exit 1; }
}

[ -n "${TEST_POSTGRES_URL:-}" ] || ensure_postgres
[ -n "${TEST_REDIS_URL:-}" ] || ensure_redis
ensure_chromium
ensure_pg_client
ensure_python_tools
ensure_node
say "the console's packages (npm ci: esbuild, TypeScript, Preact, axe-core)"
./scripts/ui.sh --deps

if [ "${1:-}" != "--quick" ]; then
    say "toolchain components"
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    say "cargo fmt --check"
    cargo fmt --all -- --check
    say "cargo clippy --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings
    # Everything is built once, by the test build (one feature resolution for the whole
    # workspace, e2e included); the checks below run its binaries.
    say "cargo test --no-run (build)"
    cargo test --workspace --locked --no-run
    export PREBUILT=1
    say "generated files are current (scripts/generate.sh changes nothing)"
    generated="crds charts/clockify-operator/files docs/crd-reference.md docs/operator.md README.md manifests/base/rbac.yaml manifests/gitops/argocd/argocd-cm.yaml migrations services/addon-core/catalog services/addon-core/ui/dist"
    before=$(find $generated -type f -print0 | sort -z | xargs -0 sha256sum)
    ./scripts/generate.sh >/dev/null
    after=$(find $generated -type f -print0 | sort -z | xargs -0 sha256sum)
    if [ "$before" != "$after" ]; then
        echo "stale generated files (now regenerated; commit them):" >&2
        diff <(echo "$before") <(echo "$after") >&2 || true
        exit 1
    fi
    say "Kubernetes objects against Kubernetes' published schemas (kubernetes-validate, yamllint)"
    ./scripts/validate-manifests.sh
    say "Helm chart (Helm SDK: lint, render, values schema), kustomize trees, Argo CD health check"
    "${VENV:-.venv}/bin/python" scripts/check-deploy.py
    say "static binaries (x86_64 musl), as the images ship them"
    ./scripts/build-static.sh
fi

say "cargo test"
cargo test --workspace --locked -- --skip e2e_

if [ "${1:-}" != "--quick" ]; then
    say "fuzzing (cargo-fuzz, ${FUZZ_SECONDS:-10} s per target)"
    ./scripts/fuzz.sh
    say "the add-ons' own API against its /openapi.json (schemathesis: no 5xx, answers as documented)"
    API_FUZZ_VENV=${VENV:-.venv} ./scripts/api-fuzz.sh
fi

say "e2e (runs against KUBECONFIG's cluster, skips without one)"
# The same targets and features as above (so nothing is rebuilt), filtered to the e2e tests.
cargo test --workspace --locked -- e2e_ --nocapture
