//! The NetworkPolicy: ingress only to the service port (from the ingress controller and the
//! peers the spec lists, when it lists any); egress only to DNS, the database,
//! Redis (when configured), HTTPS (Clockify's API, S3) and a backup endpoint's own port.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::ClockifyAddon;
use crate::meta::{HTTP_PORT, child_meta, instance_labels};
use crate::settings::Settings;

pub const REDIS_PORT: i32 = 6379;

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    }
}

fn egress(ports: Vec<NetworkPolicyPort>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        ports: Some(ports),
        ..NetworkPolicyEgressRule::default()
    }
}

/// Who may connect to the add-on's port: the ingress controller (`exposure.controller`) and
/// `networkPolicy.ingressFrom`; anyone when neither is set.
fn ingress_from(addon: &ClockifyAddon, s: &Settings) -> Option<Vec<NetworkPolicyPeer>> {
    let mut peers: Vec<NetworkPolicyPeer> = s
        .exposure
        .as_ref()
        .and_then(|e| e.controller.clone())
        .into_iter()
        .collect();
    peers.extend(
        addon
            .spec
            .network_policy
            .iter()
            .flat_map(|n| n.ingress_from.iter().cloned()),
    );
    (!peers.is_empty()).then_some(peers)
}

pub fn network_policy(addon: &ClockifyAddon, s: &Settings) -> Option<NetworkPolicy> {
    if !s.network_policy {
        return None;
    }
    let mut egress_rules = vec![
        egress(vec![port("UDP", 53), port("TCP", 53)]),
        egress(vec![port("TCP", s.db_port)]),
        egress(vec![port("TCP", 443)]),
    ];
    if addon.spec.secrets.redis_url_ref.is_some() {
        egress_rules.push(egress(vec![port("TCP", REDIS_PORT)]));
    }
    // Backups to S3-compatible storage on a port other than 443 (such as MinIO's 9000).
    if let Some(crate::settings::BackupSettings {
        target:
            crate::settings::BackupTarget::S3 {
                endpoint_port: Some(p),
                ..
            },
        ..
    }) = &s.backup
    {
        egress_rules.push(egress(vec![port("TCP", *p)]));
    }
    Some(NetworkPolicy {
        metadata: child_meta(addon, &addon.name_any()),
        spec: Some(NetworkPolicySpec {
            // Every pod of this instance: the add-on's and its migration (and backup) Jobs'.
            pod_selector: Some(LabelSelector {
                match_labels: Some(instance_labels(addon)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(vec![port("TCP", HTTP_PORT)]),
                from: ingress_from(addon, s),
            }]),
            egress: Some(egress_rules),
        }),
    })
}
