//! The `ClockifyAddon` API (clockify-addons.io/v1alpha1).
//!
//! Doc comments on these types become the schema descriptions users read with
//! `kubectl explain`; keep them user-facing. `clockify-operator crd` prints the CRD that
//! `crds/` holds, and CI fails when the two differ.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that pauses reconciliation of one ClockifyAddon.
pub const PAUSED_ANNOTATION: &str = "clockify-addons.io/paused";
/// Set (or change) this annotation to any value, such as the time, to run a backup now. Each
/// value runs one backup; `status.onDemandBackup` records the last value acted on.
pub const BACKUP_NOW_ANNOTATION: &str = "clockify-addons.io/backup-now";

/// Set (or change) this annotation to any value to retry a failed database migration with the
/// same spec. Each value retries once.
pub const RETRY_MIGRATION_ANNOTATION: &str = "clockify-addons.io/retry-migration";

/// A Clockify add-on instance: which add-on, its tier, database, secrets, replicas, monitoring
/// and backups. The clockify-operator runs it as a Deployment with its Service, autoscaler,
/// disruption budget, network policy and ServiceMonitor.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "clockify-addons.io",
    version = "v1alpha1",
    kind = "ClockifyAddon",
    plural = "clockifyaddons",
    singular = "clockifyaddon",
    shortname = "cfa",
    category = "clockify",
    namespaced,
    status = "ClockifyAddonStatus",
    derive = "PartialEq",
    doc = "A Clockify add-on instance run by the clockify-operator.",
    printcolumn(name = "Addon", type_ = "string", json_path = ".spec.addon", description = "Which add-on the pods serve"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier", description = "Subscription tier and sizing profile"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.currentVersion", description = "Version the pods run"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every replica runs the desired version and is ready"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label of at most 40 characters starting with a letter: it names the Service, Deployment and Jobs")
)]
#[x_kube(
    validation = Rule::new("!has(self.restore) || has(self.backup)")
        .message("restore reads from spec.backup.destination: configure backup as well"),
    validation = Rule::new("self.addon != 'universalWebhook' || self.tier == 'ENTERPRISE'")
        .message("universalWebhook needs tier ENTERPRISE (its minimal Clockify plan)"),
    validation = Rule::new("self.addon != 'apiStudio' || self.tier in ['STANDARD', 'PRO', 'ENTERPRISE']")
        .message("apiStudio needs tier STANDARD, PRO or ENTERPRISE (its minimal Clockify plan)")
)]
#[serde(rename_all = "camelCase")]
pub struct ClockifyAddonSpec {
    /// Which add-on the pods serve: apiStudio, universalWebhook or reference. Cannot be changed
    /// once set; create another ClockifyAddon to serve another add-on.
    #[x_kube(validation = Rule::new("self == oldSelf").message("addon cannot be changed; create another ClockifyAddon instead"))]
    pub addon: AddonKind,

    /// Clockify subscription tier: the manifest's minimalSubscriptionPlan and the sizing profile
    /// (resources, replica bounds, disruption budget, backup schedule) that the other fields may
    /// override. FREE, BASIC, STANDARD, PRO or ENTERPRISE.
    pub tier: Tier,

    /// Release of the add-on to run, such as "0.4.0". It is the image tag unless image.tag or
    /// image.digest is set.
    #[schemars(length(min = 1, max = 128))]
    pub version: String,

    /// Image to run instead of the default ghcr.io/clockify-addons/clockify-addons:<version>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<ImageSpec>>,

    /// Public https URL at which Clockify reaches this add-on (the manifest's baseUrl), such as
    /// https://api-studio.example.com.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("baseUrl must be an https:// URL"))]
    pub base_url: String,

    /// Replica bounds and autoscaling. Omitted fields come from the tier. With max greater than
    /// min a HorizontalPodAutoscaler scales the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicasSpec>,

    /// The add-on's PostgreSQL database.
    pub database: DatabaseSpec,

    /// Secrets the add-on needs, by reference to keys of Secrets in this namespace.
    pub secrets: SecretsSpec,

    /// Scheduled backups of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Box<BackupSpec>>,

    /// A one-shot restore of the database from a backup. The operator scales the add-on to
    /// zero, waits until none of its pods is left, restores, migrates, and scales back, once per
    /// requestId: recorded in status.restore and in the database itself, so a ClockifyAddon
    /// created again with the same request (from Git, say) never restores twice. Set a new
    /// requestId to restore again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Box<RestoreSpec>>,

    /// Prometheus monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Box<MonitoringSpec>>,

    /// The NetworkPolicy around the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<Box<NetworkPolicySpec>>,

