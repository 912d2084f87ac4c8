//! The production configuration file (`coffer server --config coffer.toml`).
//!
//! Secrets never appear inline: the root key, TLS key and admin token hash are named by path,
//! and key files are refused when group or world readable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub seal: SealConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    /// Absent: the node runs alone, a one-voter group.
    pub cluster: Option<ClusterConfig>,
}

/// How this node takes part in a cluster.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClusterConfig {
    /// Address the node-to-node (mutual TLS) listener binds.
    pub listen: SocketAddr,
    /// Address other nodes reach this one at; its host must be named by `cert-file`.
    pub advertise: String,
    /// The cluster CA, and this node's certificate and key signed by it.
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The first voters, the same list on every initial node. Ignored once the node has
    /// joined: the replicated membership is the truth from then on.
    #[serde(default)]
    pub initial_members: Vec<MemberConfig>,
    /// Cluster addresses of existing members to ask for admission, for a node added later.
    #[serde(default)]
    pub join: Vec<String>,
    /// With `join`: join as a non-voting learner (serves bounded-stale reads in its region).
    #[serde(default)]
    pub learner: bool,
    /// `lan` (default) or `regions`: Raft timing for round trips under ~10 ms or up to ~150 ms.
    #[serde(default = "default_profile")]
    pub profile: String,
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_min_ms: Option<u64>,
    pub election_timeout_max_ms: Option<u64>,
    pub snapshot_transfer_timeout_ms: Option<u64>,
    /// Reach these node ids at these addresses instead of their advertised ones (NAT, tunnels,
    /// proxies); certificates are still checked against the advertised host.
    #[serde(default)]
    pub peer_addresses: std::collections::BTreeMap<String, String>,
}

