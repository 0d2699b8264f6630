//! Whether a child needs an apply, decided from what the operator last applied and what the API
//! server says the operator owns, never from a structural guess over the live object.
//!
//! Every child the operator applies carries two annotations:
//! - `clockify-addons.io/applied`: a hash of the desired object (before these annotations). When
//!   the desired object changes (a spec change, a field added or removed, a new operator
//!   release), the hash changes and the child is applied. Values are compared as the operator
//!   wrote them, so `"1.10"` differs from `"1.1"`, and the server's normalisation (`"1000m"`
//!   stored as `"1"`, `readOnly: false` or `value: ""` dropped) never looks like a change.
//! - `clockify-addons.io/owned-fields`: a hash of the field set the API server assigns to the
//!   operator's field manager for that object, learned from a server-side dry-run of the same
//!   apply. Any write by someone else that changes or removes a field the operator set takes
//!   that field out of the operator's managedFields entry (server-side apply semantics), so the
//!   live entry's hash no longer matches: that is drift, put back by applying again. Fields the
//!   operator never set (a sidecar, an extra label, `kubectl rollout restart`'s annotation, an
//!   autoscaler's replicas) are not the operator's and are left alone.
//!
//! The caches keep only the operator's own managedFields entry, with its field set replaced by
//! its hash ([`trim_managed_fields`]), so a child costs a few hundred bytes of metadata.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::meta::{APPLIED_ANNOTATION, MANAGER, OWNED_FIELDS_ANNOTATION};

/// What one child needs this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The child is what the operator applied, and nobody changed a field the operator set.
    InSync,
    /// The child does not exist.
    Create,
    /// The desired object changed since the last apply.
    Update,
    /// Someone changed or removed a field the operator set: put it back.
    Drifted,
}

/// A canonical hash of a JSON value: object members in key order, whatever order they came
/// in. [`Hashed`] computes the same while deserializing, without building the value: a
/// managedFields field set (a tree of kilobytes) is hashed as it streams in, so the caches
/// never hold it.
pub fn fields_hash(v: &Value) -> String {
    hex::encode(&canonical(v)[..8])
}

fn leaf(tag: u8, text: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([tag]);
    h.update(text);
    h.finalize().into()
}

fn node(tag: u8, parts: impl Iterator<Item = (Option<String>, [u8; 32])>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([tag]);
    for (key, child) in parts {
        if let Some(k) = key {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
        }
        h.update(child);
    }
    h.finalize().into()
}

fn canonical(v: &Value) -> [u8; 32] {
    match v {
        Value::Null => leaf(b'z', b""),
        Value::Bool(b) => leaf(b'b', if *b { b"1" } else { b"0" }),
        Value::Number(n) => leaf(b'n', n.to_string().as_bytes()),
        Value::String(s) => leaf(b's', s.as_bytes()),
        Value::Array(a) => node(b'a', a.iter().map(|x| (None, canonical(x)))),
        Value::Object(m) => {
            let mut members: Vec<(&String, [u8; 32])> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            node(b'o', members.into_iter().map(|(k, h)| (Some(k.clone()), h)))
        }
    }
}

/// The [`fields_hash`] of a JSON value, computed while it is deserialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed(pub [u8; 32]);

