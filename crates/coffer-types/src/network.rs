//! A vault's network rule set (Azure's `networkAcls` and `publicNetworkAccess`) and how a
//! request's origin is judged against it.
//!
//! The rule set decides on addresses and listeners only. Whether a refused caller is a trusted
//! service (the `bypass`) needs its identity, which the gateway learns afterwards by
//! authenticating it; [`Verdict`] says whether that question may still admit the request.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::quote_user_text;
use crate::keys::named_enum;
use crate::{Error, IpNet};

/// Azure's limits: at most 1,000 IP rules and 200 virtual-network rules per vault.
pub const MAX_IP_RULES: usize = 1_000;
pub const MAX_VIRTUAL_NETWORK_RULES: usize = 200;

named_enum!(
    /// What happens to an address no rule names.
    DefaultAction, "defaultAction", {
        Allow = "Allow",
        Deny = "Deny",
    }
);

named_enum!(
    /// Whether the cluster's trusted service principals pass the firewall.
    Bypass, "bypass", {
        AzureServices = "AzureServices",
        None = "None",
    }
);

named_enum!(
    /// `Disabled` admits only requests that arrive on a listener marked private (Coffer's
    /// stand-in for a private endpoint).
    PublicNetworkAccess, "publicNetworkAccess", {
        Enabled = "Enabled",
        Disabled = "Disabled",
    }
);

/// The vault's rule set. The default admits everyone, as a new Azure vault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRuleSet {
    pub default_action: DefaultAction,
    pub bypass: Bypass,
    /// Kept sorted and free of duplicates.
    pub ip_rules: Vec<IpNet>,
    /// Names of virtual networks; the cluster configuration maps each to address ranges.
    pub virtual_network_rules: Vec<String>,
    pub public_network_access: PublicNetworkAccess,
}

impl Default for NetworkRuleSet {
    fn default() -> Self {
        Self {
            default_action: DefaultAction::Allow,
            bypass: Bypass::AzureServices,
            ip_rules: Vec::new(),
            virtual_network_rules: Vec::new(),
            public_network_access: PublicNetworkAccess::Enabled,
        }
    }
}

/// Where a request comes from, as the gateway established it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client's address: the TCP peer, or what a trusted proxy reported.
    pub addr: IpAddr,
    /// Whether the request arrived on a listener marked private.
    pub private_listener: bool,
}

/// The rule set's answer for one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Refused by the firewall rules; a trusted service may still pass if the bypass allows.
    Firewall {
        bypass: bool,
    },
    /// Refused because public network access is disabled; a trusted service may still pass
    /// if the bypass allows.
    PublicAccessDisabled {
        bypass: bool,
    },
}

impl Verdict {
    /// Whether a trusted service may pass despite this verdict.
    pub fn bypassable(self) -> bool {
        match self {
            Verdict::Admit => true,
            Verdict::Firewall { bypass } | Verdict::PublicAccessDisabled { bypass } => bypass,
        }
    }

    /// The 403 for a refused request.
    pub fn error(self, origin: &Origin, caller: &str, vault: &str) -> Option<Error> {
        let client = crate::net::canonical_ip(origin.addr).to_string();
        match self {
            Verdict::Admit => None,
            Verdict::Firewall { .. } => Some(Error::forbidden_by_firewall(&client, caller, vault)),
            Verdict::PublicAccessDisabled { .. } => Some(Error::public_network_access_disabled(
                &client, caller, vault,
            )),
        }
    }
}

