//! Secret rotation: every Secret a ClockifyAddon references is watched, and what the add-on's
//! pods read from them is folded into one hash in the pod template
//! ([`SECRETS_HASH_ANNOTATION`]), so a rotated value rolls the pods with the usual
//! zero-downtime rollout. A missing Secret or key stops the pass with a condition that names
//! it ([`Missing`]) instead of pods that cannot start.
//!
//! What is kept of a Secret is a SHA-256 digest per key, never a value: the watch decodes a
//! page, digests it and drops the data. The pod-template hash is a SHA-256 over the digests of
//! every value the pods read, the 32 random bytes of the token-encryption key among them, so it
//! tells nothing about any one value (a short password included).
//!
//! Which ClockifyAddons a Secret concerns is learnt from their reconciles ([`SecretStore::note`]):
//! a change of a Secret no ClockifyAddon read does nothing. Secrets Helm keeps its releases in
//! and ServiceAccount tokens are never listed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::crd::ClockifyAddon;

/// The pod-template annotation holding the hash of the referenced Secret values.
pub const SECRETS_HASH_ANNOTATION: &str = "clockify-addons.io/secrets-hash";

/// The Secrets the watch never lists: Helm's release records (large, and never referenced)
/// and ServiceAccount tokens.
pub const FIELD_SELECTOR: &str =
    "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token";

/// One key of one Secret the spec references.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub secret: String,
    pub key: String,
    /// Where in the spec (for the condition naming a missing one).
    pub field: String,
    /// Whether the add-on's pods read it (the backup Jobs read the S3 keys when they start).
    pub pods: bool,
    /// `optional: true` in a podOverrides env entry: a missing one is no error.
    pub optional: bool,
}

fn reference(secret: &str, key: &str, field: impl Into<String>, pods: bool) -> Reference {
    Reference {
        secret: secret.to_owned(),
        key: key.to_owned(),
        field: field.into(),
        pods,
        optional: false,
    }
}

/// Every Secret key the spec references, in spec order.
pub fn references(addon: &ClockifyAddon) -> Vec<Reference> {
    let spec = &addon.spec;
    let mut refs = vec![
        reference(
            &spec.database.url_secret_ref.name,
            &spec.database.url_secret_ref.key,
            "spec.database.urlSecretRef",
            true,
        ),
        reference(
            &spec.secrets.token_encryption_key_ref.name,
            &spec.secrets.token_encryption_key_ref.key,
            "spec.secrets.tokenEncryptionKeyRef",
            true,
        ),
    ];
    for (i, r) in spec
        .secrets
        .previous_token_encryption_key_refs
        .iter()
        .enumerate()
    {
        refs.push(reference(
            &r.name,
            &r.key,
            format!("spec.secrets.previousTokenEncryptionKeyRefs[{i}]"),
            true,
        ));
    }
    if let Some(r) = &spec.secrets.redis_url_ref {
        refs.push(reference(&r.name, &r.key, "spec.secrets.redisUrlRef", true));
    }
    if let Some(s3) = spec.backup.as_ref().and_then(|b| b.destination.s3.as_ref())
        && let Some(c) = &s3.credentials_secret_ref
    {
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            refs.push(reference(
                &c.name,
                key,
                "spec.backup.destination.s3.credentialsSecretRef",
                false,
            ));
        }
    }
    for e in spec.pod_overrides.iter().flat_map(|o| o.env.iter()) {
        if let Some(s) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            refs.push(Reference {
                optional: s.optional == Some(true),
                ..reference(
                    &s.name,
                    &s.key,
                    format!("spec.podOverrides.env[{}]", e.name),
                    true,
                )
            });
        }
    }
    refs
}

/// A referenced Secret or key that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, where the spec names it, and what to do.
    pub message: String,
}

type Digests = BTreeMap<Box<str>, [u8; 32]>;
/// (namespace, name).
type Key = (Box<str>, Box<str>);

#[derive(Default)]
struct Inner {
    /// (namespace, Secret) -> a digest per key.
    secrets: HashMap<Key, Digests>,
    /// (namespace, Secret) -> the ClockifyAddons whose last reconcile referenced it.
    readers: HashMap<Key, BTreeSet<Box<str>>>,
    /// ClockifyAddon (namespace, name) -> the Secrets it referenced.
    read: HashMap<Key, BTreeSet<Box<str>>>,
    /// The Secrets of a relist under way (those not seen again are gone).
    relist: Option<HashMap<Key, Digests>>,
}

/// The digests of the Secrets in the operator's scope, fed by their watch.
#[derive(Clone, Default)]
pub struct SecretStore {
    inner: Arc<RwLock<Inner>>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.inner.read().map(|i| i.secrets.len()).unwrap_or(0);
        f.debug_struct("SecretStore").field("len", &len).finish()
    }
}

fn digests(secret: &Secret) -> Digests {
    let mut out = Digests::new();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(k.as_str().into(), Sha256::digest(&v.0).into());
    }
    // stringData is write-only (the API server folds it into data), but a test may set it.
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.as_str().into(), Sha256::digest(v.as_bytes()).into());
    }
    out
}

