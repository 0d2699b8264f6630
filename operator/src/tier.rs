//! Tier profiles: what each Clockify subscription tier gives by default. The spec may override
//! every value. The table in docs/operator.md is generated from [`PROFILES`] (a test checks).

use crate::crd::Tier;

/// Defaults of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub tier: Tier,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_request: &'static str,
    pub cpu_limit: &'static str,
    pub memory_request: &'static str,
    pub memory_limit: &'static str,
    /// `maxUnavailable` of the PodDisruptionBudget; none when the tier runs one replica.
    pub pdb_max_unavailable: Option<i32>,
    pub backup_schedule: &'static str,
    /// Database pool size per pod.
    pub db_connections: u32,
}

pub const PROFILES: [Profile; 5] = [
    Profile {
        tier: Tier::Free,
        min_replicas: 1,
        max_replicas: 1,
        cpu_request: "50m",
        cpu_limit: "250m",
        memory_request: "48Mi",
        memory_limit: "128Mi",
        pdb_max_unavailable: None,
        backup_schedule: "0 3 * * 0",
        db_connections: 4,
    },
    Profile {
        tier: Tier::Basic,
        min_replicas: 1,
        max_replicas: 2,
        cpu_request: "100m",
        cpu_limit: "500m",
        memory_request: "64Mi",
        memory_limit: "192Mi",
        pdb_max_unavailable: None,
        backup_schedule: "0 3 * * *",
        db_connections: 6,
    },
    Profile {
        tier: Tier::Standard,
        min_replicas: 2,
        max_replicas: 4,
        cpu_request: "100m",
        cpu_limit: "1",
        memory_request: "96Mi",
        memory_limit: "256Mi",
        pdb_max_unavailable: Some(1),
        backup_schedule: "0 2 * * *",
        db_connections: 10,
    },
    Profile {
        tier: Tier::Pro,
        min_replicas: 2,
        max_replicas: 6,
        cpu_request: "200m",
        cpu_limit: "1",
        memory_request: "128Mi",
        memory_limit: "384Mi",
        pdb_max_unavailable: Some(1),
        backup_schedule: "0 */12 * * *",
        db_connections: 16,
    },
    Profile {
        tier: Tier::Enterprise,
        min_replicas: 3,
        max_replicas: 10,
        cpu_request: "250m",
        cpu_limit: "2",
        memory_request: "192Mi",
        memory_limit: "512Mi",
        pdb_max_unavailable: Some(1),
        backup_schedule: "0 */6 * * *",
        db_connections: 20,
    },
];

/// The default average CPU utilisation target of the autoscaler.
pub const DEFAULT_CPU_TARGET: i32 = 70;

pub fn profile(tier: Tier) -> &'static Profile {
    PROFILES
        .iter()
        .find(|p| p.tier == tier)
        .unwrap_or(&PROFILES[2])
}

/// The Markdown table of the profiles (docs/operator.md).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Tier | Replicas (min-max) | CPU request / limit | Memory request / limit | PodDisruptionBudget | Backup schedule | DB connections per pod |\n|---|---|---|---|---|---|---|\n",
    );
    for p in &PROFILES {
        let pdb = match p.pdb_max_unavailable {
            Some(n) => format!("maxUnavailable {n}"),
            None => "none (one replica)".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {}-{} | {} / {} | {} / {} | {} | `{}` | {} |\n",
            p.tier.as_str(),
            p.min_replicas,
            p.max_replicas,
            p.cpu_request,
            p.cpu_limit,
            p.memory_request,
            p.memory_limit,
            pdb,
            p.backup_schedule,
            p.db_connections
        ));
    }
    out
}
