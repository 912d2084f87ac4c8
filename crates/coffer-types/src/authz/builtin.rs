//! The built-in roles: Azure's Key Vault roles and general roles, with Azure's ids, plus two
//! roles of Coffer's own.
//!
//! Azure's definitions also carry actions for resource providers Coffer does not have
//! (`Microsoft.Insights`, `Microsoft.Resources`, `Microsoft.Support`, `Microsoft.EventGrid`,
//! …); those are left out, everything about Key Vault and authorization is kept. One addition:
//! the Key Vault roles that hold `Microsoft.KeyVault/vaults/*/read` also hold
//! `Microsoft.KeyVault/vaults/read`, the vault's own properties, which Azure documents these
//! roles as reading but which that pattern does not match (its `*` sits between two slashes).

use std::sync::LazyLock;

use super::roles::RoleDefinition;
use super::scope::Scope;

/// Role definition ids, as Azure assigns them (and two of Coffer's own).
pub mod role_ids {
    pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
    pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
    pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
    pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
    pub const KEY_VAULT_READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";
    pub const KEY_VAULT_SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";
    pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
    pub const KEY_VAULT_CRYPTO_OFFICER: &str = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
    pub const KEY_VAULT_CRYPTO_USER: &str = "12338af0-0e69-4776-bea7-57ae8d297424";
    pub const KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: &str =
        "e147488a-f6f5-4113-8e2d-b22465e65bf6";
    pub const KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER: &str = "08bbd89e-9f13-488c-ac41-acfcb10c90ab";
    pub const KEY_VAULT_CERTIFICATES_OFFICER: &str = "a4417e6f-fecd-4de8-b567-7b0420556985";
    pub const KEY_VAULT_CERTIFICATE_USER: &str = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba";
    pub const KEY_VAULT_DATA_ACCESS_ADMINISTRATOR: &str = "8b54135c-b56d-4d72-a534-26097cfdc8d8";
    pub const KEY_VAULT_CONTRIBUTOR: &str = "f25e0fa2-a7c8-4377-a976-54943a77a395";
    /// Coffer's own (no Azure equivalent): operates the cluster (`Coffer/cluster/*`).
    pub const COFFER_CLUSTER_OPERATOR: &str = "c0ffe400-0000-4000-a000-000000000001";
    /// Coffer's own (no Azure equivalent): manages identities (`Coffer/identity/*`).
    pub const COFFER_IDENTITY_ADMINISTRATOR: &str = "c0ffe400-0000-4000-a000-000000000002";
}

use role_ids as ids;

/// The Key Vault data roles Key Vault Data Access Administrator may assign and unassign.
const DATA_ROLES: &[&str] = &[
    ids::KEY_VAULT_ADMINISTRATOR,
    ids::KEY_VAULT_READER,
    ids::KEY_VAULT_SECRETS_OFFICER,
    ids::KEY_VAULT_SECRETS_USER,
    ids::KEY_VAULT_CRYPTO_OFFICER,
    ids::KEY_VAULT_CRYPTO_USER,
    ids::KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    ids::KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER,
    ids::KEY_VAULT_CERTIFICATES_OFFICER,
    ids::KEY_VAULT_CERTIFICATE_USER,
];

/// The management actions of the Key Vault roles that can see vaults (Azure's set, less other
/// providers, plus `vaults/read`: see the module documentation).
const KV_READS: &[&str] = &[
    "Microsoft.Authorization/*/read",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/vaults/read",
    "Microsoft.KeyVault/operations/read",
];

const NONE: &[&str] = &[];

struct Spec {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    actions: &'static [&'static str],
    not_actions: &'static [&'static str],
    data_actions: &'static [&'static str],
    assignable_roles: Option<&'static [&'static str]>,
}

