//! The operator's permissions: exactly the API calls it makes, in one place. The Helm chart's
//! and the kustomize base's RBAC are generated from [`RULES`] (`clockify-operator rbac`), and the
//! mocked-API tests check that every call a reconcile makes is one of these.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One rule: API group, resources, verbs, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub why: &'static str,
}

/// Every permission the operator uses where ClockifyAddons live. Server-side apply of an object
/// that does not exist yet needs `create` as well as `patch`.
pub const RULES: &[Rule] = &[
    Rule {
        group: "clockify-addons.io",
        resources: &["clockifyaddons"],
        verbs: &["get", "list", "watch"],
        why: "watch ClockifyAddons",
    },
    Rule {
        group: "clockify-addons.io",
        resources: &["clockifyaddons/status"],
        verbs: &["patch"],
        why: "write status (server-side apply)",
    },
    Rule {
        group: "",
        resources: &[
            "serviceaccounts",
            "configmaps",
            "services",
            "persistentvolumeclaims",
        ],
        verbs: &["list", "watch", "create", "patch"],
        why: "children, cached by watches, applied server-side; never deleted (owner references, or kept on purpose)",
    },
    Rule {
        group: "apps",
        resources: &["deployments"],
        verbs: &["list", "watch", "create", "patch"],
        why: "the add-on's Deployment",
    },
    Rule {
        group: "autoscaling",
        resources: &["horizontalpodautoscalers"],
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "optional child, pruned when no longer wanted",
    },
    Rule {
        group: "policy",
        resources: &["poddisruptionbudgets"],
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "optional child, pruned when no longer wanted",
    },
    Rule {
        group: "networking.k8s.io",
        resources: &["networkpolicies", "ingresses"],
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "optional child, pruned when no longer wanted",
    },
    Rule {
        group: "batch",
        resources: &["jobs", "cronjobs"],
        verbs: &["list", "watch", "create", "patch", "delete"],
        why: "migration, backup and restore Jobs (superseded ones deleted); the backup CronJob",
    },
    Rule {
        group: "",
        resources: &["pods"],
        verbs: &["list"],
        why: "read a finished backup or restore Job's termination message; see that no pod of an add-on is left before a restore",
    },
    Rule {
        group: "",
        resources: &["secrets"],
        verbs: &["list", "watch"],
        why: "roll an add-on's pods when a Secret it references changes; only digests of the values are kept, never written",
    },
    Rule {
        group: "monitoring.coreos.com",
        resources: &["servicemonitors"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        why: "optional child, cached once the API is served (read directly until then)",
    },
    Rule {
        group: "gateway.networking.k8s.io",
        resources: &["httproutes"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        why: "optional child (exposure on a Gateway), cached once the API is served (read directly until then)",
    },
    Rule {
        group: "keda.sh",
        resources: &["scaledobjects"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        why: "optional child (scaling on the work where KEDA is served), cached once the API is served (read directly until then)",
    },
    Rule {
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "Events on ClockifyAddons",
    },
];

/// Leader election, in the Lease's namespace.
pub const LEASE_RULES: &[Rule] = &[Rule {
    group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "create", "update"],
    why: "leader election",
}];

fn policy_rule(r: &Rule) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![r.group.to_owned()]),
        resources: Some(r.resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: r.verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

pub fn policy_rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules.iter().map(policy_rule).collect()
}

pub fn cluster_role(name: &str) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(policy_rules(RULES)),
        ..ClusterRole::default()
    }
}

pub fn role(name: &str, namespace: &str, rules: &[Rule]) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(policy_rules(rules)),
    }
}

/// The (group, resource, verb) of a REST call, as the API server authorizes it.
pub fn attributes(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group.to_owned(), resource, verb.to_owned()))
}

/// Whether `rules` allow a call. Discovery (`/apis/<group>/<version>`) is open to every
/// authenticated client (system:discovery) and needs no rule.
pub fn allows(rules: &[Rule], method: &str, path: &str, query: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method == "GET"
        && matches!(
            parts.as_slice(),
            ["apis", _, _] | ["api", _] | ["apis"] | ["api"]
        )
    {
        return true;
    }
    let Some((group, resource, verb)) = attributes(method, path, query) else {
        return false;
    };
    rules.iter().any(|r| {
        r.group == group
            && r.resources.contains(&resource.as_str())
            && r.verbs.contains(&verb.as_str())
    })
}

/// The rules as YAML list items, indented for a Role or ClusterRole's `rules:` (for the Helm
/// chart's template and the kustomize base, generated by `clockify-operator rbac`).
pub fn rules_yaml(rules: &[Rule]) -> String {
    let mut out = String::new();
    for r in rules {
        out.push_str(&format!("# {}\n", r.why));
        out.push_str(&format!("- apiGroups: [\"{}\"]\n", r.group));
        out.push_str(&format!("  resources: [{}]\n", r.resources.join(", ")));
        out.push_str(&format!("  verbs: [{}]\n", r.verbs.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_map_to_what_rbac_checks() {
        let a = |m, p, q| attributes(m, p, q).map(|(g, r, v)| format!("{g}|{r}|{v}"));
        assert_eq!(
            a("PATCH", "/apis/apps/v1/namespaces/x/deployments/d", "").as_deref(),
            Some("apps|deployments|patch")
        );
        assert_eq!(
            a("GET", "/api/v1/pods", "watch=true&labelSelector=a").as_deref(),
            Some("|pods|watch")
        );
        assert_eq!(
            a("GET", "/api/v1/namespaces/x/pods", "labelSelector=a").as_deref(),
            Some("|pods|list")
        );
        assert_eq!(
            a(
                "PATCH",
                "/apis/clockify-addons.io/v1alpha1/namespaces/x/clockifyaddons/a/status",
                ""
            )
            .as_deref(),
            Some("clockify-addons.io|clockifyaddons/status|patch")
        );
        assert!(allows(RULES, "GET", "/apis/monitoring.coreos.com/v1", ""));
        assert!(!allows(
            RULES,
            "DELETE",
            "/apis/apps/v1/namespaces/x/deployments/d",
            ""
        ));
        assert!(allows(RULES, "GET", "/api/v1/secrets", "watch=true"));
        assert!(
            !allows(RULES, "GET", "/api/v1/namespaces/x/secrets/s", ""),
            "a Secret is never read by name: only watched, as digests"
        );
        for verb in ["POST", "PATCH", "PUT", "DELETE"] {
            assert!(
                !allows(RULES, verb, "/api/v1/namespaces/x/secrets/s", ""),
                "never writes Secrets ({verb})"
            );
        }
        assert!(allows(
            LEASE_RULES,
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
            ""
        ));
    }
}
