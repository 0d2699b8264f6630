//! `clockify-operator render -f addon.yaml`: every object the operator would create for each
//! ClockifyAddon in the file, in apply order, as YAML, without a cluster. The migration Job
//! appears before the Deployment: on a new ClockifyAddon the Deployment is created only after
//! the Job has migrated the database.

use serde::Deserialize;

use crate::crd::ClockifyAddon;
use crate::plan::{Capabilities, plan};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("document {index}: not a ClockifyAddon: {source}")]
    Parse {
        index: usize,
        source: serde_norway::Error,
    },
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
}

/// Parses every YAML document in `input` as a ClockifyAddon.
pub fn parse(input: &str) -> Result<Vec<ClockifyAddon>, RenderError> {
    let mut addons = Vec::new();
    for (index, doc) in serde_norway::Deserializer::from_str(input).enumerate() {
        let value = serde_norway::Value::deserialize(doc)
            .map_err(|source| RenderError::Parse { index, source })?;
        if value.is_null() {
            continue;
        }
        let mut addon: ClockifyAddon = serde_norway::from_value(value)
            .map_err(|source| RenderError::Parse { index, source })?;
        if addon.metadata.namespace.is_none() {
            addon.metadata.namespace = Some("default".to_owned());
        }
        addons.push(addon);
    }
    Ok(addons)
}

/// The objects as a multi-document YAML stream.
pub fn render(addons: &[ClockifyAddon], caps: Capabilities) -> Result<String, RenderError> {
    let mut out = String::new();
    for addon in addons {
        let name = addon.metadata.name.clone().unwrap_or_default();
        let plan = plan(addon, caps).map_err(|e| RenderError::Invalid {
            name: name.clone(),
            message: e.0,
        })?;
        // A new ClockifyAddon migrates its database before the Deployment is created.
        let job =
            crate::plan::Child::Job(Box::new(crate::build::migration_job(addon, &plan.settings)));
        let mut children = Vec::new();
        for child in plan.children {
            if child.kind() == crate::plan::Kind::Deployment {
                children.push(job.clone());
            }
            children.push(child);
        }
        for child in &children {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(&child.to_json())?);
        }
    }
    Ok(out)
}