const SPECS: &[Spec] = &[
    Spec {
        id: ids::OWNER,
        name: "Owner",
        description: "Full access to manage everything, including assigning roles. No data \
                      plane access by itself.",
        actions: &["*"],
        not_actions: NONE,
        data_actions: NONE,
        assignable_roles: None,
    },
    Spec {
        id: ids::CONTRIBUTOR,
        name: "Contributor",
        description: "Full access to manage everything, but not to assign roles. No data plane \
                      access by itself.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
        ],
        data_actions: NONE,
        assignable_roles: None,
    },
    Spec {
        id: ids::READER,
        name: "Reader",
        description: "View everything on the management plane, change nothing.",
        actions: &["*/read"],
        not_actions: NONE,
        data_actions: NONE,
        assignable_roles: None,
    },
    Spec {
        id: ids::USER_ACCESS_ADMINISTRATOR,
        name: "User Access Administrator",
        description: "Manage role assignments and view everything on the management plane.",
        actions: &["*/read", "Microsoft.Authorization/*"],
        not_actions: NONE,
        data_actions: NONE,
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_ADMINISTRATOR,
        name: "Key Vault Administrator",
        description: "Perform every data plane operation on a vault and everything in it. \
                      Cannot manage vaults or role assignments.",
        actions: KV_READS,
        not_actions: NONE,
        data_actions: &["Microsoft.KeyVault/vaults/*"],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_READER,
        name: "Key Vault Reader",
        description: "Read the metadata of vaults and of their secrets, keys and certificates, \
                      but no secret value or key material.",
        actions: KV_READS,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_SECRETS_OFFICER,
        name: "Key Vault Secrets Officer",
        description: "Perform any action on the secrets of a vault, except manage permissions.",
        actions: KV_READS,
        not_actions: NONE,
        data_actions: &["Microsoft.KeyVault/vaults/secrets/*"],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_SECRETS_USER,
        name: "Key Vault Secrets User",
        description: "Read secret values and metadata.",
        actions: NONE,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_CRYPTO_OFFICER,
        name: "Key Vault Crypto Officer",
        description: "Perform any action on the keys of a vault, except manage permissions.",
        actions: KV_READS,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_CRYPTO_USER,
        name: "Key Vault Crypto User",
        description: "Perform cryptographic operations with keys.",
        actions: NONE,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/update/action",
            "Microsoft.KeyVault/vaults/keys/backup/action",
            "Microsoft.KeyVault/vaults/keys/encrypt/action",
            "Microsoft.KeyVault/vaults/keys/decrypt/action",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
            "Microsoft.KeyVault/vaults/keys/sign/action",
            "Microsoft.KeyVault/vaults/keys/verify/action",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
        name: "Key Vault Crypto Service Encryption User",
        description: "Read key metadata and wrap and unwrap with keys.",
        actions: NONE,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER,
        name: "Key Vault Crypto Service Release User",
        description: "Release keys.",
        actions: NONE,
        not_actions: NONE,
        data_actions: &["Microsoft.KeyVault/vaults/keys/release/action"],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_CERTIFICATES_OFFICER,
        name: "Key Vault Certificates Officer",
        description: "Perform any action on the certificates of a vault, except manage \
                      permissions.",
        actions: KV_READS,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/certificatecas/*",
            "Microsoft.KeyVault/vaults/certificates/*",
            "Microsoft.KeyVault/vaults/certificatecontacts/write",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_CERTIFICATE_USER,
        name: "Key Vault Certificate User",
        description: "Read certificates, including the secret and key behind them.",
        actions: NONE,
        not_actions: NONE,
        data_actions: &[
            "Microsoft.KeyVault/vaults/certificates/read",
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            "Microsoft.KeyVault/vaults/keys/read",
        ],
        assignable_roles: None,
    },
    Spec {
        id: ids::KEY_VAULT_DATA_ACCESS_ADMINISTRATOR,
        name: "Key Vault Data Access Administrator",
        description: "Manage access to vaults by adding or removing assignments of the Key \
                      Vault data roles.",
        actions: &[
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "Microsoft.Authorization/*/read",
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/read",
        ],
        not_actions: NONE,
        data_actions: NONE,
        assignable_roles: Some(DATA_ROLES),
    },
    Spec {
        id: ids::KEY_VAULT_CONTRIBUTOR,
        name: "Key Vault Contributor",
        description: "Manage vaults, but not role assignments, and no access to secrets, keys \
                      or certificates. Can grant itself data access through access policies.",
        actions: &["Microsoft.Authorization/*/read", "Microsoft.KeyVault/*"],
        not_actions: &[
            "Microsoft.KeyVault/locations/deletedVaults/purge/action",
            "Microsoft.KeyVault/hsmPools/*",
            "Microsoft.KeyVault/managedHsms/*",
        ],
        data_actions: NONE,
        assignable_roles: None,
    },
    Spec {
        id: ids::COFFER_CLUSTER_OPERATOR,
        name: "Coffer Cluster Operator",
        description: "Coffer-specific: view and operate the cluster (members, snapshots, \
                      status).",
        actions: &["Coffer/cluster/*"],
        not_actions: NONE,
        data_actions: NONE,
        assignable_roles: None,
    },
    Spec {
        id: ids::COFFER_IDENTITY_ADMINISTRATOR,
        name: "Coffer Identity Administrator",
        description: "Coffer-specific: create, change and delete tenants, principals and their \
                      credentials.",
        actions: &["Coffer/identity/*"],
        not_actions: NONE,
        data_actions: NONE,
        assignable_roles: None,
    },
];

