//! The management (control-plane) actions Coffer checks, with Azure's names where Azure has
//! the operation. Identities and the cluster itself have no Azure RBAC equivalent (Entra and
//! Azure's own fabric manage those), so they get Coffer's own `Coffer/` namespace, which no
//! Azure role pattern except `*` and `*/read` matches.

pub const VAULT_READ: &str = "Microsoft.KeyVault/vaults/read";
pub const VAULT_WRITE: &str = "Microsoft.KeyVault/vaults/write";
pub const VAULT_DELETE: &str = "Microsoft.KeyVault/vaults/delete";
/// Azure's action for reading soft-deleted vaults.
pub const DELETED_VAULT_READ: &str = "Microsoft.KeyVault/locations/deletedVaults/read";
/// Azure's action for purging a soft-deleted vault.
pub const DELETED_VAULT_PURGE: &str = "Microsoft.KeyVault/locations/deletedVaults/purge/action";
pub const ACCESS_POLICY_WRITE: &str = "Microsoft.KeyVault/vaults/accessPolicies/write";
pub const ROLE_ASSIGNMENT_READ: &str = "Microsoft.Authorization/roleAssignments/read";
pub const ROLE_ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
pub const ROLE_ASSIGNMENT_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
pub const ROLE_DEFINITION_READ: &str = "Microsoft.Authorization/roleDefinitions/read";
pub const ROLE_DEFINITION_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
pub const ROLE_DEFINITION_DELETE: &str = "Microsoft.Authorization/roleDefinitions/delete";
pub const IDENTITY_READ: &str = "Coffer/identity/read";
pub const IDENTITY_WRITE: &str = "Coffer/identity/write";
/// Listing the geography backup keys a cluster holds (ids only).
pub const GEOGRAPHY_KEY_READ: &str = "Coffer/geographyKeys/read";
/// Exporting a geography key hands out what opens every backup of the geography, and importing
/// one decides what future backups are sealed with: neither is part of operating the cluster
/// (`Coffer/cluster/*`), so only roles holding every action (Owner, Contributor) have them.
pub const GEOGRAPHY_KEY_EXPORT: &str = "Coffer/geographyKeys/export/action";
pub const GEOGRAPHY_KEY_IMPORT: &str = "Coffer/geographyKeys/import/action";
pub const CLUSTER_READ: &str = "Coffer/cluster/read";
pub const CLUSTER_WRITE: &str = "Coffer/cluster/write";

/// Every action above, for test matrices.
pub const ALL: &[&str] = &[
    VAULT_READ,
    VAULT_WRITE,
    VAULT_DELETE,
    DELETED_VAULT_READ,
    DELETED_VAULT_PURGE,
    ACCESS_POLICY_WRITE,
    ROLE_ASSIGNMENT_READ,
    ROLE_ASSIGNMENT_WRITE,
    ROLE_ASSIGNMENT_DELETE,
    ROLE_DEFINITION_READ,
    ROLE_DEFINITION_WRITE,
    ROLE_DEFINITION_DELETE,
    IDENTITY_READ,
    IDENTITY_WRITE,
    GEOGRAPHY_KEY_READ,
    GEOGRAPHY_KEY_EXPORT,
    GEOGRAPHY_KEY_IMPORT,
    CLUSTER_READ,
    CLUSTER_WRITE,
];
