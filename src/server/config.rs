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
    pub auth: AuthConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub log: LogConfig,
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthConfig {
    pub admin_token_sha256_file: PathBuf,
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
