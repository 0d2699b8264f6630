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
