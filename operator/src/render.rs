//! `clockify-operator render -f addon.yaml`: every object the operator would create for each
//! ClockifyAddon in the file, in apply order, as YAML, without a cluster. The migration Job
//! appears before the Deployment: on a new ClockifyAddon the Deployment is created only after
//! the Job has migrated the database. A spec with a restore request, or the backup-now
//! annotation, also shows the Jobs those start.

use kube::ResourceExt;
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
        // Restore and on-demand backup Jobs, when the spec and annotation ask for them.
        if let Some(b) = &plan.settings.backup {
            if let Some(r) = &addon.spec.restore {
                children.push(crate::plan::Child::Job(Box::new(
                    crate::build::backup::restore_job(
                        addon,
                        &plan.settings,
                        b,
                        &r.request_id,
                        &r.from,
                    ),
                )));
                children.push(crate::plan::Child::Job(Box::new(
                    crate::build::backup::restore_migration_job(
                        addon,
                        &plan.settings,
                        &r.request_id,
                    ),
                )));
            }
            if let Some(request) = addon.annotations().get(crate::crd::BACKUP_NOW_ANNOTATION) {
                children.push(crate::plan::Child::Job(Box::new(
                    crate::build::backup::on_demand_job(addon, &plan.settings, b, request),
                )));
            }
        }
        for child in &children {
            out.push_str("---\n");
            out.push_str(&yaml_1_1_safe(&serde_norway::to_string(&child.to_json())?));
        }
    }
    Ok(out)
}

/// Words only YAML 1.1 reads as booleans. The emitter writes YAML 1.2, where they are plain
/// strings, but kubectl, Helm and PyYAML read YAML 1.1: `value: on` would arrive as `true`.
/// (true/false in any case are booleans in both, and the emitter quotes them as strings.)
const YAML_1_1_BOOLS: [&str; 16] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Quotes plain scalars that YAML 1.1 would read as booleans. Real booleans are emitted as
/// `true` or `false`, so every such plain word is a string.
pub fn yaml_1_1_safe(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let fixed = ["- ", ": "].iter().find_map(|sep| {
            let (head, word) = body.rsplit_once(sep)?;
            YAML_1_1_BOOLS
                .contains(&word)
                .then(|| format!("{head}{sep}'{word}'"))
        });
        match fixed {
            Some(f) => {
                out.push_str(&f);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_1_1_booleans_are_quoted() {
        let v = serde_json::json!({"env": [{"name": "X", "value": "on"}, {"name": "Y", "value": "no"}], "flag": true, "n": "N"});
        let text = super::yaml_1_1_safe(&serde_norway::to_string(&v).unwrap_or_default());
        assert!(text.contains("value: 'on'"), "{text}");
        assert!(text.contains("value: 'no'"), "{text}");
        assert!(text.contains("n: 'N'"), "{text}");
        assert!(text.contains("flag: true"), "{text}");
        let back: serde_json::Value = serde_norway::from_str(&text).unwrap_or_default();
        assert_eq!(back, v);
    }
}
