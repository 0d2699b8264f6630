#!/usr/bin/env python3
"""Checks the install artefacts with real tools:

- the Helm chart, with Helm v4's own SDK (helm-python-sdk): lint, render for the defaults and for
  non-default values, the values schema (good values pass, each bad value is refused), and every
  rendered object against Kubernetes' published schemas (kubernetes-validate --strict);
- the kustomize trees (base, examples, gitops/argocd, gitops/flux), built with `kubectl kustomize`
  and validated the same way;
- Argo CD's Lua health check for ClockifyAddon, run with a real Lua (lupa) on its test cases.

Run by scripts/test.sh with the .venv's Python.
"""
import json
import os
import subprocess
import sys
import tempfile

import helm_python as helm
import lupa
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "clockify-operator")
VENV_BIN = os.path.dirname(sys.executable)
K8S = os.environ.get("K8S_VERSION", "1.33.0")
# Kinds Kubernetes' published schemas do not have (CRDs of other projects, and ours, whose
# rules the operator's own tests check).
UNKNOWN_OK = {"ServiceMonitor", "PrometheusRule", "ClockifyAddon", "Application", "Kustomization", "GitRepository"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}")


def documents(text):
    return [d for d in yaml.safe_load_all(text) if d]


def validate(name, docs):
    """kubernetes-validate --strict on every object; unknown kinds only from UNKNOWN_OK."""
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, doc in enumerate(docs):
            p = os.path.join(d, f"{i:03d}-{doc.get('kind', 'x')}.yaml")
            with open(p, "w") as f:
                yaml.safe_dump(doc, f)
            paths.append(p)
        out = subprocess.run(
            [os.path.join(VENV_BIN, "kubernetes-validate"), "--strict", "-k", K8S, *paths],
            capture_output=True, text=True,
        )
        report = out.stdout + out.stderr
        bad = [
            line for line in report.splitlines()
            if line.startswith(("ERROR", "WARN"))
            and not any(f"kind {k} " in line for k in UNKNOWN_OK)
        ]
        passed = sum(1 for line in report.splitlines() if line.startswith("INFO") and "passed" in line)
        check(not bad, f"{name}: kubernetes-validate: {bad}")
        print(f"ok   {name}: {len(docs)} objects, {passed} validated against Kubernetes {K8S}")


