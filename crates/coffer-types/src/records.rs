//! Records as they are persisted in the replicated state.
//!
//! Persisted types are separate from wire types (proto, REST) and carry a `format` number so a
//! newer binary can read what an older one wrote. Byte fields are base64 in the JSON encoding.
//! Secret values are only ever held here sealed (see coffer-crypto).

use serde::{Deserialize, Serialize};

use crate::authz::AccessPolicyEntry;
use crate::error::Error;
use crate::limits::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS};
use crate::tags::Tags;

/// Format of records written by this version.
pub const RECORD_FORMAT: u16 = 1;

/// Vault pricing tier; premium will allow HSM-backed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sku {
    #[default]
    Standard,
    Premium,
}

impl Sku {
    pub fn as_str(self) -> &'static str {
        match self {
            Sku::Standard => "standard",
            Sku::Premium => "premium",
        }
    }
}

/// A vault, with its data key wrapped by the node's root key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultRecord {
    pub format: u16,
    /// Random id of this incarnation of the name: a vault deleted and created again under the
    /// same name is another vault, and writes meant for the old one are refused.
    pub id: String,
    pub name: String,
    pub location: String,
    pub sku: Sku,
    pub retention_days: u32,
    pub purge_protection: bool,
    pub tags: Tags,
    pub created: i64,
    pub updated: i64,
    /// The vault's data key, sealed by the root key. Opaque here.
    #[serde(with = "b64")]
    pub wrapped_key: Vec<u8>,
    /// Which authorization model the vault's data plane uses: RBAC (the default, as for new
    /// Azure vaults) or its access policies. The inactive model's entries are kept.
    #[serde(default = "rbac_by_default")]
    pub enable_rbac_authorization: bool,
    #[serde(default)]
    pub access_policies: Vec<AccessPolicyEntry>,
    /// The tenant whose tokens the vault accepts (Azure's `tenantId`); `None` for a vault
    /// created by the bootstrap token, which accepts tokens of every tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Who may reach the vault's data plane (Azure's `networkAcls` and
    /// `publicNetworkAccess`).
    #[serde(default)]
    pub network: crate::NetworkRuleSet,
    /// The vault's own throttle limits, where they differ from the cluster's defaults.
    #[serde(default)]
    pub throttle: crate::ThrottleLimits,
}

fn rbac_by_default() -> bool {
    true
}

impl VaultRecord {
    /// Checks a retention period given at creation; 0 means the default.
    pub fn validate_retention(days: u32) -> Result<u32, Error> {
        match days {
            0 => Ok(DEFAULT_RETENTION_DAYS),
            d if (MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&d) => Ok(d),
            d => Err(Error::bad_parameter(format!(
                "Soft-delete retention must be between {MIN_RETENTION_DAYS} and \
                 {MAX_RETENTION_DAYS} days; {d} was given."
            ))),
        }
    }

    /// Azure's `recoveryLevel`, derived from retention and purge protection (soft-delete is
    /// always on, as it is for every new Azure vault).
    pub fn recovery_level(&self) -> &'static str {
        let customized = self.retention_days < MAX_RETENTION_DAYS;
        match (customized, self.purge_protection) {
            (false, false) => "Recoverable+Purgeable",
            (false, true) => "Recoverable",
            (true, false) => "CustomizedRecoverable+Purgeable",
            (true, true) => "CustomizedRecoverable",
        }
    }
}

impl std::fmt::Debug for VaultRecord {
    // Hand-written: the wrapped key is ciphertext, but key material of any form stays out of
    // debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultRecord")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("sku", &self.sku)
            .field("retention_days", &self.retention_days)
            .field("purge_protection", &self.purge_protection)
            .finish_non_exhaustive()
    }
}

/// One version of a secret. The value is sealed with the vault's data key, bound to
/// (vault, "secret", name, version).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub format: u16,
    pub name: String,
    pub version: String,
    #[serde(with = "b64")]
    pub sealed_value: Vec<u8>,
    pub content_type: Option<String>,
    pub enabled: bool,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub tags: Tags,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("enabled", &self.enabled)
            .field("not_before", &self.not_before)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Seconds in a day, for retention arithmetic.
