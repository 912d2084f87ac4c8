//! The two guards every data request passes before it touches data: the vault's network rule
//! set and its throttle (DESIGN.md §2), and the operations that change them.
//!
//! Both read the vault as this node has applied it, without a read barrier: a rule or limit
//! change takes effect on a node once that node applies it (milliseconds after the commit),
//! and a request never waits on Raft to be judged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use coffer_store::{Applied, Command, VaultPatch};
use coffer_types::authz::{Scope, mgmt};
use coffer_types::network::{Bypass, DefaultAction, Origin, PublicNetworkAccess, Verdict};
use coffer_types::throttle::{ThrottleLimit, ThrottlePatch};
use coffer_types::{
    Error, IpNet, NetworkPatch, ThrottleClass, VaultName, VaultRecord, error::quote_user_text,
};

use crate::auth::CallerKind;
use crate::request::RequestContext;
use crate::throttle::DemandReport;
use crate::vaults::expect_vault;
use crate::{Caller, Service};

/// The node configuration the network rules are judged with.
#[derive(Debug, Clone, Default)]
pub struct NetworkSettings {
    /// Virtual network name → its address ranges (our stand-in for subnets with service
    /// endpoints). Every node of a cluster should map the same names.
    pub virtual_networks: BTreeMap<String, Vec<IpNet>>,
    /// Object ids or application (client) ids of the service principals and managed
    /// identities that a vault's `AzureServices` bypass admits.
    pub trusted_services: BTreeSet<String>,
}

/// Input of [`Service::update_network_rules`]: Azure's names, as text.
#[derive(Debug, Clone, Default)]
pub struct NetworkRulesUpdate {
    pub vault: String,
    pub default_action: Option<String>,
    pub bypass: Option<String>,
    pub public_network_access: Option<String>,
    pub add_ip_rules: Vec<String>,
    pub remove_ip_rules: Vec<String>,
    pub add_virtual_network_rules: Vec<String>,
    pub remove_virtual_network_rules: Vec<String>,
    pub ignore_missing_virtual_network: bool,
}

/// One class's limit as an administrator gives it; burst 0 means one second's worth.
#[derive(Debug, Clone)]
pub struct ThrottleLimitInput {
    pub class: String,
    pub rate: u32,
    pub burst: u32,
}

/// How long a peer waits for another member's demand report.
pub const DEMAND_EXCHANGE_TIMEOUT: Duration = Duration::from_millis(200);

impl Service {
    pub fn with_network(mut self, settings: NetworkSettings) -> Self {
        self.network = std::sync::Arc::new(settings);
        self
    }

    /// The vault named `name` as this node has applied it, for the guards: `None` when the name
    /// is invalid or no such vault is active (the operation then reports that itself).
    pub fn guarded_vault(&self, name: &str) -> Result<Option<VaultRecord>, Error> {
        let Ok(name) = VaultName::parse(name) else {
            return Ok(None);
        };
        Ok(self.store.vault(&name.key())?)
    }

    /// The vault's network verdict for a request from `origin`.
    pub fn judge_origin(&self, vault: &VaultRecord, origin: &Origin) -> Verdict {
        vault.network.judge(origin, |name| {
            self.network
                .virtual_networks
                .get(name)
                .map_or(&[][..], Vec::as_slice)
        })
    }

    /// Whether `caller` is one of the trusted services a vault's `AzureServices` bypass admits.
    pub fn is_trusted_service(&self, caller: &Caller) -> bool {
        matches!(caller.kind, CallerKind::Principal(_))
            && (self.network.trusted_services.contains(&caller.id)
                || caller
                    .app_id
                    .as_ref()
                    .is_some_and(|app| self.network.trusted_services.contains(app)))
    }

    /// Takes one token from the vault's `class` bucket on this node, or refuses with 429 and
    /// the time until a token is free. A refused request takes no token.
    pub fn throttle(&self, vault: &VaultRecord, class: ThrottleClass) -> Result<(), Error> {
        let limit = vault.throttle.limit(class);
        self.throttle
            .check(&vault.name, class, limit, Instant::now())
            .map_err(Error::throttled)
    }