impl NetworkRuleSet {
    /// Judges `origin`. `virtual_network` gives the address ranges the cluster configuration
    /// maps a network name to (none for a name it does not know).
    ///
    /// A private listener is a private endpoint: as in Azure, the firewall rules apply only to
    /// public traffic.
    pub fn judge<'a>(
        &self,
        origin: &Origin,
        virtual_network: impl Fn(&str) -> &'a [IpNet],
    ) -> Verdict {
        if origin.private_listener {
            return Verdict::Admit;
        }
        let bypass = self.bypass == Bypass::AzureServices;
        if self.public_network_access == PublicNetworkAccess::Disabled {
            return Verdict::PublicAccessDisabled { bypass };
        }
        if self.default_action == DefaultAction::Allow {
            return Verdict::Admit;
        }
        let named = self.ip_rules.iter().any(|net| net.contains(origin.addr))
            || self.virtual_network_rules.iter().any(|name| {
                virtual_network(name)
                    .iter()
                    .any(|n| n.contains(origin.addr))
            });
        if named {
            Verdict::Admit
        } else {
            Verdict::Firewall { bypass }
        }
    }
}

/// A change to a rule set, applied atomically by the state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPatch {
    pub default_action: Option<DefaultAction>,
    pub bypass: Option<Bypass>,
    pub public_network_access: Option<PublicNetworkAccess>,
    pub add_ip_rules: Vec<IpNet>,
    pub remove_ip_rules: Vec<IpNet>,
    pub add_virtual_network_rules: Vec<String>,
    pub remove_virtual_network_rules: Vec<String>,
}

/// A virtual network's name: 1 to 80 letters, digits, `-`, `_` and `.`.
pub fn validate_virtual_network_name(name: &str) -> Result<(), Error> {
    let ok = (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The virtual network name {} is invalid: use 1 to 80 letters, digits, '-', '_' or '.'.",
            quote_user_text(name)
        )))
    }
}

impl NetworkPatch {
    pub fn is_empty(&self) -> bool {
        *self == NetworkPatch::default()
    }

