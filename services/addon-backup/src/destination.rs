//! Where backups live: a directory (a mounted volume) or an S3-compatible bucket, both through
//! `object_store`. Objects sit flat under the destination's prefix: `<id>.dump` and `<id>.json`.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Error;
use crate::manifest::{DUMP_SUFFIX, MANIFEST_SUFFIX, Manifest};

/// S3 settings that are not part of the destination URL. Credentials come from the
/// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and never pass
/// through here.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint of an S3-compatible service, such as http://minio.storage:9000; AWS when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl S3Options {
    /// From BACKUP_S3_ENDPOINT (or AWS_ENDPOINT_URL) and AWS_REGION (or AWS_DEFAULT_REGION).
    pub fn from_env() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        Self {
            endpoint: var(&["BACKUP_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
        }
    }
}

#[derive(Clone)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// For messages: `s3://bucket/prefix` or the directory (never credentials).
    display: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Destination {
    /// `s3://bucket[/prefix]`, `file:///dir` or a directory path (created when missing).
    pub fn parse(spec: &str, s3: &S3Options) -> Result<Self, Error> {
        let bad = |why: String| Error::Destination(format!("{spec:?}: {why}"));
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket; use s3://bucket/prefix".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &s3.endpoint {
                if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                    return Err(bad(format!(
                        "the S3 endpoint {endpoint:?} is not an http(s) URL"
                    )));
                }
                builder = builder
                    .with_endpoint(endpoint.trim_end_matches('/'))
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if let Some(region) = &s3.region {
                builder = builder.with_region(region);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| bad(e.to_string()))?;
            return Ok(Self {
                store: Arc::new(store),
                display: format!("s3://{bucket}/{prefix}")
                    .trim_end_matches('/')
                    .to_owned(),
                prefix,
            });
        }
        let dir = match spec.strip_prefix("file://") {
            Some(path) => path,
            None if spec.contains("://") => {
                return Err(bad(
                    "use s3://bucket/prefix, file:///directory or a directory path".into(),
                ));
            }
            None => spec,
        };
        if dir.is_empty() {
            return Err(bad("empty directory".into()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(format!("cannot create the directory: {e}")))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            display: dir.display().to_string(),
        })
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object named `name` under the prefix.
    pub fn path(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }

    /// Every complete backup (a readable manifest), oldest first, and the names of dumps that
    /// have no manifest (unfinished backups) with their age.
    pub async fn list(&self) -> Result<Listing, Error> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| Error::Storage(format!("listing {self}: {e}")))?;
        let mut manifests = Vec::new();
        let mut dumps = Vec::new();
        let mut unreadable = Vec::new();
        for object in listed.objects {
            let Some(name) = object.location.filename().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(MANIFEST_SUFFIX) {
                match self.read_manifest(&name).await {
                    Ok(m) => manifests.push(m),
                    Err(e) => unreadable.push(format!("{name}: {e}")),
                }
            } else if name.ends_with(DUMP_SUFFIX) {
                dumps.push((name, object.last_modified));
            }
        }
        manifests.sort_by(|a, b| a.finished_at.cmp(&b.finished_at).then(a.id.cmp(&b.id)));
        let orphans = dumps
            .into_iter()
            .filter(|(name, _)| !manifests.iter().any(|m| &m.dump == name))
            .map(|(name, modified)| (name, modified.timestamp()))
            .collect();
        Ok(Listing {
            backups: manifests,
            orphans,
            unreadable,
        })
    }

    pub async fn read_manifest(&self, name: &str) -> Result<Manifest, Error> {
        let bytes = self
            .store
            .get(&self.path(name))
            .await
            .map_err(|e| self.read_error(name, e))?
            .bytes()
            .await
            .map_err(|e| Error::Storage(format!("reading {name} from {self}: {e}")))?;
        Manifest::parse(&bytes).map_err(|e| Error::Corrupt(format!("{name}: {e}")))
    }

    fn read_error(&self, name: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => {
                Error::NotFound(format!("{name} is not in {self}"))
            }
            e => Error::Storage(format!("reading {name} from {self}: {e}")),
        }
    }

    pub async fn put_manifest(&self, m: &Manifest) -> Result<(), Error> {
        let name = format!("{}{MANIFEST_SUFFIX}", m.id);
        self.store
            .put(&self.path(&name), m.to_json().into())
            .await
            .map_err(|e| Error::Storage(format!("writing {name} to {self}: {e}")))?;
        Ok(())
    }

    /// Deletes one backup: its manifest first (so it is never listed half-deleted), then its dump.
    pub async fn delete(&self, m: &Manifest) -> Result<(), Error> {
        for name in [format!("{}{MANIFEST_SUFFIX}", m.id), m.dump.clone()] {
            self.delete_object(&name).await?;
        }
        Ok(())
    }

    pub async fn delete_object(&self, name: &str) -> Result<(), Error> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::Storage(format!("deleting {name} from {self}: {e}"))),
        }
    }

    /// Streams an object's bytes.
    pub async fn read(
        &self,
        name: &str,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, Error>> + use<>, Error> {
        let display = self.display.clone();
        let owned = name.to_owned();
        let got = self
            .store
            .get(&self.path(name))
            .await
            .map_err(|e| self.read_error(name, e))?;
        Ok(got
            .into_stream()
            .map_err(move |e| Error::Storage(format!("reading {owned} from {display}: {e}"))))
    }
}

/// What a destination holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete backups, oldest first.
    pub backups: Vec<Manifest>,
    /// Dumps without a manifest (unfinished backups): name and last-modified Unix time.
    pub orphans: Vec<(String, i64)>,
    /// Manifests that could not be read, with why.
    pub unreadable: Vec<String>,
}
