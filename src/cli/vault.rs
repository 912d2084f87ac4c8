//! `coffer vault create|show|list|update|delete`, and the lifecycle:
//! `list-deleted|show-deleted|recover|purge|backup|restore`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_client::proto::{
    CreateVaultRequest, SetThrottleLimitsRequest, Tags, ThrottleLimit, UpdateNetworkRulesRequest,
    UpdateVaultRequest, Vault,
};
use serde_json::{Value, json};

use super::args::{SkuArg, parse_tags, sku_name};
use super::backup::{PrivateOutput, streaming_error};
use super::deleted_view::{deleted_vault_json, deleted_vaults_table};
use super::output::{self, Table, cell};
use super::{CliError, GlobalArgs};

/// `coffer vault ...`.
#[derive(Debug, Args)]
pub struct VaultArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: VaultCommand,
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Create a vault.
    Create {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
        /// Location (region label).
        #[arg(long, short = 'l')]
        location: String,
        /// Pricing tier [server default: standard].
        #[arg(long, value_enum)]
        sku: Option<SkuArg>,
        /// Days a deleted vault or secret stays recoverable [server default: 90].
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<u32>,
        /// Forbid purging deleted objects before the retention period ends (irreversible).
        #[arg(long)]
        purge_protection: bool,
        /// Tags, space-separated key=value pairs.
        #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
        tags: Option<Vec<String>>,
        /// Authorize data access by RBAC (true, the default) or by the vault's access
        /// policies (false).
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        enable_rbac_authorization: Option<bool>,
    },
    /// Show a vault.
    Show {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// List vaults.
    List,
    /// Update a vault's SKU, purge protection, tags or authorization model.
    Update {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
        /// New pricing tier.
        #[arg(long, value_enum)]
        sku: Option<SkuArg>,
        /// `true` switches purge protection on; it can never be switched off.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        purge_protection: Option<bool>,
        /// Replace all tags (space-separated key=value; none clears them).
        #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
        tags: Option<Vec<String>>,
        /// Switch the authorization model: RBAC (true) or access policies (false). The other
        /// model's entries are kept.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        enable_rbac_authorization: Option<bool>,
        /// What the firewall does with an address no rule names: Allow or Deny.
        #[arg(long, value_name = "ACTION")]
        default_action: Option<String>,
        /// Whether the cluster's trusted services pass the firewall: AzureServices or None.
        #[arg(long, value_name = "BYPASS")]
        bypass: Option<String>,
        /// Enabled, or Disabled to admit only requests through private listeners.
        #[arg(long, value_name = "STATE")]
        public_network_access: Option<String>,
    },
    /// Show, set or reset a vault's throttle limits (setting them needs Coffer/cluster/write).
    Throttle {
        #[command(subcommand)]
        command: ThrottleCommand,
    },
    /// Delete a vault. It stays recoverable (`vault recover`), with its objects and its name
    /// reserved, until its scheduled purge date; `vault purge` removes it for good sooner.
    Delete {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// List deleted vaults.
    ListDeleted,
    /// Show a deleted vault.
    ShowDeleted {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Recover a deleted vault with its objects.
    Recover {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Delete a deleted vault and its objects for good (refused under purge protection).
    Purge {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Save a backup of a vault: every object, deleted ones included, sealed with the
    /// geography backup key. Streamed to the file as it is made.
    Backup {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
        /// File to write (created with mode 0600; complete or not at all), or a directory to
        /// write `<vault>.backup` in.
        #[arg(long, short = 'f', visible_alias = "file", value_name = "PATH")]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore a vault backup (made by `vault backup`) as a new vault.
    Restore {
        /// Backup file to read.
        #[arg(long = "in", short = 'f', visible_alias = "file", value_name = "PATH")]
        input: PathBuf,
        /// Name of the new vault.
        #[arg(long, short = 'n')]
        name: String,
        /// Location of the new vault [default: the backed-up vault's].
        #[arg(long, short = 'l')]
        location: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ThrottleCommand {
    /// Show the vault's limit for every operation class.
    Show {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Set one class's limit.
    Set {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
        /// Operation class: secrets, keys, certificates or management.
        #[arg(long)]
        class: String,
        /// Operations per second, for the whole cluster.
        #[arg(long)]
        rate: u32,
        /// Operations admitted at once after a quiet spell [default: one second's worth].
        #[arg(long, default_value_t = 0)]
        burst: u32,
    },
    /// Return one class to the cluster default.
    Reset {
        /// Vault name.
        #[arg(long, short = 'n')]
        name: String,
        /// Operation class: secrets, keys, certificates or management.
        #[arg(long)]
        class: String,
    },
}

pub async fn run(args: VaultArgs) -> Result<(), CliError> {
    let VaultArgs { global, command } = args;
    match command {
        VaultCommand::Create {
            name,
            location,
            sku,
            retention_days,
            purge_protection,
            tags,
            enable_rbac_authorization,
        } => {
            // Validate every flag before connecting, so a typo costs no round trip.
            let tags = parse_tags(tags.as_deref().unwrap_or_default())?;
            let request = CreateVaultRequest {
                name,
                location,
                sku: sku.map_or(0, |sku| coffer_client::proto::Sku::from(sku) as i32),
                retention_days: retention_days.unwrap_or(0),
                purge_protection,
                tags,
                enable_rbac_authorization,
            };
            let vault = global.connect().await?.create_vault(request).await?;
            print_one(&global, &vault)
        }
        VaultCommand::Show { name } => {
            let vault = global.connect().await?.get_vault(&name).await?;
            print_one(&global, &vault)
        }
        VaultCommand::List => {
            let vaults = global.connect().await?.list_vaults().await?;
            let json = Value::Array(vaults.iter().map(vault_json).collect());
            output::print(&global, &json, || vault_table(&vaults))
        }
        VaultCommand::Update {
            name,
            sku,
            purge_protection,
            tags,
            enable_rbac_authorization,
            default_action,
            bypass,
            public_network_access,
        } => {
            let tags = tags
                .map(|pairs| parse_tags(&pairs).map(|tags| Tags { tags }))
                .transpose()?;
            let network =
                (default_action.is_some() || bypass.is_some() || public_network_access.is_some())
                    .then(|| UpdateNetworkRulesRequest {
                        vault: name.clone(),
                        default_action,
                        bypass,
                        public_network_access,
                        ..Default::default()
                    });
            let properties = sku.is_some()
                || purge_protection.is_some()
                || tags.is_some()
                || enable_rbac_authorization.is_some();
            let client = global.connect().await?;
            let mut vault = None;
            if properties || network.is_none() {
                let request = UpdateVaultRequest {
                    name,
                    sku: sku.map(|sku| coffer_client::proto::Sku::from(sku) as i32),
                    purge_protection,
                    tags,
                    enable_rbac_authorization,
                };
                vault = Some(client.update_vault(request).await?);
            }
            if let Some(request) = network {
                vault = Some(client.update_network_rules(request).await?);
            }
            match vault {
                Some(vault) => print_one(&global, &vault),
                None => Ok(()),
            }
        }
        VaultCommand::Throttle { command } => {
            let client = global.connect().await?;
            let vault = match command {
                ThrottleCommand::Show { name } => client.get_vault(&name).await?,
                ThrottleCommand::Set {
                    name,
                    class,
                    rate,
                    burst,
                } => {
                    client
                        .set_throttle_limits(SetThrottleLimitsRequest {
                            vault: name,
                            limits: vec![ThrottleLimit {
                                class,
                                rate,
                                burst,
                                default: false,
                            }],
                            reset: Vec::new(),
                        })
                        .await?
                }
                ThrottleCommand::Reset { name, class } => {
                    client
                        .set_throttle_limits(SetThrottleLimitsRequest {
                            vault: name,
                            limits: Vec::new(),
                            reset: vec![class],
                        })
                        .await?
                }
            };
            let json = Value::Array(vault.throttle_limits.iter().map(throttle_json).collect());
            output::print(&global, &json, || throttle_table(&vault.throttle_limits))
        }
        VaultCommand::Delete { name } => {
            // Like `az keyvault delete`, success prints nothing.
            global.connect().await?.delete_vault(&name).await?;
            Ok(())
        }
        VaultCommand::ListDeleted => {
            let deleted = global.connect().await?.list_deleted_vaults().await?;
            let json = Value::Array(deleted.iter().map(deleted_vault_json).collect());
            output::print(&global, &json, || deleted_vaults_table(&deleted))
        }
        VaultCommand::ShowDeleted { name } => {
            let deleted = global.connect().await?.get_deleted_vault(&name).await?;
            output::print(&global, &deleted_vault_json(&deleted), || {
                deleted_vaults_table(std::slice::from_ref(&deleted))
            })
        }
        VaultCommand::Recover { name } => {
            let vault = global.connect().await?.recover_deleted_vault(&name).await?;
            print_one(&global, &vault)
        }
        VaultCommand::Purge { name } => {
            // Like `az keyvault purge`, success prints nothing.
            global.connect().await?.purge_deleted_vault(&name).await?;
            Ok(())
        }
        VaultCommand::Backup { name, out, force } => {
            let out = if out.is_dir() {
                out.join(format!("{name}.backup"))
            } else {
                out
            };
            // Before connecting: an existing file is refused without making a backup.
            let file = PrivateOutput::create(&out, force)?;
            let client = global.connect().await?;
            let mut writer = file.tokio_file()?;
            let bytes = client
                .backup_vault_to(&name, &mut writer)
                .await
                .map_err(|err| streaming_error(&out, err))?;
            drop(writer);
            // Only a complete backup reaches `out`; a failure above removed the partial file.
            file.commit()?;
            let path = out.display().to_string();
            output::print(&global, &json!({ "file": path, "bytes": bytes }), || {
                Table {
                    headers: vec!["File", "Bytes"],
                    rows: vec![vec![path.clone(), bytes.to_string()]],
                }
            })
        }
        VaultCommand::Restore {
            input,
            name,
            location,
        } => {
            let file = tokio::fs::File::open(&input)
                .await
                .map_err(|err| CliError::file(&input, err))?;
            let vault = global
                .connect()
                .await?
                .restore_vault_from(&name, location.as_deref(), file)
                .await
                .map_err(|err| streaming_error(&input, err))?;
            print_one(&global, &vault)
        }
    }
}

fn print_one(global: &GlobalArgs, vault: &Vault) -> Result<(), CliError> {
    output::print(global, &vault_json(vault), || {
        vault_table(std::slice::from_ref(vault))
    })
}

/// The JSON form of a vault.
pub fn vault_json(vault: &Vault) -> Value {
    json!({
        "name": vault.name,
        "location": vault.location,
        "sku": sku_name(vault.sku),
        "retentionDays": vault.retention_days,
        "purgeProtection": vault.purge_protection,
        "tags": vault.tags,
        "created": output::time_json(vault.created),
        "updated": output::time_json(vault.updated),
        "vaultUri": vault.vault_uri,
        "enableRbacAuthorization": vault.enable_rbac_authorization,
        "networkAcls": network_acls_json(vault),
        "publicNetworkAccess": vault.public_network_access,
        "throttleLimits": vault.throttle_limits.iter().map(throttle_json).collect::<Vec<_>>(),
    })
}

/// `networkAcls` as `az keyvault show` prints it.
pub fn network_acls_json(vault: &Vault) -> Value {
    let acls = vault.network_acls.clone().unwrap_or_default();
    json!({
        "defaultAction": acls.default_action,
        "bypass": acls.bypass,
        "ipRules": acls.ip_rules.iter().map(|r| json!({ "value": r })).collect::<Vec<_>>(),
        "virtualNetworkRules": acls
            .virtual_network_rules
            .iter()
            .map(|r| json!({ "id": r }))
            .collect::<Vec<_>>(),
    })
}

fn throttle_json(limit: &ThrottleLimit) -> Value {
    json!({
        "class": limit.class,
        "rate": limit.rate,
        "burst": limit.burst,
        "default": limit.default,
    })
}

fn throttle_table(limits: &[ThrottleLimit]) -> Table {
    Table {
        headers: vec!["Class", "Rate/s", "Burst", "Default"],
        rows: limits
            .iter()
            .map(|l| {
                vec![
                    l.class.clone(),
                    l.rate.to_string(),
                    l.burst.to_string(),
                    l.default.to_string(),
                ]
            })
            .collect(),
    }
}

fn vault_table(vaults: &[Vault]) -> Table {
    Table {
        headers: vec![
            "Name",
            "Location",
            "Sku",
            "RetentionDays",
            "PurgeProtection",
            "Created",
        ],
        rows: vaults
            .iter()
            .map(|vault| {
                vec![
                    vault.name.clone(),
                    vault.location.clone(),
                    sku_name(vault.sku).to_owned(),
                    vault.retention_days.to_string(),
                    vault.purge_protection.to_string(),
                    cell(&output::time_json(vault.created)),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use coffer_client::proto::Sku;

    #[test]
    fn vault_json_shape() {
        let vault = Vault {
            name: "kv1".to_owned(),
            location: "home".to_owned(),
            sku: Sku::Premium as i32,
            retention_days: 7,
            purge_protection: true,
            tags: [("env".to_owned(), "prod".to_owned())].into(),
            created: 0,
            updated: 60,
            vault_uri: "https://kv1.vault.local".to_owned(),
            enable_rbac_authorization: true,
            network_acls: Some(coffer_client::proto::NetworkRuleSet {
                default_action: "Deny".into(),
                bypass: "None".into(),
                ip_rules: vec!["203.0.113.0/24".into()],
                virtual_network_rules: vec!["corp".into()],
            }),
            public_network_access: "Disabled".into(),
            throttle_limits: vec![ThrottleLimit {
                class: "secrets".into(),
                rate: 50,
                burst: 10,
                default: false,
            }],
        };
        assert_eq!(
            vault_json(&vault),
            json!({
                "name": "kv1", "location": "home", "sku": "premium", "retentionDays": 7,
                "purgeProtection": true, "tags": {"env": "prod"},
                "created": "1970-01-01T00:00:00Z", "updated": "1970-01-01T00:01:00Z",
                "vaultUri": "https://kv1.vault.local", "enableRbacAuthorization": true,
                "networkAcls": {
                    "defaultAction": "Deny", "bypass": "None",
                    "ipRules": [{"value": "203.0.113.0/24"}],
                    "virtualNetworkRules": [{"id": "corp"}]
                },
                "publicNetworkAccess": "Disabled",
                "throttleLimits": [{"class": "secrets", "rate": 50, "burst": 10, "default": false}]
            })
        );
    }
}