    /// The rule set after this change. Removing a rule that is not there is not an error (as
    /// `az keyvault network-rule remove`); the result must stay within Azure's limits.
    pub fn apply(&self, current: &NetworkRuleSet) -> Result<NetworkRuleSet, Error> {
        for name in self
            .add_virtual_network_rules
            .iter()
            .chain(&self.remove_virtual_network_rules)
        {
            validate_virtual_network_name(name)?;
        }
        let mut next = current.clone();
        if let Some(action) = self.default_action {
            next.default_action = action;
        }
        if let Some(bypass) = self.bypass {
            next.bypass = bypass;
        }
        if let Some(access) = self.public_network_access {
            next.public_network_access = access;
        }
        next.ip_rules.retain(|r| !self.remove_ip_rules.contains(r));
        next.ip_rules.extend(self.add_ip_rules.iter().copied());
        next.ip_rules.sort_by_key(|r| r.to_string());
        next.ip_rules.dedup();
        next.virtual_network_rules
            .retain(|r| !self.remove_virtual_network_rules.contains(r));
        next.virtual_network_rules
            .extend(self.add_virtual_network_rules.iter().cloned());
        next.virtual_network_rules.sort();
        next.virtual_network_rules.dedup();
        if next.ip_rules.len() > MAX_IP_RULES {
            return Err(Error::bad_parameter(format!(
                "A vault holds at most {MAX_IP_RULES} IP rules; this change leaves {}.",
                next.ip_rules.len()
            )));
        }
        if next.virtual_network_rules.len() > MAX_VIRTUAL_NETWORK_RULES {
            return Err(Error::bad_parameter(format!(
                "A vault holds at most {MAX_VIRTUAL_NETWORK_RULES} virtual network rules; this \
                 change leaves {}.",
                next.virtual_network_rules.len()
            )));
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        IpNet::parse(text).unwrap()
    }

    fn public(addr: &str) -> Origin {
        Origin {
            addr: addr.parse().unwrap(),
            private_listener: false,
        }
    }

    #[test]
    fn the_default_admits_everyone_and_deny_admits_only_named_addresses() {
        let none = |_: &str| -> &[IpNet] { &[] };
        let open = NetworkRuleSet::default();
        assert_eq!(open.judge(&public("203.0.113.9"), none), Verdict::Admit);

        let patch = NetworkPatch {
            default_action: Some(DefaultAction::Deny),
            add_ip_rules: vec![net("127.0.0.2"), net("2001:db8::/32")],
            ..NetworkPatch::default()
        };
        let closed = patch.apply(&open).unwrap();
        assert_eq!(closed.judge(&public("127.0.0.2"), none), Verdict::Admit);
        assert_eq!(closed.judge(&public("2001:db8:1::5"), none), Verdict::Admit);
        assert_eq!(
            closed.judge(&public("127.0.0.1"), none),
            Verdict::Firewall { bypass: true }
        );
        assert_eq!(
            closed.judge(&public("::1"), none),
            Verdict::Firewall { bypass: true }
        );
        let private = Origin {
            addr: "127.0.0.1".parse().unwrap(),
            private_listener: true,
        };
        assert_eq!(closed.judge(&private, none), Verdict::Admit);
    }

    #[test]
    fn virtual_networks_are_resolved_by_the_cluster_map() {
        let corp = [net("10.1.0.0/16")];
        let map = |name: &str| -> &[IpNet] { if name == "corp" { &corp } else { &[] } };
        let rules = NetworkPatch {
            default_action: Some(DefaultAction::Deny),
            bypass: Some(Bypass::None),
            add_virtual_network_rules: vec!["corp".into(), "unknown".into()],
            ..NetworkPatch::default()
        }
        .apply(&NetworkRuleSet::default())
        .unwrap();
        assert_eq!(rules.judge(&public("10.1.200.3"), map), Verdict::Admit);
        assert_eq!(
            rules.judge(&public("10.2.0.1"), map),
            Verdict::Firewall { bypass: false }
        );
    }

    #[test]
    fn disabled_public_access_refuses_public_listeners_whatever_the_rules() {
        let none = |_: &str| -> &[IpNet] { &[] };
        let rules = NetworkPatch {
            public_network_access: Some(PublicNetworkAccess::Disabled),
            add_ip_rules: vec![net("127.0.0.1")],
            ..NetworkPatch::default()
        }
        .apply(&NetworkRuleSet::default())
        .unwrap();
        let verdict = rules.judge(&public("127.0.0.1"), none);
        assert_eq!(verdict, Verdict::PublicAccessDisabled { bypass: true });
        let e = verdict
            .error(&public("127.0.0.1"), "caller-1", "prod-kv")
            .unwrap();
        assert_eq!(e.inner, Some(crate::InnerCode::ForbiddenByFirewall));
        assert!(e.message.contains("Client address: 127.0.0.1"));
        assert!(e.message.contains("Vault: prod-kv"));
    }

    #[test]
    fn patches_add_remove_dedup_and_respect_the_limits() {
        let base = NetworkPatch {
            add_ip_rules: vec![net("198.51.100.0/24"), net("198.51.100.0/24")],
            add_virtual_network_rules: vec!["corp".into()],
            ..NetworkPatch::default()
        }
        .apply(&NetworkRuleSet::default())
        .unwrap();
        assert_eq!(base.ip_rules, vec![net("198.51.100.0/24")]);
        let removed = NetworkPatch {
            remove_ip_rules: vec![net("198.51.100.0/24"), net("192.0.2.1")],
            remove_virtual_network_rules: vec!["corp".into()],
            ..NetworkPatch::default()
        }
        .apply(&base)
        .unwrap();
        assert!(removed.ip_rules.is_empty() && removed.virtual_network_rules.is_empty());

        let too_many = NetworkPatch {
            add_ip_rules: (0..=MAX_IP_RULES as u32)
                .map(|i| net(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()))
                .collect(),
            ..NetworkPatch::default()
        };
        assert!(too_many.apply(&NetworkRuleSet::default()).is_err());
        let bad_name = NetworkPatch {
            add_virtual_network_rules: vec!["no spaces".into()],
            ..NetworkPatch::default()
        };
        assert!(bad_name.apply(&NetworkRuleSet::default()).is_err());
    }
}
