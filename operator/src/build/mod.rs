//! Pure builders: a ClockifyAddon and its resolved settings in, Kubernetes objects out. No
//! client, no I/O; tested from YAML fixtures.

pub mod backup;
pub mod config;
pub mod deployment;
pub mod exposure;
pub mod job;
pub mod network;
pub mod scaling;
pub mod service;
pub mod service_monitor;

pub use config::{config_hash, config_map, service_account};
pub use deployment::deployment;
pub use exposure::{http_route, ingress};
pub use job::migration_job;
pub use network::network_policy;
pub use scaling::{hpa, pdb};
pub use service::service;
pub use service_monitor::service_monitor;