def render(values, namespace="clockify-system"):
    chart = helm.Chart.load(CHART)
    out = chart.render(values, name="clockify-operator", namespace=namespace, is_install=True)
    docs = []
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        docs.extend(documents(text))
    return docs, notes


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def chart_checks():
    report = helm.lint(CHART, strict=True, kube_version=f"v{K8S}")
    errors = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(not errors and not report.get("errors"), f"helm lint (strict): {errors} {report.get('errors')}")
    print(f"ok   helm lint --strict: {report.get('total_charts_linted')} chart, no warnings")

    rules = yaml.safe_load(open(os.path.join(CHART, "files", "rules.yaml")))
    lease_rules = yaml.safe_load(open(os.path.join(CHART, "files", "lease-rules.yaml")))

    # Defaults: cluster-wide, two replicas with leader election, CRD kept on uninstall.
    docs, notes = render({})
    validate("chart (defaults)", docs)
    kinds = sorted(d["kind"] for d in docs)
    check(kinds == sorted(["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                           "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget"]), f"default kinds: {kinds}")
    crd = by_kind(docs, "CustomResourceDefinition")[0]
    check(crd["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep", "the CRD is kept on uninstall")
    check(by_kind(docs, "ClusterRole")[0]["rules"] == rules, "the ClusterRole grants exactly the operator's rules")
    check(by_kind(docs, "Role")[0]["rules"] == lease_rules, "the leader-election Role grants exactly the Lease rules")
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(dep["spec"]["replicas"] == 2, "two replicas by default")
    check(c["image"] == "ghcr.io/clockify-addons/clockify-operator:0.1.0", f"image: {c['image']}")
    check(c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "admin"}, "liveness on the admin port")
    check(c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}, "readiness on the admin port")
    sc = c["securityContext"]
    check(sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
          and sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
          and pod["securityContext"]["runAsNonRoot"] is True, "restricted pod security")
    check("--lease-namespace=clockify-system" in c["args"], f"lease namespace: {c['args']}")
    check(c["resources"]["limits"]["memory"] == "256Mi", "resources")
    check("watching every namespace" in notes and "prometheusRule.enabled=true" in notes, f"NOTES: {notes}")

    # Non-default: one namespace, monitoring on, pinned digest, no CRD, single replica.
    values = {
        "watchNamespace": "team-a",
        "replicaCount": 1,
        "leaderElection": {"enabled": False},
        "crds": {"install": False},
        "image": {"repository": "registry.example.com/clockify-operator", "digest": "sha256:" + "ab" * 32},
        "imagePullSecrets": [{"name": "regcred"}],
        "metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus"}}},
        "prometheusRule": {"enabled": True, "notReadyFor": "30m", "labels": {"release": "kube-prometheus"}},
        "grafanaDashboard": {"enabled": True},
        "logFormat": "text",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
    }
    helm.Chart.load(CHART).validate_schema(values)
    report = helm.lint(CHART, values, strict=True, namespace="ops", kube_version=f"v{K8S}")
    errors = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(not errors and not report.get("errors"), f"helm lint (strict, non-default values): {errors}")
    docs, notes = render(values, namespace="ops")
    validate("chart (namespaced, monitoring, dashboard)", docs)
    kinds = sorted(d["kind"] for d in docs)
    check(kinds == sorted(["ServiceAccount", "Role", "RoleBinding", "Deployment", "Service",
                           "ServiceMonitor", "PrometheusRule", "ConfigMap"]), f"namespaced kinds: {kinds}")
    role = by_kind(docs, "Role")[0]
    check(role["metadata"]["namespace"] == "team-a" and role["rules"] == rules, "a Role in the watched namespace only")
    check(not by_kind(docs, "ClusterRole"), "nothing cluster-wide in namespaced mode")
    dep = by_kind(docs, "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    check(dep["spec"]["replicas"] == 1 and "--no-leader-election" in c["args"] and "--namespace=team-a" in c["args"], f"args {c['args']}")
    check(c["image"] == "registry.example.com/clockify-operator@sha256:" + "ab" * 32, f"digest image {c['image']}")
    rule = by_kind(docs, "PrometheusRule")[0]
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    check(set(alerts) == {"ClockifyOperatorDown", "ClockifyOperatorReconcileErrors", "ClockifyAddonNotReady",
                          "ClockifyAddonMigrationFailed", "ClockifyAddonBackupFailed", "ClockifyAddonBackupTooOld",
                          "ClockifyAddonErrors", "ClockifyAddonSlow", "ClockifyAddonFlowFailures",
                          "ClockifyAddonFlowBacklog", "ClockifyAddonRateLimited", "ClockifyAddonSignatureFailures",
                          "ClockifyAddonPodsNotReady"},
          f"alerts {sorted(alerts)}")
    check("{{ $value | humanizePercentage }}" in alerts["ClockifyAddonErrors"]["annotations"]["summary"],
          "the add-ons' alerts keep their Prometheus templates through Helm")
    check(alerts["ClockifyAddonNotReady"]["for"] == "30m", "notReadyFor reaches the alert")
    check("{{ $labels.addon }}" in alerts["ClockifyAddonNotReady"]["annotations"]["summary"], "Prometheus templates survive Helm")
    dash = json.loads(by_kind(docs, "ConfigMap")[0]["data"]["clockify-operator.json"])
    check(dash["uid"] == "clockify-operator" and len(dash["panels"]) >= 8, "dashboard JSON")
    check(by_kind(docs, "ConfigMap")[0]["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard label")
    sm = by_kind(docs, "ServiceMonitor")[0]
    check(sm["spec"]["endpoints"] == [{"port": "admin", "path": "/metrics", "interval": "15s"}]
          and sm["metadata"]["labels"].get("release") == "kube-prometheus", f"ServiceMonitor {sm['spec']}")
    check("watching namespace team-a" in notes, f"NOTES in namespaced mode: {notes}")

    # Bad values are refused by the schema, each with the reason.
    bad = [
        ({"replicaCount": 0}, "replicaCount"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"image": {"repository": "x", "digest": "sha256:nothex"}}, "digest"),
        ({"watchNamespace": "Not_A_Namespace"}, "watchNamespace"),
        ({"metrics": {"serviceMonitor": {"interval": "soon"}}}, "interval"),
        ({"replicas": 3}, "replicas"),
    ]
    for values, key in bad:
        try:
            helm.Chart.load(CHART).validate_schema(values)
            check(False, f"schema accepted {values}")
        except helm.HelmValuesError as e:
            check(key in str(e), f"schema refusal of {values} names {key}: {e}")
        try:
            render(values)
            check(False, f"render accepted {values}")
        except helm.HelmError:
            pass
    print(f"ok   values.schema.json refuses {len(bad)} bad values with the key named")


def kustomize_checks():
    for tree in ["base", "examples", "gitops/argocd", "gitops/flux"]:
        out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "manifests", tree)],
                             capture_output=True, text=True)
        check(out.returncode == 0, f"kubectl kustomize manifests/{tree}: {out.stderr}")
        if out.returncode == 0:
            validate(f"manifests/{tree}", documents(out.stdout))
    base = documents(subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "manifests", "base")],
                                    capture_output=True, text=True).stdout)
    rules = yaml.safe_load(open(os.path.join(CHART, "files", "rules.yaml")))
    check(by_kind(base, "ClusterRole")[0]["rules"] == rules, "the kustomize base grants the same rules as the chart")
    examples = documents(subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "manifests", "examples")],
                                        capture_output=True, text=True).stdout)
    pairs = sorted((d["spec"]["addon"], d["spec"]["tier"]) for d in examples)
    check(len(pairs) == 9 and len(set(pairs)) == 9, f"one example per add-on and tier: {pairs}")