static BUILT_IN: LazyLock<Vec<RoleDefinition>> = LazyLock::new(|| {
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    SPECS
        .iter()
        .map(|spec| RoleDefinition {
            id: spec.id.to_owned(),
            name: spec.name.to_owned(),
            description: spec.description.to_owned(),
            actions: owned(spec.actions),
            not_actions: owned(spec.not_actions),
            data_actions: owned(spec.data_actions),
            not_data_actions: Vec::new(),
            assignable_scopes: vec![Scope::cluster()],
            built_in: true,
            assignable_roles: spec.assignable_roles.map(owned),
        })
        .collect()
});

/// Every built-in role, built once.
pub fn built_in_roles() -> &'static [RoleDefinition] {
    &BUILT_IN
}

/// The built-in role with this name or id (ASCII case ignored; the id may also be given in
/// Azure's full form `/providers/Microsoft.Authorization/roleDefinitions/{id}`).
pub fn find_built_in(name_or_id: &str) -> Option<&'static RoleDefinition> {
    const PREFIX: &str = "/providers/microsoft.authorization/roledefinitions/";
    let key = match name_or_id.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &name_or_id[PREFIX.len()..],
        _ => name_or_id,
    };
    built_in_roles()
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::mgmt;
    use crate::authz::operation::DataOperation;
    use crate::authz::roles::is_guid;

    fn role(name: &str) -> &'static RoleDefinition {
        find_built_in(name).unwrap()
    }

    #[test]
    fn built_ins_are_well_formed_and_findable() {
        let all = built_in_roles();
        assert_eq!(all.len(), 18);
        for (i, r) in all.iter().enumerate() {
            assert!(is_guid(&r.id), "{}", r.name);
            assert!(r.built_in && r.assignable_scopes == [Scope::cluster()]);
            assert!(
                all[i + 1..]
                    .iter()
                    .all(|o| o.id != r.id && o.name != r.name)
            );
            assert_eq!(find_built_in(&r.id).unwrap().name, r.name);
            assert_eq!(find_built_in(&r.name.to_uppercase()).unwrap().id, r.id);
            // Valid in every respect but being built in, and sharing a name and id.
            let mut copy = r.clone();
            copy.built_in = false;
            copy.id = "5d4e6f7a-1b2c-4d3e-8f9a-0b1c2d3e4f5a".into();
            copy.name = format!("Copy of {}", r.name);
            assert_eq!(copy.validate(), Ok(()), "{}", r.name);
        }
        assert_eq!(
            find_built_in(
                "/providers/Microsoft.Authorization/roleDefinitions/4633458B-17DE-408A-B874-0445C86B69E6"
            )
            .unwrap()
            .name,
            "Key Vault Secrets User"
        );
        assert!(find_built_in("Key Vault").is_none());
        assert!(find_built_in("").is_none());
    }

    /// Expected allow/deny of every secret operation, by role.
    #[test]
    fn secret_operations_by_built_in_role() {
        use DataOperation as Op;
        let secret_ops: Vec<DataOperation> = DataOperation::all()
            .iter()
            .copied()
            .filter(|op| {
                op.data_action()
                    .starts_with("Microsoft.KeyVault/vaults/secrets/")
            })
            .collect();
        assert_eq!(secret_ops.len(), 12);
        const METADATA: &[Op] = &[
            Op::SecretList,
            Op::SecretListVersions,
            Op::SecretGetDeleted,
            Op::SecretListDeleted,
        ];
        const GET_AND_METADATA: &[Op] = &[
            Op::SecretGet,
            Op::SecretList,
            Op::SecretListVersions,
            Op::SecretGetDeleted,
            Op::SecretListDeleted,
        ];
        // The secret operations each role allows; every other one it must refuse.
        let expectations: [(&str, &[Op]); 12] = [
            ("Key Vault Administrator", &secret_ops),
            ("Key Vault Secrets Officer", &secret_ops),
            ("Key Vault Secrets User", GET_AND_METADATA),
            ("Key Vault Certificate User", GET_AND_METADATA),
            ("Key Vault Reader", METADATA),
            ("Key Vault Crypto Officer", &[]),
            ("Key Vault Crypto User", &[]),
            ("Key Vault Crypto Service Encryption User", &[]),
            ("Key Vault Crypto Service Release User", &[]),
            ("Key Vault Certificates Officer", &[]),
            ("Key Vault Data Access Administrator", &[]),
            ("Owner", &[]),
        ];
        for (name, allowed) in expectations {
            for op in &secret_ops {
                assert_eq!(
                    role(name).allows_data_action(op.data_action()),
                    allowed.contains(op),
                    "{name} / {op:?}"
                );
            }
        }
    }

    #[test]
    fn key_and_certificate_operations_by_built_in_role() {
        use DataOperation as Op;
        let allows = |name: &str, op: Op| role(name).allows_data_action(op.data_action());
        assert!(allows("Key Vault Crypto Officer", Op::KeyPurge));
        assert!(allows("Key Vault Crypto Officer", Op::KeySetRotationPolicy));
        assert!(!allows("Key Vault Crypto Officer", Op::CertificateGet));
        assert!(allows("Key Vault Crypto User", Op::KeyWrap));
        assert!(!allows("Key Vault Crypto User", Op::KeyDelete));
        assert!(!allows("Key Vault Crypto User", Op::KeyRelease));
        assert!(allows(
            "Key Vault Crypto Service Encryption User",
            Op::KeyUnwrap
        ));
        assert!(!allows(
            "Key Vault Crypto Service Encryption User",
            Op::KeySign
        ));
        assert!(allows(
            "Key Vault Crypto Service Release User",
            Op::KeyRelease
        ));
        assert!(!allows("Key Vault Crypto Service Release User", Op::KeyGet));
        assert!(allows("Key Vault Reader", Op::KeyList));
        assert!(allows("Key Vault Reader", Op::KeyGetRotationPolicy));
        assert!(allows("Key Vault Reader", Op::CertificateListIssuers));
        assert!(!allows("Key Vault Reader", Op::KeyDecrypt));
        assert!(!allows("Key Vault Reader", Op::CertificateSetContacts));
        assert!(allows(
            "Key Vault Certificates Officer",
            Op::CertificateSetContacts
        ));
        assert!(allows(
            "Key Vault Certificates Officer",
            Op::CertificateDeleteIssuer
        ));
        assert!(allows(
            "Key Vault Certificates Officer",
            Op::CertificatePurge
        ));
        assert!(!allows("Key Vault Certificates Officer", Op::KeyGet));
        assert!(allows("Key Vault Certificate User", Op::CertificateGet));
        assert!(allows("Key Vault Certificate User", Op::KeyGet));
        assert!(!allows("Key Vault Certificate User", Op::CertificateCreate));
        for &op in DataOperation::all() {
            assert!(allows("Key Vault Administrator", op), "{op:?}");
            for general in [
                "Owner",
                "Contributor",
                "Reader",
                "User Access Administrator",
            ] {
                assert!(!allows(general, op), "{general} / {op:?}");
            }
        }
    }

    #[test]
    fn management_actions_by_built_in_role() {
        let owner = role("Owner");
        assert!(owner.data_actions.is_empty());
        assert!(mgmt::ALL.iter().all(|a| owner.allows_action(a)));
        let contributor = role("Contributor");
        assert!(contributor.allows_action(mgmt::VAULT_WRITE));
        assert!(contributor.allows_action(mgmt::ROLE_ASSIGNMENT_READ));
        assert!(!contributor.allows_action(mgmt::ROLE_ASSIGNMENT_WRITE));
        assert!(!contributor.allows_action(mgmt::ROLE_ASSIGNMENT_DELETE));
        assert!(!contributor.allows_action(mgmt::ROLE_DEFINITION_WRITE));
        let reader = role("Reader");
        for action in mgmt::ALL {
            assert_eq!(
                reader.allows_action(action),
                action.ends_with("/read"),
                "{action}"
            );
        }
        let uaa = role("User Access Administrator");
        assert!(uaa.allows_action(mgmt::ROLE_ASSIGNMENT_WRITE));
        assert!(uaa.allows_action(mgmt::ROLE_DEFINITION_DELETE));
        assert!(!uaa.allows_action(mgmt::VAULT_WRITE));
        let kv_admin = role("Key Vault Administrator");
        assert!(kv_admin.allows_action(mgmt::VAULT_READ));
        assert!(!kv_admin.allows_action(mgmt::VAULT_WRITE));
        assert!(!kv_admin.allows_action(mgmt::ROLE_ASSIGNMENT_WRITE));
        let kv_contributor = role("Key Vault Contributor");
        assert!(kv_contributor.allows_action(mgmt::VAULT_DELETE));
        assert!(kv_contributor.allows_action(mgmt::ACCESS_POLICY_WRITE));
        assert!(!kv_contributor.allows_action(mgmt::ROLE_ASSIGNMENT_WRITE));
        assert!(!kv_contributor.allows_action(mgmt::IDENTITY_READ));
        let daa = role("Key Vault Data Access Administrator");
        assert!(daa.allows_action(mgmt::ROLE_ASSIGNMENT_WRITE));
        assert!(!daa.allows_action(mgmt::ROLE_DEFINITION_WRITE));
        assert!(daa.may_assign_role(ids::KEY_VAULT_SECRETS_USER));
        assert!(daa.may_assign_role(ids::KEY_VAULT_CERTIFICATE_USER));
        assert!(!daa.may_assign_role(ids::OWNER));
        assert!(!daa.may_assign_role(ids::KEY_VAULT_DATA_ACCESS_ADMINISTRATOR));
        assert!(!daa.may_assign_role(ids::USER_ACCESS_ADMINISTRATOR));
        let operator = role("Coffer Cluster Operator");
        assert!(operator.allows_action(mgmt::CLUSTER_WRITE));
        assert!(!operator.allows_action(mgmt::IDENTITY_READ));
        let identities = role("coffer identity administrator");
        assert!(identities.allows_action(mgmt::IDENTITY_WRITE));
        assert!(!identities.allows_action(mgmt::CLUSTER_READ));
        assert!(!identities.allows_action(mgmt::ROLE_ASSIGNMENT_WRITE));
    }
}
