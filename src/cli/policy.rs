//! `coffer policy set|delete|list`: vault access policies, shaped after `az keyvault
//! set-policy|delete-policy` and the `accessPolicies` of `az keyvault show`.
//!
//! As in `az`, `set` changes only the kinds of permission it is given: the others keep what
//! the principal's policy already grants. The server replaces a policy whole, so `set` reads
//! the vault's policies first and fills in the kinds not given; two concurrent `set`s for the
//! same principal can therefore lose one's change, as with `az`.

use clap::{ArgGroup, Args, Subcommand};
use coffer_client::CofferClient;
use coffer_client::proto::{AccessPolicy, SetAccessPolicyRequest};
use serde_json::{Value, json};

use super::output::{self, Table};
use super::{CliError, GlobalArgs};

/// `coffer policy ...`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: PolicyCommand,
}

/// The permission flags of `policy set`; each takes space-separated names (`get list set`).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("permissions").required(true).multiple(true)
    .args(["secret_permissions", "key_permissions", "certificate_permissions", "storage_permissions"])))]
struct Permissions {
    /// Secret permissions, e.g. get list set delete (none: revoke all).
    #[arg(long, num_args = 0.., value_name = "PERMISSION")]
    secret_permissions: Option<Vec<String>>,
    /// Key permissions, e.g. get list create sign.
    #[arg(long, num_args = 0.., value_name = "PERMISSION")]
    key_permissions: Option<Vec<String>>,
    /// Certificate permissions, e.g. get list create import.
    #[arg(long, num_args = 0.., value_name = "PERMISSION")]
    certificate_permissions: Option<Vec<String>>,
    /// Storage account permissions.
    #[arg(long, num_args = 0.., value_name = "PERMISSION")]
    storage_permissions: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Grant a principal permissions on a vault's objects (vaults with RBAC switched off).
    Set {
        /// Vault name.
        #[arg(long, visible_alias = "name")]
        vault: String,
        /// Object id (or client id) of the principal.
        #[arg(long)]
        object_id: String,
        #[command(flatten)]
        permissions: Permissions,
    },
    /// Remove a principal's access policy from a vault.
    Delete {
        /// Vault name.
        #[arg(long, visible_alias = "name")]
        vault: String,
        /// Object id (or client id) of the principal.
        #[arg(long)]
        object_id: String,
    },
    /// List a vault's access policies.
    List {
        /// Vault name.
        #[arg(long, visible_alias = "name")]
        vault: String,
    },
}

pub async fn run(args: PolicyArgs) -> Result<(), CliError> {
    let PolicyArgs { global, command } = args;
    match command {
        PolicyCommand::Set {
            vault,
            object_id,
            permissions,
        } => {
            let client = global.connect().await?;
            let current = current_policy(&client, &vault, &object_id, &permissions).await?;
            let request = merge(vault, object_id, permissions, current.as_ref());
            let policy = client.set_access_policy(request).await?;
            output::print(&global, &policy_json(&policy), || {
                policy_table(std::slice::from_ref(&policy))
            })
        }
        PolicyCommand::Delete { vault, object_id } => {
            global
                .connect()
                .await?
                .delete_access_policy(&vault, &object_id)
                .await?;
            Ok(())
        }
        PolicyCommand::List { vault } => {
            let response = global.connect().await?.list_access_policies(&vault).await?;
            if response.enable_rbac_authorization && !response.policies.is_empty() {
                eprintln!(
                    "note: vault {vault} authorizes with RBAC; these access policies take effect \
                     only after `coffer vault update --name {vault} --enable-rbac-authorization \
                     false`"
                );
            }
            let json = Value::Array(response.policies.iter().map(policy_json).collect());
            output::print(&global, &json, || policy_table(&response.policies))
        }
    }
}

/// The principal's policy as it stands, when `set` leaves some kinds of permission out.
async fn current_policy(
    client: &CofferClient,
    vault: &str,
    id: &str,
    permissions: &Permissions,
) -> Result<Option<AccessPolicy>, CliError> {
    let complete = permissions.secret_permissions.is_some()
        && permissions.key_permissions.is_some()
        && permissions.certificate_permissions.is_some()
        && permissions.storage_permissions.is_some();
    if complete {
        return Ok(None);
    }
    let policies = client.list_access_policies(vault).await?.policies;
    if let Some(policy) = policies.iter().find(|p| p.object_id == id) {
        return Ok(Some(policy.clone()));
    }
    if policies.is_empty() {
        return Ok(None);
    }
    // The flag may hold a client id; policies are keyed by object id. A caller who may not
    // read principals simply gets no merge, as for a principal without a policy.
    Ok(match client.get_principal(id).await {
        Ok(principal) => policies
            .into_iter()
            .find(|p| p.object_id == principal.object_id),
        Err(_) => None,
    })
}

