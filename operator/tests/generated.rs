//! Generated files are current: crds/ is what `clockify-operator crd` prints, and the tier
//! table in docs/operator.md is what `clockify-operator tiers` prints.
#![cfg(test)]

#[test]
fn crds_directory_is_current() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/clockify-addons.io_clockifyaddons.yaml"
    ))
    .unwrap();
    assert!(
        committed == clockify_operator::crd_yaml().unwrap(),
        "crds/ is stale: run ./scripts/generate.sh (cargo run -p clockify-operator -- crd > crds/clockify-addons.io_clockifyaddons.yaml)"
    );
}

#[test]
fn tier_table_in_docs_is_current() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operator.md"))
        .unwrap();
    assert!(
        docs.contains(&clockify_operator::tier::markdown_table()),
        "docs/operator.md's tier table is stale: run ./scripts/generate.sh"
    );
}

/// Every property of the ClockifyAddon schema has a description for `kubectl explain`.
#[test]
fn every_field_is_described() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(clockify_operator::ClockifyAddon::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    fn walk(node: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                let here = format!("{path}.{name}");
                let described = child
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| !d.trim().is_empty());
                if !described && !matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                    missing.push(here.clone());
                }
                walk(child, &here, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    walk(&root["properties"]["spec"], "spec", &mut missing);
    walk(&root["properties"]["status"], "status", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

/// Defaulted fields are omitted, never written as null, so Git and the cluster agree.
#[test]
fn serialized_specs_carry_no_nulls() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/reference-basic.yaml"
    ))
    .unwrap();
    let addon: clockify_operator::ClockifyAddon = serde_norway::from_str(&text).unwrap();
    let json = serde_json::to_string(&addon).unwrap();
    assert!(!json.contains("null"), "{json}");
    let status = clockify_operator::ClockifyAddonStatus::default();
    assert_eq!(serde_json::to_string(&status).unwrap(), "{}");
}
