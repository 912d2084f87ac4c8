//! Data-plane operations, with the permission each needs in both of Azure's models.

use serde::{Deserialize, Serialize};

use super::access_policy::PermissionKind;
use crate::names::ObjectKind;

/// Every data-plane operation on secrets, keys and certificates that Coffer authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DataOperation {
    SecretGet,
    SecretList,
    SecretListVersions,
    SecretSet,
    SecretUpdate,
    SecretDelete,
    SecretGetDeleted,
    SecretListDeleted,
    SecretBackup,
    SecretRestore,
    SecretRecover,
    SecretPurge,

    KeyGet,
    KeyList,
    KeyListVersions,
    KeyCreate,
    KeyImport,
    KeyUpdate,
    KeyDelete,
    KeyGetDeleted,
    KeyListDeleted,
    KeyBackup,
    KeyRestore,
    KeyRecover,
    KeyPurge,
    KeyEncrypt,
    KeyDecrypt,
    KeyWrap,
    KeyUnwrap,
    KeySign,
    KeyVerify,
    KeyRelease,
    KeyRotate,
    KeyGetRotationPolicy,
    KeySetRotationPolicy,

    CertificateGet,
    CertificateList,
    CertificateListVersions,
    CertificateCreate,
    CertificateImport,
    CertificateMerge,
    CertificateUpdate,
    CertificateGetPolicy,
    CertificateUpdatePolicy,
    CertificateGetOperation,
    CertificateCancelOperation,
    CertificateDeleteOperation,
    CertificateDelete,
    CertificateGetDeleted,
    CertificateListDeleted,
    CertificateBackup,
    CertificateRestore,
    CertificateRecover,
    CertificatePurge,
    CertificateGetContacts,
    CertificateSetContacts,
    CertificateDeleteContacts,
    CertificateGetIssuer,
    CertificateListIssuers,
    CertificateSetIssuer,
    CertificateUpdateIssuer,
    CertificateDeleteIssuer,
}

macro_rules! vaults {
    ($rest:literal) => {
        concat!("Microsoft.KeyVault/vaults/", $rest)
    };
}

use DataOperation as Op;

const ALL_OPERATIONS: &[DataOperation] = &[
    Op::SecretGet,
    Op::SecretList,
    Op::SecretListVersions,
    Op::SecretSet,
    Op::SecretUpdate,
    Op::SecretDelete,
    Op::SecretGetDeleted,
    Op::SecretListDeleted,
    Op::SecretBackup,
    Op::SecretRestore,
    Op::SecretRecover,
    Op::SecretPurge,
    Op::KeyGet,
    Op::KeyList,
    Op::KeyListVersions,
    Op::KeyCreate,
    Op::KeyImport,
    Op::KeyUpdate,
    Op::KeyDelete,
    Op::KeyGetDeleted,
    Op::KeyListDeleted,
    Op::KeyBackup,
    Op::KeyRestore,
    Op::KeyRecover,
    Op::KeyPurge,
    Op::KeyEncrypt,
    Op::KeyDecrypt,
    Op::KeyWrap,
    Op::KeyUnwrap,
    Op::KeySign,
    Op::KeyVerify,
    Op::KeyRelease,
    Op::KeyRotate,
    Op::KeyGetRotationPolicy,
    Op::KeySetRotationPolicy,
    Op::CertificateGet,
    Op::CertificateList,
    Op::CertificateListVersions,
    Op::CertificateCreate,
    Op::CertificateImport,
    Op::CertificateMerge,
    Op::CertificateUpdate,
    Op::CertificateGetPolicy,
    Op::CertificateUpdatePolicy,
    Op::CertificateGetOperation,
    Op::CertificateCancelOperation,
    Op::CertificateDeleteOperation,
    Op::CertificateDelete,
    Op::CertificateGetDeleted,
    Op::CertificateListDeleted,
    Op::CertificateBackup,
    Op::CertificateRestore,
    Op::CertificateRecover,
    Op::CertificatePurge,
    Op::CertificateGetContacts,
    Op::CertificateSetContacts,
    Op::CertificateDeleteContacts,
    Op::CertificateGetIssuer,
    Op::CertificateListIssuers,
    Op::CertificateSetIssuer,
    Op::CertificateUpdateIssuer,
    Op::CertificateDeleteIssuer,
];