    /// How Clockify and users reach the add-on at baseUrl's host: an Ingress, or an HTTPRoute
    /// on a Gateway. Only the paths Clockify and the console need are routed (the manifest,
    /// lifecycle and webhook receivers, the console and its scripts, the settings page);
    /// /metrics, /backlog and the probes never are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Box<ExposureSpec>>,

    /// Log filter of the add-on, such as "info" or "info,addon_core=debug". Defaults to "info".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub log_level: Option<String>,

    /// Pod-level settings merged into the pods the operator creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<Box<PodOverrides>>,

    /// Metadata of the add-on's ServiceAccount, used by its pods, migrations, backups and
    /// restores: the annotations workload identity reads, such as eks.amazonaws.com/role-arn
    /// (IRSA), so backups to S3 need no static keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_template: Option<Box<ServiceAccountTemplate>>,
}

/// The ServiceAccount's template (as CloudNativePG's serviceAccountTemplate).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTemplate {
    /// Annotations and labels of the ServiceAccount.
    #[serde(default)]
    pub metadata: TemplateMetadata,
}

/// Annotations and labels merged into an object the operator creates; the operator's own labels
/// are reserved.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Annotations, such as eks.amazonaws.com/role-arn.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('clockify-addons.io/'))").message("annotations under clockify-addons.io/ are the operator's own"))]
    pub annotations: BTreeMap<String, String>,
    /// Labels (app.kubernetes.io/* are the operator's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('app.kubernetes.io/') && !k.startsWith('clockify-addons.io/'))").message("labels under app.kubernetes.io/ and clockify-addons.io/ are the operator's own"))]
    pub labels: BTreeMap<String, String>,
}

/// The add-on a ClockifyAddon serves.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum AddonKind {
    ApiStudio,
    UniversalWebhook,
    Reference,
}

impl AddonKind {
    /// The name the `clockify-addons` binary and labels use.
    pub fn slug(self) -> &'static str {
        match self {
            Self::ApiStudio => "api-studio",
            Self::UniversalWebhook => "universal-webhook",
            Self::Reference => "reference",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiStudio => "apiStudio",
            Self::UniversalWebhook => "universalWebhook",
            Self::Reference => "reference",
        }
    }
}

/// A Clockify subscription tier.
#[derive(
    JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    Free,
    Basic,
    Standard,
    Pro,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "FREE",
            Self::Basic => "BASIC",
            Self::Standard => "STANDARD",
            Self::Pro => "PRO",
            Self::Enterprise => "ENTERPRISE",
        }
    }
}

/// The container image of the add-on.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository. Defaults to ghcr.io/clockify-addons/clockify-addons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub repository: Option<String>,
    /// Image tag. Defaults to spec.version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub tag: Option<String>,
    /// Image digest such as sha256:0123...; when set the image is pinned to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^sha256:[a-f0-9]{64}$')").message("digest must look like sha256:<64 hex digits>"))]
    pub digest: Option<String>,
    /// When the kubelet pulls the image: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Names of Secrets in this namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Replica bounds.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("replicas.min must not be greater than replicas.max"))]
pub struct ReplicasSpec {
    /// Fewest replicas; the Deployment's replica count when it equals max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub min: Option<i32>,
    /// Most replicas the autoscaler may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max: Option<i32>,
    /// Average CPU utilisation the autoscaler aims for, in percent of requests. Defaults to 70.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 10, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Scaling on the work itself where KEDA is served (keda.sh/v1alpha1 ScaledObject): the
    /// flow backlog, request rate and CPU, within min..max. Elsewhere the CPU
    /// HorizontalPodAutoscaler scales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<WorkScaling>,
}

/// Scaling on the work (KEDA).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.requestsPerSecondPerReplica) || has(self.prometheusAddress)").message("requestsPerSecondPerReplica needs prometheusAddress, the Prometheus that scrapes the add-on"))]
pub struct WorkScaling {
    /// false keeps the CPU HorizontalPodAutoscaler even where KEDA is served. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Waiting work (queued webhook deliveries plus due flow executions, the add-on's
    /// `GET /backlog` `waiting`) one replica should carry. Defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub backlog_per_replica: Option<i32>,
    /// Requests per second one replica should serve (KEDA's prometheus trigger on
    /// http_requests_total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub requests_per_second_per_replica: Option<i32>,
    /// The Prometheus server KEDA asks for the request rate, such as
    /// http://prometheus-operated.monitoring.svc:9090.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("prometheusAddress must be an http:// or https:// URL"))]
    pub prometheus_address: Option<String>,
}

/// A key of a Secret in the ClockifyAddon's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret in the ClockifyAddon's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The add-on's PostgreSQL database.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The key holding the postgres:// connection URL, such as a CloudNativePG app Secret's
    /// "uri" key.
    pub url_secret_ref: SecretKeyRef,
    /// TCP port of the database, for the NetworkPolicy's egress rule. Defaults to 5432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// How database migrations run before an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationsSpec>,
}