def to_lua(rt, v):
    if isinstance(v, dict):
        return rt.table_from({k: to_lua(rt, x) for k, x in v.items()})
    if isinstance(v, list):
        return rt.table_from([to_lua(rt, x) for x in v])
    return v


def argocd_health_checks():
    d = os.path.join(ROOT, "manifests", "gitops", "argocd", "resource_customizations",
                     "clockify-addons.io", "ClockifyAddon")
    script = open(os.path.join(d, "health.lua")).read()
    tests = yaml.safe_load(open(os.path.join(d, "health_test.yaml")))["tests"]
    seen = set()
    for t in tests:
        rt = lupa.LuaRuntime(unpack_returned_tuples=True)
        obj = yaml.safe_load(open(os.path.join(d, t["inputPath"])))
        rt.globals().obj = to_lua(rt, obj)
        hs = rt.execute(script)
        got = {"status": hs["status"], "message": hs["message"]}
        check(got == t["healthStatus"], f"Argo CD health of {t['inputPath']}: {got} != {t['healthStatus']}")
        seen.add(got["status"])
    check({"Healthy", "Progressing", "Degraded", "Suspended"} <= seen, f"health cases cover every state: {seen}")
    cm = yaml.safe_load(open(os.path.join(ROOT, "manifests", "gitops", "argocd", "argocd-cm.yaml")))
    check(cm["data"]["resource.customizations.health.clockify-addons.io_ClockifyAddon"].strip() == script.strip(),
          "argocd-cm carries health.lua as it is")
    print(f"ok   Argo CD health check: {len(tests)} cases ({', '.join(sorted(seen))})")


chart_checks()
kustomize_checks()
argocd_health_checks()
if failures:
    print(f"\n{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("deploy artefacts: all checks passed")