fn key_of(secret: &Secret) -> Key {
    (
        secret.namespace().unwrap_or_default().into(),
        secret.name_any().into(),
    )
}

impl SecretStore {
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    pub async fn wait_until_ready(&self) {
        while !self.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Number of Secrets known.
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.secrets.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts a Secret in (as its watch does); the ClockifyAddons to look at again when what it
    /// holds changed.
    pub fn insert(&self, secret: &Secret) -> Vec<(String, String)> {
        let key = key_of(secret);
        let new = digests(secret);
        let Ok(mut inner) = self.inner.write() else {
            return Vec::new();
        };
        let changed = inner.secrets.get(&key) != Some(&new);
        inner.secrets.insert(key.clone(), new);
        if changed {
            inner.readers_of(&key)
        } else {
            Vec::new()
        }
    }

    /// Takes a Secret out (deleted); the ClockifyAddons that read it.
    pub fn remove(&self, secret: &Secret) -> Vec<(String, String)> {
        let key = key_of(secret);
        let Ok(mut inner) = self.inner.write() else {
            return Vec::new();
        };
        match inner.secrets.remove(&key) {
            Some(_) => inner.readers_of(&key),
            None => Vec::new(),
        }
    }

    /// Applies one event of the Secret watch (relists included, as kube's reflector does);
    /// the ClockifyAddons whose Secrets changed.
    pub fn apply(&self, event: kube::runtime::watcher::Event<Secret>) -> Vec<(String, String)> {
        use kube::runtime::watcher::Event;
        match event {
            Event::Apply(s) => self.insert(&s),
            Event::Delete(s) => self.remove(&s),
            Event::Init => {
                if let Ok(mut inner) = self.inner.write() {
                    inner.relist = Some(HashMap::new());
                }
                Vec::new()
            }
            Event::InitApply(s) => {
                if let Ok(mut inner) = self.inner.write() {
                    let d = digests(&s);
                    inner.relist.get_or_insert_default().insert(key_of(&s), d);
                }
                Vec::new()
            }
            Event::InitDone => {
                let touched = match self.inner.write() {
                    Ok(mut inner) => {
                        let fresh = inner.relist.take().unwrap_or_default();
                        let old = std::mem::replace(&mut inner.secrets, fresh);
                        let mut keys: BTreeSet<_> = old.keys().cloned().collect();
                        keys.extend(inner.secrets.keys().cloned());
                        let changed: Vec<_> = keys
                            .into_iter()
                            .filter(|k| old.get(k) != inner.secrets.get(k))
                            .collect();
                        let mut touched: Vec<_> =
                            changed.iter().flat_map(|k| inner.readers_of(k)).collect();
                        touched.sort();
                        touched.dedup();
                        touched
                    }
                    Err(_) => Vec::new(),
                };
                self.mark_ready();
                touched
            }
        }
    }

    /// Records the Secrets a ClockifyAddon references, so that their changes reach it.
    pub fn note(&self, ns: &str, addon: &str, refs: &[Reference]) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        let who: Key = (ns.into(), addon.into());
        let now: BTreeSet<Box<str>> = refs.iter().map(|r| r.secret.as_str().into()).collect();
        let before = inner.read.remove(&who).unwrap_or_default();
        for gone in before.difference(&now) {
            let k = (who.0.clone(), gone.clone());
            if let Some(r) = inner.readers.get_mut(&k) {
                r.remove(&who.1);
                if r.is_empty() {
                    inner.readers.remove(&k);
                }
            }
        }
        for s in &now {
            inner
                .readers
                .entry((who.0.clone(), s.clone()))
                .or_default()
                .insert(who.1.clone());
        }
        if !now.is_empty() {
            inner.read.insert(who, now);
        }
    }

    /// Forgets a ClockifyAddon (deleted).
    pub fn forget(&self, ns: &str, addon: &str) {
        self.note(ns, addon, &[]);
    }

    /// The hash of what the pods read, or the first reference that is missing.
    pub fn hash(&self, ns: &str, refs: &[Reference]) -> Result<String, Missing> {
        let inner = self.inner.read().map_err(|_| Missing {
            message: "the Secret cache is unavailable".to_owned(),
        })?;
        let mut h = Sha256::new();
        for r in refs {
            let secret = inner
                .secrets
                .get(&(Box::from(ns), Box::from(r.secret.as_str())));
            let digest = secret.and_then(|d| d.get(r.key.as_str()));
            match (secret, digest) {
                (_, Some(d)) => {
                    if r.pods {
                        h.update(r.secret.as_bytes());
                        h.update([0]);
                        h.update(r.key.as_bytes());
                        h.update([0]);
                        h.update(d);
                    }
                }
                _ if r.optional => {
                    h.update(r.secret.as_bytes());
                    h.update([0]);
                    h.update(r.key.as_bytes());
                    h.update([1]);
                }
                (None, _) => {
                    return Err(Missing {
                        message: format!(
                            "Secret {ns}/{} named by {} does not exist; create it, or change the reference",
                            r.secret, r.field
                        ),
                    });
                }
                (Some(_), None) => {
                    return Err(Missing {
                        message: format!(
                            "Secret {ns}/{} has no key {:?}, which {} names; add the key, or change the reference",
                            r.secret, r.key, r.field
                        ),
                    });
                }
            }
        }
        Ok(hex::encode(&h.finalize()[..8]))
    }
}