/// The request for `set`: each kind given replaces that kind; the others keep `current`'s.
fn merge(
    vault: String,
    principal: String,
    permissions: Permissions,
    current: Option<&AccessPolicy>,
) -> SetAccessPolicyRequest {
    SetAccessPolicyRequest {
        vault,
        principal,
        secrets: permissions
            .secret_permissions
            .unwrap_or_else(|| current_or_empty(current, |p| &p.secrets)),
        keys: permissions
            .key_permissions
            .unwrap_or_else(|| current_or_empty(current, |p| &p.keys)),
        certificates: permissions
            .certificate_permissions
            .unwrap_or_else(|| current_or_empty(current, |p| &p.certificates)),
        storage: permissions
            .storage_permissions
            .unwrap_or_else(|| current_or_empty(current, |p| &p.storage)),
    }
}

fn current_or_empty(
    policy: Option<&AccessPolicy>,
    pick: fn(&AccessPolicy) -> &Vec<String>,
) -> Vec<String> {
    policy.map(|p| pick(p).clone()).unwrap_or_default()
}

/// The shape of one entry of `accessPolicies` in `az keyvault show`.
pub fn policy_json(policy: &AccessPolicy) -> Value {
    json!({
        "tenantId": policy.tenant_id,
        "objectId": policy.object_id,
        "permissions": {
            "keys": policy.keys,
            "secrets": policy.secrets,
            "certificates": policy.certificates,
            "storage": policy.storage,
        },
    })
}

fn policy_table(policies: &[AccessPolicy]) -> Table {
    Table {
        headers: vec!["ObjectId", "Tenant", "Secrets", "Keys", "Certificates"],
        rows: policies
            .iter()
            .map(|p| {
                vec![
                    p.object_id.clone(),
                    p.tenant_id.clone(),
                    p.secrets.join(" "),
                    p.keys.join(" "),
                    p.certificates.join(" "),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn set_replaces_the_kinds_given_and_keeps_the_others() {
        let current = AccessPolicy {
            vault: "kv".into(),
            tenant_id: "t".into(),
            object_id: "oid".into(),
            keys: list(&["get", "sign"]),
            secrets: list(&["get"]),
            certificates: list(&["list"]),
            storage: vec![],
        };
        let permissions = Permissions {
            secret_permissions: Some(list(&["get", "list", "set"])),
            key_permissions: None,
            certificate_permissions: Some(vec![]),
            storage_permissions: None,
        };
        let request = merge("kv".into(), "oid".into(), permissions, Some(&current));
        assert_eq!(request.secrets, list(&["get", "list", "set"]));
        assert_eq!(request.keys, list(&["get", "sign"]));
        assert!(request.certificates.is_empty(), "an empty flag revokes");
        assert!(request.storage.is_empty());
        assert_eq!(
            (request.vault.as_str(), request.principal.as_str()),
            ("kv", "oid")
        );

        let fresh = merge(
            "kv".into(),
            "oid".into(),
            Permissions {
                secret_permissions: Some(list(&["get"])),
                key_permissions: None,
                certificate_permissions: None,
                storage_permissions: None,
            },
            None,
        );
        assert_eq!(fresh.secrets, list(&["get"]));
        assert!(fresh.keys.is_empty() && fresh.certificates.is_empty());
    }

    #[test]
    fn policy_json_is_shaped_like_az() {
        let policy = AccessPolicy {
            vault: "kv".into(),
            tenant_id: "t".into(),
            object_id: "oid".into(),
            keys: vec![],
            secrets: list(&["get"]),
            certificates: vec![],
            storage: vec![],
        };
        assert_eq!(
            policy_json(&policy),
            json!({"tenantId": "t", "objectId": "oid",
                   "permissions": {"keys": [], "secrets": ["get"], "certificates": [], "storage": []}})
        );
    }
}
