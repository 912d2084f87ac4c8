//! Identity records as the replicated state holds them: tenants, principals and their
//! credentials, role assignments and the token signing keys.
//!
//! Credentials are kept only in forms that cannot be used to authenticate: client secrets as
//! salted hashes, certificates as public certificates, federated credentials as the external
//! (issuer, subject) pair they accept, signing keys sealed with the root key.

use serde::{Deserialize, Serialize};

use crate::authz::Scope;
use crate::error::{Error, quote_user_text};

/// The kind of a principal, with Microsoft Entra's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrincipalKind {
    User,
    Group,
    ServicePrincipal,
    ManagedIdentity,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::Group => "Group",
            PrincipalKind::ServicePrincipal => "ServicePrincipal",
            PrincipalKind::ManagedIdentity => "ManagedIdentity",
        }
    }

    /// Whether principals of this kind authenticate as applications (and so have a client id).
    pub fn is_application(self) -> bool {
        matches!(
            self,
            PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity
        )
    }
}

impl std::str::FromStr for PrincipalKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "user" => Ok(PrincipalKind::User),
            "group" => Ok(PrincipalKind::Group),
            "serviceprincipal" | "service-principal" | "sp" => Ok(PrincipalKind::ServicePrincipal),
            "managedidentity" | "managed-identity" | "mi" => Ok(PrincipalKind::ManagedIdentity),
            _ => Err(Error::bad_parameter(format!(
                "The principal type {} is unknown: use User, Group, ServicePrincipal or \
                 ManagedIdentity.",
                quote_user_text(text)
            ))),
        }
    }
}

/// A tenant: the directory principals belong to and tokens are issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub format: u16,
    /// 1 to 64 lowercase letters, digits and hyphens (a GUID fits).
    pub id: String,
    pub display_name: String,
    pub created: i64,
}

/// Checks a tenant id.
pub fn validate_tenant_id(id: &str) -> Result<(), Error> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The tenant id {} is invalid: use 1 to 64 lowercase letters, digits and hyphens.",
            quote_user_text(id)
        )))
    }
}

/// Checks a display name: 1 to 256 characters without control characters.
pub fn validate_display_name(name: &str) -> Result<(), Error> {
    if (1..=256).contains(&name.chars().count()) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::bad_parameter(
            "A display name must be 1 to 256 characters without control characters.",
        ))
    }
}

/// A client secret, as its salted hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretCredential {
    /// Random id, to name the credential when removing it.
    pub id: String,
    /// The secret's first three characters after its prefix, to tell secrets apart (as Entra's
    /// `hint`); too short to help guess the 256-bit rest.
    pub hint: String,
    /// Salt and HMAC-SHA256, as coffer-crypto's `ClientSecretHash` writes them.
    #[serde(with = "crate::records::b64")]
    pub hash: Vec<u8>,
    pub created: i64,
    pub expires: Option<i64>,
}

impl std::fmt::Debug for SecretCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCredential")
            .field("id", &self.id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A registered certificate whose key signs client assertions. Its thumbprints (the JWT
/// `x5t` and `x5t#S256` headers that name it) are computed from the DER when needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateCredential {
    pub id: String,
    #[serde(with = "crate::records::b64")]
    pub der: Vec<u8>,
    pub created: i64,
}

/// Trust in tokens of an external issuer for one subject (workload identity federation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedCredential {
    /// 1 to 120 letters, digits, hyphens and underscores, unique per principal.
    pub name: String,
    pub issuer: String,
    pub subject: String,
    /// Audiences the external token must carry (Entra's default `api://AzureADTokenExchange`).
    pub audiences: Vec<String>,
}

/// Entra's default audience for tokens exchanged through workload identity federation.
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A principal of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    pub format: u16,
    pub tenant: String,
    /// Random UUID, unique in the cluster; what role assignments and access policies name.
    pub object_id: String,
    pub kind: PrincipalKind,
    pub display_name: String,
    /// The client id (`appid`) of a service principal or managed identity.
    pub app_id: Option<String>,
    #[serde(default)]
    pub secrets: Vec<SecretCredential>,
    #[serde(default)]
    pub certificates: Vec<CertificateCredential>,
    #[serde(default)]
    pub federated: Vec<FederatedCredential>,
    /// Object ids of the groups this principal is a direct member of.
    #[serde(default)]
    pub member_of: Vec<String>,
    pub created: i64,
    pub updated: i64,
}

/// At most this many credentials of each kind per principal, as Entra limits them.
pub const MAX_CREDENTIALS: usize = 20;
/// At most this many group memberships per principal.
pub const MAX_GROUPS: usize = 256;

/// A change to one principal, applied by the state machine to the current record so that
/// concurrent changes do not overwrite each other.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalChange {
    AddSecret(SecretCredential),
    AddCertificate(CertificateCredential),
    AddFederated(FederatedCredential),
    /// Removes the secret, certificate or federated credential with this id or name.
    RemoveCredential(String),
    /// Makes the principal a member of this group (which must exist).
    JoinGroup(String),
    LeaveGroup(String),
}

impl std::fmt::Debug for PrincipalChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrincipalChange::AddSecret(c) => write!(f, "AddSecret({})", c.id),
            PrincipalChange::AddCertificate(c) => write!(f, "AddCertificate({})", c.id),
            PrincipalChange::AddFederated(c) => write!(f, "AddFederated({})", c.name),
            PrincipalChange::RemoveCredential(id) => write!(f, "RemoveCredential({id})"),
            PrincipalChange::JoinGroup(g) => write!(f, "JoinGroup({g})"),
            PrincipalChange::LeaveGroup(g) => write!(f, "LeaveGroup({g})"),
        }
    }
}

/// A role granted to a principal at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignmentRecord {
    pub format: u16,
    pub id: String,
    pub principal_id: String,
    pub role_definition_id: String,
    pub scope: Scope,
    pub created: i64,
    /// The principal that made the assignment, for the record.
    pub created_by: String,
}

/// A key that signs Coffer's access tokens. Every node holds the same root key, so every node
/// can unseal it and issue tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub format: u16,
    /// The JWK thumbprint, the token header's `kid`. The public key is not stored: it is
    /// derived from the unsealed private key, so only keys sealed by the root key are trusted.
    pub kid: String,
    /// The PKCS#8 private key, sealed with the root key.
    #[serde(with = "crate::records::b64")]
    pub sealed_key: Vec<u8>,
    pub created: i64,
    /// Set when a newer key took over: tokens it signed stay valid until then (the overlap
    /// window), after which the key is no longer published or accepted.
    pub retire_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_and_kinds() {
        assert!(validate_tenant_id("contoso").is_ok());
        assert!(validate_tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47").is_ok());
        for bad in ["", "Contoso", "a b", "-x", &"a".repeat(65)] {
            assert!(validate_tenant_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "service-principal".parse::<PrincipalKind>().unwrap(),
            PrincipalKind::ServicePrincipal
        );
        assert!("robot".parse::<PrincipalKind>().is_err());
        assert!(PrincipalKind::ManagedIdentity.is_application());
        assert!(!PrincipalKind::Group.is_application());
    }

    #[test]
    fn debug_hides_credentials() {
        let c = SecretCredential {
            id: "c1".into(),
            hint: "abc".into(),
            hash: vec![0x5a; 48],
            created: 1,
            expires: None,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("90") && !shown.contains("hash") && !shown.contains("abc"));
        let k = SigningKeyRecord {
            format: 1,
            kid: "k".into(),
            sealed_key: vec![0x42; 8],
            created: 1,
            retire_at: None,
        };
        assert!(!format!("{k:?}").contains("sealed"));
    }
}