pub const DAY_SECONDS: i64 = 86_400;

impl VaultRecord {
    /// `recoverableDays` of the vault's objects: the retention, since soft-delete is always on.
    pub fn recoverable_days(&self) -> u32 {
        self.retention_days
    }

    /// When an object (or the vault) deleted at `deleted_date` is purged for good.
    pub fn scheduled_purge_date(&self, deleted_date: i64) -> i64 {
        deleted_date.saturating_add(i64::from(self.retention_days) * DAY_SECONDS)
    }
}

/// An object in the deleted state. Its versions stay where they were, hidden from every
/// read but the deleted-object operations, until it is recovered or purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedObjectRecord {
    pub format: u16,
    pub kind: crate::ObjectKind,
    /// The name as the object had it.
    pub name: String,
    /// The version that was the latest when the object was deleted.
    pub latest_version: String,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// A deleted vault: its record as it was, kept (name reserved, objects kept) until it is
/// recovered or purged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedVaultRecord {
    pub format: u16,
    pub vault: VaultRecord,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

impl std::fmt::Debug for DeletedVaultRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeletedVaultRecord")
            .field("vault", &self.vault)
            .field("deleted_date", &self.deleted_date)
            .field("scheduled_purge_date", &self.scheduled_purge_date)
            .finish()
    }
}

/// A geography backup key held by this cluster, sealed by the root key. Backups are sealed
/// with the active key of the cluster's geography; every key held can open the backups made
/// with it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeographyKeyRecord {
    pub format: u16,
    /// Derived from the key itself, so every cluster holding the key names it alike.
    pub id: String,
    pub geography: String,
    #[serde(with = "b64")]
    pub sealed_key: Vec<u8>,
    /// When this cluster came to hold the key (created or imported).
    pub added: i64,
    /// Whether it was imported from another cluster.
    pub imported: bool,
}

impl std::fmt::Debug for GeographyKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeographyKeyRecord")
            .field("id", &self.id)
            .field("geography", &self.geography)
            .field("added", &self.added)
            .field("imported", &self.imported)
            .finish_non_exhaustive()
    }
}

pub(crate) mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(retention_days: u32, purge_protection: bool) -> VaultRecord {
        VaultRecord {
            format: RECORD_FORMAT,
            id: "00".repeat(16),
            name: "kv".into(),
            location: "eastus".into(),
            sku: Sku::Standard,
            retention_days,
            purge_protection,
            tags: Tags::default(),
            created: 1,
            updated: 1,
            wrapped_key: vec![0xde, 0xad, 0xbe, 0xef],
            enable_rbac_authorization: true,
            access_policies: Vec::new(),
            network: Default::default(),
            throttle: Default::default(),
            tenant_id: None,
        }
    }

    #[test]
    fn recovery_level_follows_azure() {
        assert_eq!(vault(90, false).recovery_level(), "Recoverable+Purgeable");
        assert_eq!(vault(90, true).recovery_level(), "Recoverable");
        assert_eq!(
            vault(7, false).recovery_level(),
            "CustomizedRecoverable+Purgeable"
        );
        assert_eq!(vault(30, true).recovery_level(), "CustomizedRecoverable");
    }

    #[test]
    fn retention_bounds() {
        assert_eq!(VaultRecord::validate_retention(0).unwrap(), 90);
        assert_eq!(VaultRecord::validate_retention(7).unwrap(), 7);
        assert!(VaultRecord::validate_retention(6).is_err());
        assert!(VaultRecord::validate_retention(91).is_err());
    }

    #[test]
    fn records_round_trip_and_debug_hides_key() {
        let v = vault(90, false);
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.contains("\"wrapped_key\":\"3q2+7w==\""));
        assert_eq!(serde_json::from_str::<VaultRecord>(&json).unwrap(), v);
        assert!(!format!("{v:?}").contains("222"));
        assert!(!format!("{v:?}").contains("wrapped_key"));
    }
}
