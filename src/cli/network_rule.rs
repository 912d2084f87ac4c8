//! `coffer network-rule add|remove|list`: a vault's firewall rules, as `az keyvault
//! network-rule` manages them. The default action, bypass and public network access are set
//! with `coffer vault update`.

use clap::{Args, Subcommand};
use coffer_client::proto::UpdateNetworkRulesRequest;
use serde_json::Value;

use super::output::{self, Table};
use super::vault::network_acls_json;
use super::{CliError, GlobalArgs};

/// `coffer network-rule ...`.
#[derive(Debug, Args)]
pub struct NetworkRuleArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: NetworkRuleCommand,
}

/// The rules one `add` or `remove` names.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
struct Rules {
    /// An IPv4 or IPv6 address or CIDR range; repeatable.
    #[arg(long, value_name = "CIDR")]
    ip_address: Vec<String>,
    /// A virtual network the cluster configuration maps to address ranges; repeatable.
    #[arg(long, value_name = "NAME")]
    vnet_name: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum NetworkRuleCommand {
    /// Admit an address, range or virtual network.
    Add {
        /// Vault name.
        #[arg(long, short = 'n', visible_alias = "vault")]
        name: String,
        #[command(flatten)]
        rules: Rules,
        /// Accept a virtual network this node's configuration does not map (yet).
        #[arg(long)]
        ignore_missing_vnet_service_endpoint: bool,
    },
    /// Stop admitting an address, range or virtual network.
    Remove {
        /// Vault name.
        #[arg(long, short = 'n', visible_alias = "vault")]
        name: String,
        #[command(flatten)]
        rules: Rules,
    },
    /// List the vault's IP and virtual network rules.
    List {
        /// Vault name.
        #[arg(long, short = 'n', visible_alias = "vault")]
        name: String,
    },
}

pub async fn run(args: NetworkRuleArgs) -> Result<(), CliError> {
    let NetworkRuleArgs { global, command } = args;
    let client = global.connect().await?;
    let vault = match command {
        NetworkRuleCommand::Add {
            name,
            rules,
            ignore_missing_vnet_service_endpoint,
        } => {
            client
                .update_network_rules(UpdateNetworkRulesRequest {
                    vault: name,
                    add_ip_rules: rules.ip_address,
                    add_virtual_network_rules: rules.vnet_name,
                    ignore_missing_virtual_network: ignore_missing_vnet_service_endpoint,
                    ..Default::default()
                })
                .await?
        }
        NetworkRuleCommand::Remove { name, rules } => {
            client
                .update_network_rules(UpdateNetworkRulesRequest {
                    vault: name,
                    remove_ip_rules: rules.ip_address,
                    remove_virtual_network_rules: rules.vnet_name,
                    ..Default::default()
                })
                .await?
        }
        NetworkRuleCommand::List { name } => client.get_vault(&name).await?,
    };
    let acls = network_acls_json(&vault);
    let json = serde_json::json!({
        "ipRules": acls["ipRules"],
        "virtualNetworkRules": acls["virtualNetworkRules"],
    });
    output::print(&global, &json, || rules_table(&acls))
}

fn rules_table(acls: &Value) -> Table {
    let mut rows = Vec::new();
    for (kind, list, field) in [
        ("ip", &acls["ipRules"], "value"),
        ("virtualNetwork", &acls["virtualNetworkRules"], "id"),
    ] {
        for rule in list.as_array().into_iter().flatten() {
            rows.push(vec![
                kind.to_owned(),
                rule[field].as_str().unwrap_or_default().to_owned(),
            ]);
        }
    }
    Table {
        headers: vec!["Kind", "Rule"],
        rows,
    }
}