/// Settings of the migration Job.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsSpec {
    /// Longest a migration Job may run. Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30, max = 86400))]
    pub timeout_seconds: Option<i64>,
    /// Retries of a failed migration Job before the upgrade stops. Defaults to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
}

/// Secrets of the add-on, each by reference.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretsSpec {
    /// The key holding base64 of 32 random bytes that encrypts installation tokens, custom
    /// webhook secrets and flow header values at rest.
    pub token_encryption_key_ref: SecretKeyRef,
    /// Earlier encryption keys that still decrypt while a rotation is under way (the key list
    /// is tokenEncryptionKeyRef first, then these): put the new key in tokenEncryptionKeyRef
    /// and the old one here. The pods roll, keep serving on either key, and re-encrypt every
    /// stored value under the new one in the background; remove the old key once their log
    /// says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub previous_token_encryption_key_refs: Vec<SecretKeyRef>,
    /// The key holding a redis:// URL; when set, every replica shares one Clockify API rate
    /// limit per workspace through Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url_ref: Option<SecretKeyRef>,
}

/// Scheduled database backups.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule in the CronJob format, such as "0 2 * * *" or "@daily". Defaults to the tier's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new(r"self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|((\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*)( +((\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*)){4})$')").message("schedule must be a cron expression of five fields, such as \"0 2 * * *\", or a macro such as @daily"))]
    pub schedule: Option<String>,
    /// Which backups to keep; pruned only after a new backup succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Where backups go: exactly one of pvc or s3.
    pub destination: BackupDestination,
    /// Image with pg_dump and pg_restore. Defaults to the add-on image's -backup variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// Stops scheduling backups while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// A restore request.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// Names this request; each value restores once. Such as "2026-11-22-incident-42".
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')").message("requestId must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    pub request_id: String,
    /// "latest", or a backup id from the destination (`clockify-addons backups`, or
    /// status.lastSuccessfulBackup.backupId).
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self == 'latest' || self.matches('^[A-Za-z0-9][-A-Za-z0-9_.]*$')").message("from must be latest or a backup id"))]
    pub from: String,
}

/// Backup retention.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Keep this many newest backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_last: Option<i32>,
    /// Delete backups older than this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub max_age_days: Option<i32>,
}

/// Where backups are written: set exactly one.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.pvc) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1").message("set exactly one backup destination: pvc or s3"))]
pub struct BackupDestination {
    /// A PersistentVolumeClaim the operator creates for this ClockifyAddon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcDestination>,
    /// S3-compatible object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Destination>,
}

/// A volume for backups.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PvcDestination {
    /// Size of the volume, such as 5Gi.
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// StorageClass of the volume; the cluster default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// An S3-compatible bucket for backups.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub prefix: Option<String>,
    /// Endpoint URL of an S3-compatible service; AWS when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub endpoint: Option<String>,
    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub region: Option<String>,
    /// Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Omit it to use workload
    /// identity instead of static keys: web-identity credentials (AWS_ROLE_ARN and
    /// AWS_WEB_IDENTITY_TOKEN_FILE, as EKS injects them for IRSA) through the add-on's
    /// ServiceAccount, annotated in serviceAccountTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// Prometheus monitoring.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Auto creates a ServiceMonitor when the monitoring.coreos.com/v1 API is served; Enabled
    /// also requires it (and reports when it is missing); Disabled never creates one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorMode>,
    /// Scrape interval, such as 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(ms|s|m|h)$')").message("interval must be a duration such as 30s"))]
    pub interval: Option<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceMonitorMode {
    #[default]
    Auto,
    Enabled,
    Disabled,
}

/// The NetworkPolicy around the pods.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Whether the operator manages a NetworkPolicy (ingress to the service port; egress to
    /// DNS, the database, Redis and HTTPS). Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Who may connect to the add-on's port besides `exposure.controller`, such as the
    /// namespace Prometheus scrapes from. With neither, any pod may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ingress_from: Vec<NetworkPolicyPeer>,
}

/// How the add-on is exposed at baseUrl's host.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ingress) || has(self.gateway)").message("exposure needs ingress, gateway, or both (the Ingress then serves where the Gateway API is not)"))]
pub struct ExposureSpec {
    /// An Ingress (networking.k8s.io/v1) for baseUrl's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressExposure>,
    /// An HTTPRoute (gateway.networking.k8s.io/v1) attached to this Gateway, when the cluster
    /// serves the Gateway API; where it does not, the Ingress is made instead (if `ingress` is
    /// set) and the Exposed condition says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRef>,
    /// Where the ingress controller's (or the Gateway's) pods run: the NetworkPolicy admits them
    /// to the add-on's port, together with `networkPolicy.ingressFrom`. Without either, any
    /// pod may connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<NetworkPolicyPeer>,
}