fn default_profile() -> String {
    "lan".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MemberConfig {
    pub id: u64,
    pub address: String,
    pub region: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeConfig {
    pub id: u64,
    pub data_dir: PathBuf,
    pub region: String,
    pub geography: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ListenConfig {
    pub address: SocketAddr,
    pub dns_suffix: String,
    /// Marks this listener private (Coffer's private endpoint): see `[network]`.
    #[serde(default)]
    pub private: bool,
}

/// Who may reach vaults, and from where.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkConfig {
    /// Further client listeners marked private: vaults whose public network access is
    /// disabled admit requests that arrive here, and their firewall rules do not apply.
    pub private_listen: Vec<SocketAddr>,
    /// Addresses or CIDR ranges of proxies and load balancers whose PROXY protocol v2 and
    /// `X-Forwarded-For` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// Object ids or client ids of service principals that a vault's `AzureServices` bypass
    /// admits through its firewall.
    pub trusted_services: Vec<String>,
    /// Virtual network name → address ranges, for vaults' virtual network rules. Give every
    /// node the same map.
    pub virtual_networks: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SealConfig {
    pub root_key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthConfig {
    /// The bootstrap token's SHA-256 (hex). The token holds every right, like Vault's root
    /// token: use it to create the first tenant, principals and role assignments, then remove
    /// it from the configuration. Absent: no bootstrap token is accepted.
    pub admin_token_sha256_file: Option<PathBuf>,
}

/// How the node issues and accepts access tokens. Every node of a cluster needs the same
/// `issuer-url` and `audiences`.
#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct IdentityConfig {
    /// Base URL of the token issuer (the authority clients are pointed at), such as
    /// `https://coffer.example.com:8443`. Default: `https://{listen.dns-suffix}`.
    pub issuer_url: Option<String>,
    /// Audiences accepted besides `https://{listen.dns-suffix}` and `https://vault.azure.net`.
    pub audiences: Vec<String>,
    pub token_lifetime_seconds: i64,
    /// External OIDC issuers whose tokens are exchanged (workload identity federation).
    pub trusted_issuer: Vec<TrustedIssuerConfig>,
    pub managed_identity: Option<ManagedIdentityConfig>,
    /// The tenant named by the `WWW-Authenticate` challenge of a 401 (default: `common`).
    pub default_tenant: Option<String>,
    /// Further `https://host[:port]` under which clients reach this node's token endpoint
    /// (besides `issuer-url` and the listen address): client assertions must name one of them.
    pub token_endpoint_urls: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer_url: None,
            audiences: Vec::new(),
            token_lifetime_seconds: 3_600,
            trusted_issuer: Vec::new(),
            managed_identity: None,
            default_tenant: None,
            token_endpoint_urls: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// The `iss` of the external tokens, exactly.
    pub issuer: String,
    /// The issuer's JWKS document (public keys only), read at start. Give this or `jwks-url`.
    pub jwks_file: Option<PathBuf>,
    /// Where the issuer publishes its JWKS (`https://` only); fetched at start and every
    /// 10 minutes, so the issuer's key rotations reach the node.
    pub jwks_url: Option<String>,
    /// CAs trusted when fetching `jwks-url` [default: /etc/ssl/certs/ca-certificates.crt].
    pub jwks_ca_file: Option<PathBuf>,
    /// Audiences the external tokens must carry; default `api://AzureADTokenExchange`.
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ManagedIdentityConfig {
    /// A loopback address; the endpoint is plain HTTP, as App Service's is.
    pub listen: SocketAddr,
    /// Holds the `IDENTITY_HEADER` value workloads on this node send (mode 0600 or stricter
    /// for the server's user; hand it to workloads through their environment).
    pub header_file: PathBuf,
    /// Client ids of the managed identities assigned to this node; the first is the default.
    pub client_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuditConfig {
    /// Defaults to `{data-dir}/audit.log`.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RaftConfig {
    pub snapshot_every: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// A configuration value that is present but wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("parsing {path}: {error}")]
    Parse { path: PathBuf, error: String },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { error, .. } => ConfigError::Parse {
                path: path.to_owned(),
                error,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            error: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.node.id == 0 {
            return invalid("node.id", "must be at least 1");
        }
        if !(60..=86_400).contains(&self.identity.token_lifetime_seconds) {
            return invalid(
                "identity.token-lifetime-seconds",
                "must be between 60 and 86400",
            );
        }
        if let Some(url) = &self.identity.issuer_url
            && (!url.starts_with("https://") || url.ends_with('/'))
        {
            return invalid(
                "identity.issuer-url",
                "must be an https:// URL without a trailing slash",
            );
        }
        for t in &self.identity.trusted_issuer {
            match (&t.jwks_file, &t.jwks_url) {
                (Some(_), None) => {}
                (None, Some(url)) if url.starts_with("https://") => {}
                (None, Some(_)) => {
                    return invalid(
                        "identity.trusted-issuer.jwks-url",
                        "must be an https:// URL",
                    );
                }
                _ => {
                    return invalid(
                        "identity.trusted-issuer",
                        "give exactly one of jwks-file and jwks-url",
                    );
                }
            }
        }
        if let Some(mi) = &self.identity.managed_identity {
            if !mi.listen.ip().is_loopback() {
                return invalid(
                    "identity.managed-identity.listen",
                    "must be a loopback address: the endpoint is plain HTTP",
                );
            }
            if mi.client_ids.is_empty() {
                return invalid(
                    "identity.managed-identity.client-ids",
                    "must name at least one managed identity",
                );
            }
        }
        let region_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !region_ok(&self.node.region) {
            return invalid("node.region", "must be a region name such as eastus");
        }
        if !region_ok(&self.node.geography) {
            return invalid("node.geography", "must be a geography name such as us");
        }
        if self.listen.dns_suffix.is_empty() || self.listen.dns_suffix.contains('/') {
            return invalid(
                "listen.dns-suffix",
                "must be a DNS name such as vault.example.com",
            );
        }
        if self.raft.snapshot_every == 0 {
            return invalid("raft.snapshot-every", "must be at least 1");
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate(self.node.id)?;
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid("log.level", "is not a valid log filter (try info or debug)");
        }
        Ok(())
    }
}

impl ClusterConfig {
    fn validate(&self, node_id: u64) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if self.initial_members.is_empty() == self.join.is_empty() {
            return invalid(
                "cluster",
                "give either initial-members (a new cluster) or join (a new member)".into(),
            );
        }
        if !self.initial_members.is_empty() && !self.initial_members.iter().any(|m| m.id == node_id)
        {
            return invalid(
                "cluster.initial-members",
                format!("must include this node (id {node_id})"),
            );
        }
        let mut ids = std::collections::BTreeSet::new();
        for m in &self.initial_members {
            if m.id == 0 || !ids.insert(m.id) {
                return invalid(
                    "cluster.initial-members",
                    format!("node id {} is 0 or repeated", m.id),
                );
            }
        }
        if self.timeouts().is_none() {
            return invalid(
                "cluster",
                "profile must be lan or regions; heartbeat-ms must be at least 10, and \
                 election-timeout-min-ms at least 3 heartbeats and below election-timeout-max-ms"
                    .into(),
            );
        }
        for key in self.peer_addresses.keys() {
            if key.parse::<u64>().is_err() {
                return invalid("cluster.peer-addresses", format!("{key} is not a node id"));
            }
        }
        Ok(())
    }

    /// The Raft timing: the profile's, with any values given overriding it.
    pub fn timeouts(&self) -> Option<coffer_store::RaftTimeouts> {
        let mut t = match self.profile.as_str() {
            "lan" => coffer_store::RaftTimeouts::LAN,
            "regions" => coffer_store::RaftTimeouts::REGIONS,
            _ => return None,
        };
        if let Some(v) = self.heartbeat_ms {
            t.heartbeat_ms = v;
        }
        if let Some(v) = self.election_timeout_min_ms {
            t.election_min_ms = v;
        }
        if let Some(v) = self.election_timeout_max_ms {
            t.election_max_ms = v;
        }
        if let Some(v) = self.snapshot_transfer_timeout_ms {
            t.snapshot_transfer_ms = v;
        }
        let ok = t.heartbeat_ms >= 10
            && t.election_min_ms >= 3 * t.heartbeat_ms
            && t.election_max_ms > t.election_min_ms;
        ok.then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_config_parses() {
        let text = include_str!("../../deploy/coffer.example.toml");
        let config = Config::parse(text).expect("deploy/coffer.example.toml must stay valid");
        assert_eq!(config.node.id, 1);
        assert_eq!(config.raft.snapshot_every, 10_000);
        assert_eq!(config.network.trusted_proxies, ["10.0.0.0/28"]);
        assert_eq!(config.network.virtual_networks["corp"].len(), 2);
        for text in config.network.virtual_networks.values().flatten() {
            coffer_types::IpNet::parse(text).expect("example ranges parse");
        }
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let text = include_str!("../../deploy/coffer.example.toml");
        let unknown = text.replace(
            "[seal]",
            "[seal]\nroot-key = \"inline secrets are not accepted\"",
        );
        assert!(matches!(
            Config::parse(&unknown),
            Err(ConfigError::Parse { .. })
        ));
        let bad_id = text.replace("id = 1", "id = 0");
        assert!(matches!(
            Config::parse(&bad_id),
            Err(ConfigError::Invalid {
                field: "node.id",
                ..
            })
        ));
        let bad_region = text.replace("region = \"eastus\"", "region = \"East US\"");
        assert!(matches!(
            Config::parse(&bad_region),
            Err(ConfigError::Invalid {
                field: "node.region",
                ..
            })
        ));
    }
}