impl Inner {
    fn readers_of(&self, key: &Key) -> Vec<(String, String)> {
        self.readers
            .get(key)
            .into_iter()
            .flatten()
            .map(|a| (key.0.to_string(), a.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use kube::runtime::watcher::Event;

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("ns".into());
        s.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).into(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        s
    }

    fn addon() -> ClockifyAddon {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "clockify-addons.io/v1alpha1",
            "kind": "ClockifyAddon",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {
                "addon": "apiStudio", "tier": "STANDARD", "version": "1.0.0",
                "baseUrl": "https://a.example.com",
                "database": {"urlSecretRef": {"name": "db", "key": "uri"}},
                "secrets": {"tokenEncryptionKeyRef": {"name": "keys", "key": "token"}},
                "backup": {"destination": {"s3": {"bucket": "b", "credentialsSecretRef": {"name": "s3"}}}},
                "podOverrides": {"env": [{"name": "EXTRA_TOKEN", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "t", "optional": true}}}]}
            }
        }))
        .unwrap()
    }

    fn filled() -> SecretStore {
        let store = SecretStore::default();
        store.insert(&secret("db", &[("uri", "postgres://u:p@h/d")]));
        store.insert(&secret("keys", &[("token", "k1")]));
        store.insert(&secret(
            "s3",
            &[("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "sk")],
        ));
        store
    }

    #[test]
    fn the_hash_follows_what_the_pods_read_and_only_that() {
        let refs = references(&addon());
        let store = filled();
        let first = store.hash("ns", &refs).unwrap();
        assert_eq!(first.len(), 16);
        // A key nobody references, and the S3 keys the backup Jobs read when they start.
        store.insert(&secret(
            "db",
            &[("uri", "postgres://u:p@h/d"), ("other", "x")],
        ));
        store.insert(&secret(
            "s3",
            &[
                ("AWS_ACCESS_KEY_ID", "id2"),
                ("AWS_SECRET_ACCESS_KEY", "sk2"),
            ],
        ));
        assert_eq!(store.hash("ns", &refs).unwrap(), first);
        // The password rotates; then the optional Secret appears.
        store.insert(&secret("db", &[("uri", "postgres://u:p2@h/d")]));
        let rotated = store.hash("ns", &refs).unwrap();
        assert_ne!(rotated, first);
        store.insert(&secret("extra", &[("t", "x")]));
        assert_ne!(store.hash("ns", &refs).unwrap(), rotated);
        // Another namespace's Secret of the same name is not this one.
        assert!(store.hash("other", &refs).is_err());
    }

    #[test]
    fn a_missing_backup_credential_is_named_too() {
        let refs = references(&addon());
        let store = filled();
        store.insert(&secret("s3", &[("AWS_ACCESS_KEY_ID", "id")]));
        let e = store.hash("ns", &refs).unwrap_err();
        assert_eq!(
            e.message,
            "Secret ns/s3 has no key \"AWS_SECRET_ACCESS_KEY\", which spec.backup.destination.s3.credentialsSecretRef names; add the key, or change the reference"
        );
    }

    #[test]
    fn only_a_change_of_a_read_secret_brings_its_readers_back() {
        let store = filled();
        let refs = references(&addon());
        store.note("ns", "a", &refs);
        store.note("ns", "b", &refs[..1]);
        // The same data (a label changed): nothing to do.
        assert!(store.insert(&secret("keys", &[("token", "k1")])).is_empty());
        assert_eq!(
            store.insert(&secret("db", &[("uri", "new")])),
            vec![("ns".into(), "a".into()), ("ns".into(), "b".into())]
        );
        assert_eq!(
            store.insert(&secret("keys", &[("token", "k2")])),
            vec![("ns".into(), "a".into())]
        );
        // b no longer reads db; a is gone.
        store.note("ns", "b", &[]);
        store.forget("ns", "a");
        assert!(store.insert(&secret("db", &[("uri", "newer")])).is_empty());
        assert!(store.remove(&secret("db", &[])).is_empty());
    }

    #[test]
    fn a_relist_replaces_the_store_and_reports_what_changed_while_away() {
        let store = filled();
        store.note("ns", "a", &references(&addon()));
        assert!(!store.is_ready());
        assert!(store.apply(Event::Init).is_empty());
        // During the relist, the old digests still answer.
        assert!(store.hash("ns", &references(&addon())).is_ok());
        store.apply(Event::InitApply(secret(
            "db",
            &[("uri", "postgres://u:p@h/d")],
        )));
        store.apply(Event::InitApply(secret(
            "s3",
            &[("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "sk")],
        )));
        // keys was deleted while the watch was away.
        assert_eq!(
            store.apply(Event::InitDone),
            vec![("ns".into(), "a".into())]
        );
        assert!(store.is_ready());
        assert_eq!(store.len(), 2);
        assert!(store.hash("ns", &references(&addon())).is_err());
    }
}