/// The Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressExposure {
    /// The IngressClass (the cluster's default class when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub class_name: Option<String>,
    /// Annotations for the ingress controller, such as nginx.ingress.kubernetes.io/proxy-body-size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('clockify-addons.io/'))").message("annotations under clockify-addons.io/ are the operator's own"))]
    pub annotations: BTreeMap<String, String>,
    /// TLS for the host: a certificate Secret, or one cert-manager issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
}

/// The Ingress's certificate.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.issuer) && has(self.clusterIssuer))").message("set issuer or clusterIssuer, not both"))]
#[x_kube(validation = Rule::new("has(self.secretName) || has(self.issuer) || has(self.clusterIssuer)").message("tls needs secretName, or a cert-manager issuer or clusterIssuer"))]
pub struct IngressTls {
    /// The kubernetes.io/tls Secret holding the certificate; with an issuer, where cert-manager
    /// writes it (defaults to <name>-tls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub secret_name: Option<String>,
    /// A cert-manager Issuer in this namespace (the annotation cert-manager.io/issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub issuer: Option<String>,
    /// A cert-manager ClusterIssuer (the annotation cert-manager.io/cluster-issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub cluster_issuer: Option<String>,
}

/// The Gateway an HTTPRoute attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// The Gateway's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Defaults to the ClockifyAddon's namespace (another one must allow the route in its
    /// listener's allowedRoutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    /// A listener of the Gateway, such as https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub section_name: Option<String>,
}

/// Pod-level settings merged into the operator's pods.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra pod labels (they never replace the selector labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra environment variables of the add-on container. Secrets (DATABASE_URL, REDIS_URL,
    /// TOKEN_ENCRYPTION_KEY(S) and names ending in _TOKEN, _SECRET, _PASSWORD, _KEY or _KEYS) only through
    /// valueFrom.secretKeyRef, never as a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Node labels the pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How pods spread over zones and nodes; spread over nodes by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// CPU and memory of the add-on container, replacing the tier's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub priority_class_name: Option<String>,
}

/// What the operator observed and did, for people and for GitOps tools (kstatus conditions).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClockifyAddonStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and Available (kstatus), and Paused while paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The version the spec asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// The version every replica runs, once a rollout has completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// Replicas of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Ready replicas of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// In-cluster URL of the add-on's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The latest database migration that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_migration: Option<MigrationRecord>,
    /// The latest backup that finished, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupRecord>,
    /// The latest backup that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<BackupRecord>,
    /// The last value of the clockify-addons.io/backup-now annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_backup: Option<OnDemandBackup>,
    /// The latest restore request and how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
}

/// A backup Job that finished.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// The backup Job.
    pub job: String,
    /// Succeeded or Failed.
    pub result: String,
    /// When the Job started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the Job finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The backup's id in the destination, when the Job reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Where the dump is: s3://bucket/prefix/<namespace>/<name>/<id>.dump or
    /// pvc://<claim>/<id>.dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Size of the dump in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// What the backup reported (its termination message), or why the Job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An on-demand backup the annotation asked for.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OnDemandBackup {
    /// The annotation's value.
    pub request: String,
    /// The Job it started.
    pub job: String,
}

/// Progress of a restore request.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// spec.restore.requestId this describes; a request whose id is recorded here never runs
    /// again.
    pub request_id: String,
    /// The backup asked for.
    pub from: String,
    /// ScalingDown, Restoring, Migrating, ScalingUp, Succeeded or Failed.
    pub phase: RestorePhase,
    /// The restore Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What happened last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the restore Job reported: the backup it restored, or that the database already
    /// holds this request's restore (the restore leaves a record in the database, so a request
    /// is never applied twice, even when this status is lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// When the request was taken up (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it succeeded or failed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The steps of a restore, in order.
#[derive(
    JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum RestorePhase {
    /// The Deployment is scaled to zero; waiting for its pods to stop.
    ScalingDown,
    /// The restore Job runs.
    Restoring,
    /// The migration Job brings the restored schema to this version.
    Migrating,
    /// The Deployment is scaled back; waiting for it to be available.
    ScalingUp,
    Succeeded,
    Failed,
}

impl RestorePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScalingDown => "ScalingDown",
            Self::Restoring => "Restoring",
            Self::Migrating => "Migrating",
            Self::ScalingUp => "ScalingUp",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// A database migration that ran as a Job.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRecord {
    /// The version the database was migrated for.
    pub version: String,
    /// The migration Job.
    pub job: String,
    /// When the Job finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}