impl Hashed {
    pub fn hex(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl<'de> serde::Deserialize<'de> for Hashed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Hashed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Hashed, E> {
                Ok(Hashed(leaf(b'z', b"")))
            }
            fn visit_none<E>(self) -> Result<Hashed, E> {
                Ok(Hashed(leaf(b'z', b"")))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Hashed, E> {
                Ok(Hashed(leaf(b'b', if b { b"1" } else { b"0" })))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Hashed, E> {
                Ok(Hashed(leaf(
                    b'n',
                    serde_json::Number::from(n).to_string().as_bytes(),
                )))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Hashed, E> {
                Ok(Hashed(leaf(
                    b'n',
                    serde_json::Number::from(n).to_string().as_bytes(),
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Hashed, E> {
                let n = serde_json::Number::from_f64(n)
                    .ok_or_else(|| E::custom("a number that is not finite"))?;
                Ok(Hashed(leaf(b'n', n.to_string().as_bytes())))
            }
            fn visit_str<E>(self, s: &str) -> Result<Hashed, E> {
                Ok(Hashed(leaf(b's', s.as_bytes())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Hashed, A::Error> {
                let mut items = Vec::new();
                while let Some(Hashed(h)) = seq.next_element::<Hashed>()? {
                    items.push((None, h));
                }
                Ok(Hashed(node(b'a', items.into_iter())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Hashed, A::Error> {
                let mut members: Vec<(String, [u8; 32])> = Vec::new();
                while let Some((k, Hashed(h))) = map.next_entry::<String, Hashed>()? {
                    members.push((k, h));
                }
                members.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Hashed(node(
                    b'o',
                    members.into_iter().map(|(k, h)| (Some(k), h)),
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A short, stable hash of a JSON value (serde_json keeps object keys sorted).
pub fn hash(v: &Value) -> String {
    let text = serde_json::to_vec(v).unwrap_or_default();
    hex::encode(&Sha256::digest(&text)[..8])
}

/// The hash of a desired object, without the annotations [`stamp`] adds.
pub fn desired_hash(desired: &Value) -> String {
    let mut v = desired.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let emptied = meta
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .is_some_and(|a| {
                a.remove(APPLIED_ANNOTATION);
                a.remove(OWNED_FIELDS_ANNOTATION);
                a.is_empty()
            });
        if emptied {
            meta.remove("annotations");
        }
    }
    hash(&v)
}

/// Writes the two annotations into a desired object.
pub fn stamp(desired: &mut Value, applied: &str, owned: &str) {
    let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if !annotations.is_object() {
        *annotations = Value::Object(Default::default());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            APPLIED_ANNOTATION.to_owned(),
            Value::String(applied.to_owned()),
        );
        a.insert(
            OWNED_FIELDS_ANNOTATION.to_owned(),
            Value::String(owned.to_owned()),
        );
    }
}

/// The operator's own server-side-apply entry (on the object itself, not a subresource).
fn is_own_apply(e: &ManagedFieldsEntry) -> bool {
    e.manager.as_deref() == Some(MANAGER)
        && e.operation.as_deref() == Some("Apply")
        && e.subresource.as_deref().unwrap_or_default().is_empty()
}

/// The hash of the fields the operator's apply owns in `meta` (None: it owns nothing).
pub fn owned_fields(meta: &ObjectMeta) -> Option<String> {
    let entry = meta
        .managed_fields
        .iter()
        .flatten()
        .find(|e| is_own_apply(e))?;
    match &entry.fields_v1.as_ref()?.0 {
        // Already trimmed by the cache.
        Value::String(h) => Some(h.clone()),
        fields => Some(fields_hash(fields)),
    }
}

/// Keeps only the operator's own entry, with its field set replaced by the set's hash.
pub fn trim_managed_fields(meta: &mut ObjectMeta) {
    let own = owned_fields(meta);
    meta.managed_fields = own.map(|h| {
        vec![ManagedFieldsEntry {
            manager: Some(MANAGER.to_owned()),
            operation: Some("Apply".to_owned()),
            fields_v1: Some(FieldsV1(Value::String(h))),
            ..ManagedFieldsEntry::default()
        }]
    });
}

/// What a child needs, from the hash of its desired object and its observed metadata.
pub fn verdict(desired_hash: &str, observed: Option<&ObjectMeta>) -> Verdict {
    let Some(meta) = observed else {
        return Verdict::Create;
    };
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
    if annotation(APPLIED_ANNOTATION).map(String::as_str) != Some(desired_hash) {
        return Verdict::Update;
    }
    match (annotation(OWNED_FIELDS_ANNOTATION), owned_fields(meta)) {
        (Some(expected), Some(live)) if *expected == live => Verdict::InSync,
        _ => Verdict::Drifted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(applied: &str, owned: &str, fields: Value) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(
                [
                    (APPLIED_ANNOTATION.to_owned(), applied.to_owned()),
                    (OWNED_FIELDS_ANNOTATION.to_owned(), owned.to_owned()),
                ]
                .into(),
            ),
            managed_fields: Some(vec![
                ManagedFieldsEntry {
                    manager: Some("kube-controller-manager".into()),
                    operation: Some("Update".into()),
                    subresource: Some("status".into()),
                    fields_v1: Some(FieldsV1(json!({"f:status": {}}))),
                    ..Default::default()
                },
                ManagedFieldsEntry {
                    manager: Some(MANAGER.into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(FieldsV1(fields)),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn the_desired_hash_ignores_the_stamp_and_sees_every_value() {
        let mut a =
            json!({"metadata": {"name": "x"}, "spec": {"env": [{"name": "V", "value": "1.10"}]}});
        let h = desired_hash(&a);
        stamp(&mut a, &h, "f");
        assert_eq!(desired_hash(&a), h, "the stamp is not part of the hash");
        let b =
            json!({"metadata": {"name": "x"}, "spec": {"env": [{"name": "V", "value": "1.1"}]}});
        assert_ne!(desired_hash(&b), h, "strings are compared as written");
        let c = json!({"metadata": {"name": "x"}, "spec": {"env": [{"name": "V", "value": "1.10"}], "x": false}});
        assert_ne!(
            desired_hash(&c),
            h,
            "a field added (even false) changes the hash"
        );
    }

    #[test]
    fn verdicts() {
        let fields = json!({"f:spec": {"f:replicas": {}}});
        let owned = fields_hash(&fields);
        assert_eq!(verdict("d1", None), Verdict::Create);
        assert_eq!(
            verdict("d1", Some(&meta("d1", &owned, fields.clone()))),
            Verdict::InSync
        );
        assert_eq!(
            verdict("d2", Some(&meta("d1", &owned, fields.clone()))),
            Verdict::Update
        );
        // Someone took a field (kubectl scale): the operator's set shrank.
        assert_eq!(
            verdict("d1", Some(&meta("d1", &owned, json!({"f:spec": {}})))),
            Verdict::Drifted
        );
        // The annotations were removed by hand.
        let mut bare = meta("d1", &owned, fields.clone());
        bare.annotations = None;
        assert_eq!(verdict("d1", Some(&bare)), Verdict::Update);
        // No entry of the operator's at all (an object created by someone else with our labels).
        let mut foreign = meta("d1", &owned, fields);
        foreign.managed_fields = None;
        assert_eq!(verdict("d1", Some(&foreign)), Verdict::Drifted);
    }

    #[test]
    fn the_streamed_hash_is_the_canonical_one_whatever_the_member_order() {
        let text = r#"{"f:spec":{"f:replicas":{},"f:template":{"k:{\"name\":\"a\"}":{".":{},"f:image":{}}}},"f:metadata":{"f:labels":{"f:b":{},"f:a":{}}},"n":[1,2.5,"x",true,null]}"#;
        let streamed: Hashed = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(streamed.hex(), fields_hash(&value));
        let reordered = r#"{"n":[1,2.5,"x",true,null],"f:metadata":{"f:labels":{"f:a":{},"f:b":{}}},"f:spec":{"f:template":{"k:{\"name\":\"a\"}":{"f:image":{},".":{}}},"f:replicas":{}}}"#;
        let again: Hashed = serde_json::from_str(reordered).unwrap();
        assert_eq!(again, streamed);
        let other: Hashed = serde_json::from_str(r#"{"f:spec":{}}"#).unwrap();
        assert_ne!(other, streamed);
        // Lists keep their order.
        let a: Hashed = serde_json::from_str("[1,2]").unwrap();
        let b: Hashed = serde_json::from_str("[2,1]").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn trimming_keeps_only_the_hash_of_our_entry() {
        let fields = json!({"f:metadata": {"f:labels": {"f:a": {}}}});
        let mut m = meta("d", &fields_hash(&fields), fields.clone());
        trim_managed_fields(&mut m);
        let entries = m.managed_fields.clone().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].fields_v1.as_ref().unwrap().0,
            Value::String(fields_hash(&fields))
        );
        assert_eq!(owned_fields(&m), Some(fields_hash(&fields)));
        assert_eq!(verdict("d", Some(&m)), Verdict::InSync);
        // Trimming twice changes nothing.
        trim_managed_fields(&mut m);
        assert_eq!(owned_fields(&m), Some(fields_hash(&fields)));
    }
}