    /// One round of the demand exchange: sends this node's demand to every other member,
    /// takes in their answers (their own demand), and recomputes this node's shares. Run every
    /// few hundred milliseconds (see docs/throttling.md).
    pub async fn exchange_throttle_demand(&self) {
        let now = Instant::now();
        let report = self.throttle.report(now);
        let members = self.store.other_members();
        let body = match serde_json::to_vec(&report) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "encoding the demand report failed");
                return;
            }
        };
        let calls = members.iter().map(|(id, addr)| {
            let body = body.clone();
            async move {
                self.store
                    .call_peer(*id, addr, body, DEMAND_EXCHANGE_TIMEOUT)
                    .await
            }
        });
        for answer in futures::future::join_all(calls).await {
            match answer.map(|bytes| serde_json::from_slice::<DemandReport>(&bytes)) {
                Ok(Ok(theirs)) => self.throttle.absorb(theirs, Instant::now()),
                Ok(Err(e)) => tracing::debug!(error = %e, "a peer's demand report is malformed"),
                Err(e) => tracing::debug!(error = %e, "a peer did not answer the demand exchange"),
            }
        }
        let now = Instant::now();
        self.throttle.rebalance(members.len() + 1, now);
        self.throttle.sweep(now);
    }

    /// Answers another member's demand report with this node's own (the handler of
    /// `RpcKind::Peer`). `sender` is the node id the transport authenticated.
    pub fn answer_demand_report(&self, sender: u64, body: &[u8]) -> Result<Vec<u8>, String> {
        let report: DemandReport =
            serde_json::from_slice(body).map_err(|e| format!("malformed demand report: {e}"))?;
        if report.node != sender {
            return Err(format!(
                "node {sender} sent a demand report in the name of node {}",
                report.node
            ));
        }
        self.throttle.absorb(report, Instant::now());
        serde_json::to_vec(&self.throttle.current_report()).map_err(|e| e.to_string())
    }

    /// Changes the vault's network rule set (management plane: `vaults/write`).
    pub async fn update_network_rules(
        &self,
        ctx: &RequestContext,
        input: NetworkRulesUpdate,
    ) -> Result<VaultRecord, Error> {
        let name = VaultName::parse(&input.vault)?;
        self.authorize(ctx, &Scope::vault(&name.key())?, mgmt::VAULT_WRITE)?;
        let parse_nets = |texts: &[String]| -> Result<Vec<IpNet>, Error> {
            texts.iter().map(|t| IpNet::parse(t)).collect()
        };
        let patch = NetworkPatch {
            default_action: input
                .default_action
                .as_deref()
                .map(DefaultAction::parse)
                .transpose()?,
            bypass: input.bypass.as_deref().map(Bypass::parse).transpose()?,
            public_network_access: input
                .public_network_access
                .as_deref()
                .map(PublicNetworkAccess::parse)
                .transpose()?,
            add_ip_rules: parse_nets(&input.add_ip_rules)?,
            remove_ip_rules: parse_nets(&input.remove_ip_rules)?,
            add_virtual_network_rules: input.add_virtual_network_rules,
            remove_virtual_network_rules: input.remove_virtual_network_rules,
        };
        if !input.ignore_missing_virtual_network {
            for network in &patch.add_virtual_network_rules {
                if !self.network.virtual_networks.contains_key(network) {
                    return Err(Error::bad_parameter(format!(
                        "The virtual network {} is not in this cluster's configuration; add it \
                         to [network.virtual-networks] on every node, or pass \
                         --ignore-missing-vnet-service-endpoint.",
                        quote_user_text(network)
                    )));
                }
            }
        }
        // Checked here too, so that a bad rule is refused before it costs a Raft entry.
        patch.apply(&coffer_types::NetworkRuleSet::default())?;
        self.patch_vault(
            ctx,
            &name,
            VaultPatch {
                network: Some(patch),
                ..VaultPatch::default()
            },
        )
        .await
    }

    /// Sets or resets a vault's throttle limits (`Coffer/cluster/write` at the cluster scope:
    /// limits divide the cluster's capacity).
    pub async fn set_throttle_limits(
        &self,
        ctx: &RequestContext,
        vault: &str,
        set: Vec<ThrottleLimitInput>,
        reset: Vec<String>,
    ) -> Result<VaultRecord, Error> {
        let name = VaultName::parse(vault)?;
        self.authorize(ctx, &Scope::cluster(), mgmt::CLUSTER_WRITE)?;
        let mut patch = ThrottlePatch::default();
        for input in set {
            let class = ThrottleClass::parse(&input.class)?;
            let limit = ThrottleLimit::new(input.rate, input.burst)?;
            if patch.set.insert(class, limit).is_some() {
                return Err(Error::bad_parameter(format!(
                    "The class {class} is given twice."
                )));
            }
        }
        for class in reset {
            let class = ThrottleClass::parse(&class)?;
            if patch.set.contains_key(&class) {
                return Err(Error::bad_parameter(format!(
                    "The class {class} is both set and reset."
                )));
            }
            patch.reset.push(class);
        }
        if patch.set.is_empty() && patch.reset.is_empty() {
            return Err(Error::bad_parameter(
                "Give at least one limit to set or one class to reset.",
            ));
        }
        self.patch_vault(
            ctx,
            &name,
            VaultPatch {
                throttle: Some(patch),
                ..VaultPatch::default()
            },
        )
        .await
    }

    pub(crate) async fn patch_vault(
        &self,
        ctx: &RequestContext,
        name: &VaultName,
        patch: VaultPatch,
    ) -> Result<VaultRecord, Error> {
        let command = Command::UpdateVault {
            vault: name.key(),
            patch: Box::new(patch),
            updated: self.clock.now_unix(),
        };
        let applied: Applied = self
            .store
            .write(ctx.request_id().to_owned(), command)
            .await?;
        expect_vault(applied)
    }
}