impl DataOperation {
    /// Every operation, for test matrices.
    pub fn all() -> &'static [DataOperation] {
        ALL_OPERATIONS
    }

    /// The kind of object the operation acts on.
    pub fn object_kind(self) -> ObjectKind {
        match self.access_policy_permission().0 {
            PermissionKind::Keys => ObjectKind::Key,
            PermissionKind::Certificates => ObjectKind::Certificate,
            // No operation here needs a storage permission.
            PermissionKind::Secrets | PermissionKind::Storage => ObjectKind::Secret,
        }
    }

    /// The Azure RBAC data action the operation needs.
    ///
    /// Where Azure's vocabulary has no action of its own, the nearest one is used: reading a
    /// deleted object needs the read action of its kind, merging a certificate needs
    /// `certificates/create/action`, and reading certificate contacts needs
    /// `certificates/read` (Azure defines `certificatecontacts/write` but no read action).
    pub fn data_action(self) -> &'static str {
        match self {
            Op::SecretGet => vaults!("secrets/getSecret/action"),
            Op::SecretList
            | Op::SecretListVersions
            | Op::SecretGetDeleted
            | Op::SecretListDeleted => vaults!("secrets/readMetadata/action"),
            Op::SecretSet => vaults!("secrets/setSecret/action"),
            Op::SecretUpdate => vaults!("secrets/update/action"),
            Op::SecretDelete => vaults!("secrets/delete"),
            Op::SecretBackup => vaults!("secrets/backup/action"),
            Op::SecretRestore => vaults!("secrets/restore/action"),
            Op::SecretRecover => vaults!("secrets/recover/action"),
            Op::SecretPurge => vaults!("secrets/purge/action"),

            Op::KeyGet
            | Op::KeyList
            | Op::KeyListVersions
            | Op::KeyGetDeleted
            | Op::KeyListDeleted => {
                vaults!("keys/read")
            }
            Op::KeyCreate => vaults!("keys/create/action"),
            Op::KeyImport => vaults!("keys/import/action"),
            Op::KeyUpdate => vaults!("keys/update/action"),
            Op::KeyDelete => vaults!("keys/delete"),
            Op::KeyBackup => vaults!("keys/backup/action"),
            Op::KeyRestore => vaults!("keys/restore/action"),
            Op::KeyRecover => vaults!("keys/recover/action"),
            Op::KeyPurge => vaults!("keys/purge/action"),
            Op::KeyEncrypt => vaults!("keys/encrypt/action"),
            Op::KeyDecrypt => vaults!("keys/decrypt/action"),
            Op::KeyWrap => vaults!("keys/wrap/action"),
            Op::KeyUnwrap => vaults!("keys/unwrap/action"),
            Op::KeySign => vaults!("keys/sign/action"),
            Op::KeyVerify => vaults!("keys/verify/action"),
            Op::KeyRelease => vaults!("keys/release/action"),
            Op::KeyRotate => vaults!("keys/rotate/action"),
            Op::KeyGetRotationPolicy => vaults!("keyrotationpolicies/read"),
            Op::KeySetRotationPolicy => vaults!("keyrotationpolicies/write"),

            Op::CertificateGet
            | Op::CertificateList
            | Op::CertificateListVersions
            | Op::CertificateGetPolicy
            | Op::CertificateGetOperation
            | Op::CertificateGetDeleted
            | Op::CertificateListDeleted
            | Op::CertificateGetContacts => vaults!("certificates/read"),
            Op::CertificateCreate | Op::CertificateMerge => vaults!("certificates/create/action"),
            Op::CertificateImport => vaults!("certificates/import/action"),
            Op::CertificateUpdate
            | Op::CertificateUpdatePolicy
            | Op::CertificateCancelOperation => {
                vaults!("certificates/update/action")
            }
            Op::CertificateDelete | Op::CertificateDeleteOperation => {
                vaults!("certificates/delete")
            }
            Op::CertificateBackup => vaults!("certificates/backup/action"),
            Op::CertificateRestore => vaults!("certificates/restore/action"),
            Op::CertificateRecover => vaults!("certificates/recover/action"),
            Op::CertificatePurge => vaults!("certificates/purge/action"),
            Op::CertificateSetContacts | Op::CertificateDeleteContacts => {
                vaults!("certificatecontacts/write")
            }
            Op::CertificateGetIssuer | Op::CertificateListIssuers => vaults!("certificatecas/read"),
            Op::CertificateSetIssuer | Op::CertificateUpdateIssuer => {
                vaults!("certificatecas/write")
            }
            Op::CertificateDeleteIssuer => vaults!("certificatecas/delete"),
        }
    }

    /// The vault access-policy permission the operation needs, as Azure's REST reference names
    /// it ("This operation requires the secrets/list permission").
    pub fn access_policy_permission(self) -> (PermissionKind, &'static str) {
        use PermissionKind::{Certificates, Keys, Secrets};
        match self {
            Op::SecretGet => (Secrets, "get"),
            Op::SecretList
            | Op::SecretListVersions
            | Op::SecretGetDeleted
            | Op::SecretListDeleted => (Secrets, "list"),
            Op::SecretSet | Op::SecretUpdate => (Secrets, "set"),
            Op::SecretDelete => (Secrets, "delete"),
            Op::SecretBackup => (Secrets, "backup"),
            Op::SecretRestore => (Secrets, "restore"),
            Op::SecretRecover => (Secrets, "recover"),
            Op::SecretPurge => (Secrets, "purge"),

            Op::KeyGet | Op::KeyGetDeleted => (Keys, "get"),
            Op::KeyList | Op::KeyListVersions | Op::KeyListDeleted => (Keys, "list"),
            Op::KeyCreate => (Keys, "create"),
            Op::KeyImport => (Keys, "import"),
            Op::KeyUpdate => (Keys, "update"),
            Op::KeyDelete => (Keys, "delete"),
            Op::KeyBackup => (Keys, "backup"),
            Op::KeyRestore => (Keys, "restore"),
            Op::KeyRecover => (Keys, "recover"),
            Op::KeyPurge => (Keys, "purge"),
            Op::KeyEncrypt => (Keys, "encrypt"),
            Op::KeyDecrypt => (Keys, "decrypt"),
            Op::KeyWrap => (Keys, "wrapKey"),
            Op::KeyUnwrap => (Keys, "unwrapKey"),
            Op::KeySign => (Keys, "sign"),
            Op::KeyVerify => (Keys, "verify"),
            Op::KeyRelease => (Keys, "release"),
            Op::KeyRotate => (Keys, "rotate"),
            Op::KeyGetRotationPolicy => (Keys, "getrotationpolicy"),
            Op::KeySetRotationPolicy => (Keys, "setrotationpolicy"),

            Op::CertificateGet
            | Op::CertificateGetPolicy
            | Op::CertificateGetOperation
            | Op::CertificateGetDeleted => (Certificates, "get"),
            Op::CertificateList | Op::CertificateListVersions | Op::CertificateListDeleted => {
                (Certificates, "list")
            }
            Op::CertificateCreate | Op::CertificateMerge => (Certificates, "create"),
            Op::CertificateImport => (Certificates, "import"),
            Op::CertificateUpdate
            | Op::CertificateUpdatePolicy
            | Op::CertificateCancelOperation => (Certificates, "update"),
            Op::CertificateDelete | Op::CertificateDeleteOperation => (Certificates, "delete"),
            Op::CertificateBackup => (Certificates, "backup"),
            Op::CertificateRestore => (Certificates, "restore"),
            Op::CertificateRecover => (Certificates, "recover"),
            Op::CertificatePurge => (Certificates, "purge"),
            Op::CertificateGetContacts
            | Op::CertificateSetContacts
            | Op::CertificateDeleteContacts => (Certificates, "managecontacts"),
            Op::CertificateGetIssuer => (Certificates, "getissuers"),
            Op::CertificateListIssuers => (Certificates, "listissuers"),
            Op::CertificateSetIssuer | Op::CertificateUpdateIssuer => (Certificates, "setissuers"),
            Op::CertificateDeleteIssuer => (Certificates, "deleteissuers"),
        }
    }

    /// Azure's wording of the permission in refusals: `secrets get`, `keys wrapKey`.
    pub fn describe(self) -> String {
        let (kind, permission) = self.access_policy_permission();
        format!("{} {permission}", kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::actions::action_matches;

    #[test]
    fn all_lists_every_operation_once() {
        let all = DataOperation::all();
        assert_eq!(all.len(), 62);
        for (i, op) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(op), "{op:?} listed twice");
        }
    }

    #[test]
    fn data_actions_and_permissions_follow_azure() {
        use PermissionKind::*;
        let cases = [
            (
                Op::SecretGet,
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                Secrets,
                "get",
            ),
            (
                Op::SecretListVersions,
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                Secrets,
                "list",
            ),
            (
                Op::SecretUpdate,
                "Microsoft.KeyVault/vaults/secrets/update/action",
                Secrets,
                "set",
            ),
            (
                Op::SecretDelete,
                "Microsoft.KeyVault/vaults/secrets/delete",
                Secrets,
                "delete",
            ),
            (
                Op::KeyWrap,
                "Microsoft.KeyVault/vaults/keys/wrap/action",
                Keys,
                "wrapKey",
            ),
            (
                Op::KeyList,
                "Microsoft.KeyVault/vaults/keys/read",
                Keys,
                "list",
            ),
            (
                Op::KeyGetRotationPolicy,
                "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
                Keys,
                "getrotationpolicy",
            ),
            (
                Op::CertificateList,
                "Microsoft.KeyVault/vaults/certificates/read",
                Certificates,
                "list",
            ),
            (
                Op::CertificateSetIssuer,
                "Microsoft.KeyVault/vaults/certificatecas/write",
                Certificates,
                "setissuers",
            ),
        ];
        for (op, action, kind, permission) in cases {
            assert_eq!(op.data_action(), action, "{op:?}");
            assert_eq!(op.access_policy_permission(), (kind, permission), "{op:?}");
        }
        assert_eq!(Op::SecretGet.describe(), "secrets get");
        assert_eq!(Op::KeyWrap.describe(), "keys wrapKey");
        assert_eq!(
            Op::CertificateGetContacts.describe(),
            "certificates managecontacts"
        );
    }

    #[test]
    fn every_operation_is_consistent_with_its_kind() {
        for &op in DataOperation::all() {
            let (kind, permission) = op.access_policy_permission();
            assert_eq!(kind.canonical(permission), Some(permission), "{op:?}");
            let collection = match op.object_kind() {
                ObjectKind::Secret => "Microsoft.KeyVault/vaults/secrets/*",
                ObjectKind::Key => "Microsoft.KeyVault/vaults/key*",
                ObjectKind::Certificate => "Microsoft.KeyVault/vaults/certificate*",
            };
            assert!(action_matches(collection, op.data_action()), "{op:?}");
            let name = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<DataOperation>(&name).unwrap(), op);
        }
    }
}
