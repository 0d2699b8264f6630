//! Expand-only: this release's SQL contract is committed and current, and every committed
//! release still runs on the newest schema (PostgreSQL and SQLite).
#![cfg(test)]

use addon_testkit::contract::{assert_contract_current, assert_releases_run_on_newest_schema};
use addon_testkit::{Backend, backend_tests};

#[test]
fn this_releases_contract_is_current() {
    assert_contract_current(&reference::DEFINITION);
}

async fn every_release_runs_on_the_newest_schema(backend: Backend) {
    assert_releases_run_on_newest_schema(&reference::DEFINITION, backend).await;
}

backend_tests!(every_release_runs_on_the_newest_schema);
