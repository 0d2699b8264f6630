//! The curated catalog of Clockify API v1 operations that the explorer can run and that
//! bootstrap walks (`catalog/clockify-v1.json`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::clockify::ApiRequest;
use crate::flows::template::encode_segment;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    pub id: String,
    pub group: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    #[serde(default)]
    pub paginated: bool,
    /// Entity type name in the cache when bootstrap walks this operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// Bootstrap walks it only when heavy endpoints are switched on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub heavy: bool,
    /// Bootstrap walks it once per cached user (`{userId}`), within the time-entry window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_user: bool,
    /// JSON pointer to the list inside the answer (the answer itself when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// JSON pointer to an item's id (`/id` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_at: Option<String>,
}

impl Operation {
    /// Names of the `{...}` parameters in the path.
    pub fn path_params(&self) -> Vec<&str> {
        self.path
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next())
            .collect()
    }

    /// The list of items in an answer of this operation, if it has one.
    pub fn items_of<'a>(
        &self,
        answer: &'a serde_json::Value,
    ) -> Option<&'a Vec<serde_json::Value>> {
        match &self.items {
            Some(pointer) => answer.pointer(pointer),
            None => Some(answer),
        }
        .and_then(serde_json::Value::as_array)
    }

    /// An item's id.
    pub fn id_of<'a>(&self, item: &'a serde_json::Value) -> Option<&'a str> {
        item.pointer(self.id_at.as_deref().unwrap_or("/id"))
            .and_then(serde_json::Value::as_str)
    }

    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// Fills the path for the caller's workspace; `workspaceId` always comes from the token.
    pub fn request(
        &self,
        workspace_id: &str,
        params: &BTreeMap<String, String>,
        query: &BTreeMap<String, String>,
        body: Option<serde_json::Value>,
    ) -> Result<ApiRequest, String> {
        let mut path = self.path.clone();
        for name in self.path_params() {
            let value = if name == "workspaceId" {
                workspace_id
            } else {
                params
                    .get(name)
                    .map(String::as_str)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("missing path parameter {name:?}"))?
            };
            path = path.replace(&format!("{{{name}}}"), &encode_segment(value));
        }
        let method = reqwest::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| "bad method".to_owned())?;
        let body = if self.is_write() { body } else { None };
        Ok(ApiRequest {
            method,
            path,
            query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body,
            form: None,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub operations: Vec<Operation>,
}

impl Catalog {
    pub fn get(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    pub fn bootstrap_operations(&self) -> impl Iterator<Item = &Operation> {
        self.operations.iter().filter(|o| o.bootstrap.is_some())
    }
}

/// The catalog compiled into the binary.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("../catalog/clockify-v1.json"))
            .expect("the embedded catalog parses (tested)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_consistent() {
        let c = catalog();
        let mut ids = std::collections::HashSet::new();
        for op in &c.operations {
            assert!(ids.insert(&op.id), "duplicate id {}", op.id);
            assert!(
                op.path.starts_with("/v1/workspaces/{workspaceId}"),
                "{} is not workspace-scoped",
                op.id
            );
            if op.bootstrap.is_some() {
                assert_eq!(op.method, "GET", "{} bootstraps with a write", op.id);
                let expected = if op.per_user {
                    vec!["workspaceId", "userId"]
                } else {
                    vec!["workspaceId"]
                };
                assert_eq!(
                    op.path_params(),
                    expected,
                    "{} needs other parameters than bootstrap fills",
                    op.id
                );
            } else {
                assert!(!op.heavy && !op.per_user, "{} is not bootstrapped", op.id);
            }
        }
        assert!(c.bootstrap_operations().count() >= 6);
        assert!(c.bootstrap_operations().any(|o| o.heavy));
        // Per-user operations walk the users bootstrap stored first.
        let users = c
            .operations
            .iter()
            .position(|o| o.bootstrap.as_deref() == Some("users"))
            .unwrap();
        for (i, op) in c.operations.iter().enumerate() {
            if op.per_user {
                assert!(i > users, "{} comes before listUsers", op.id);
            }
        }
    }

    #[test]
    fn every_operation_exists_in_clockifys_openapi() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/clockify/clockify-api-v1.openapi.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {} is absent", path.display());
            return;
        };
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for op in &catalog().operations {
            let found = doc["paths"][&op.path][op.method.to_ascii_lowercase()].is_object();
            assert!(
                found,
                "{} {} {} is not in Clockify's OpenAPI document",
                op.id, op.method, op.path
            );
            if op.paginated {
                let params = doc["paths"][&op.path][op.method.to_ascii_lowercase()]["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    params.iter().any(|p| p["name"] == "page"),
                    "{} is marked paginated but takes no page",
                    op.id
                );
            }
        }
    }

    #[test]
    fn items_and_ids_are_found_where_the_answer_keeps_them() {
        let c = catalog();
        let expenses = c.get("listExpenses").unwrap();
        let answer = serde_json::json!({"expenses": {"count": 1, "expenses": [{"id": "e1"}]}});
        let items = expenses.items_of(&answer).unwrap();
        assert_eq!(expenses.id_of(&items[0]), Some("e1"));
        assert!(expenses.items_of(&serde_json::json!([])).is_none());
        let approvals = c.get("listApprovalRequests").unwrap();
        let item = serde_json::json!({"approvalRequest": {"id": "a1"}});
        assert_eq!(approvals.id_of(&item), Some("a1"));
        let users = c.get("listUsers").unwrap();
        assert_eq!(
            users
                .items_of(&serde_json::json!([{"id": "u"}]))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn workspace_comes_from_the_caller() {
        let op = catalog().get("getTag").unwrap();
        let params = BTreeMap::from([
            ("id".to_owned(), "t/1".to_owned()),
            ("workspaceId".to_owned(), "other".to_owned()),
        ]);
        let req = op.request("mine", &params, &BTreeMap::new(), None).unwrap();
        assert_eq!(req.path, "/v1/workspaces/mine/tags/t%2F1");
        assert!(
            op.request("mine", &BTreeMap::new(), &BTreeMap::new(), None)
                .unwrap_err()
                .contains("\"id\"")
        );
    }
}
