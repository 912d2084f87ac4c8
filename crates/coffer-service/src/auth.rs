//! Authentication: who is calling. The gateway hands every request's bearer credential to an
//! [`Authenticator`]; the answer, a [`Caller`], travels with the request into every operation,
//! which authorizes it (see `authz`).

use coffer_types::Error;
use coffer_types::identity::PrincipalKind;

/// What kind of caller a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A principal of a tenant, authenticated by an access token.
    Principal(PrincipalKind),
    /// The holder of the cluster's bootstrap token: every right, like Vault's root token. It
    /// exists to create the first tenant, principals and role assignments.
    Bootstrap,
    /// Work the server starts itself (background jobs, dev bootstrap).
    Internal,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Stable identifier, as audit records show it and request ids are scoped by: the object
    /// id of a principal, `bootstrap` or `coffer`.
    pub id: String,
    pub kind: CallerKind,
    pub tenant: Option<String>,
    /// The client id of an application (service principal or managed identity).
    pub app_id: Option<String>,
    /// The token issuer, for refusal messages.
    pub issuer: Option<String>,
    /// Object ids of the groups the principal is a direct member of.
    pub groups: Vec<String>,
}

impl Caller {
    pub fn bootstrap() -> Self {
        Self::special("bootstrap", CallerKind::Bootstrap)
    }

    pub fn internal() -> Self {
        Self::special("coffer", CallerKind::Internal)
    }

    fn special(id: &str, kind: CallerKind) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            tenant: None,
            app_id: None,
            issuer: None,
            groups: Vec::new(),
        }
    }

    /// Whether the caller holds every right without consulting roles or policies.
    pub fn is_superuser(&self) -> bool {
        matches!(self.kind, CallerKind::Bootstrap | CallerKind::Internal)
    }

    /// The caller as Azure's refusal messages name it: `appid=…;oid=…;iss=…`.
    pub fn describe(&self) -> String {
        match self.kind {
            CallerKind::Principal(_) => format!(
                "appid={};oid={};iss={}",
                self.app_id.as_deref().unwrap_or(""),
                self.id,
                self.issuer.as_deref().unwrap_or("")
            ),
            CallerKind::Bootstrap | CallerKind::Internal => self.id.clone(),
        }
    }

    /// The object ids whose grants apply to this caller: its own and its groups'.
    pub fn object_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.groups.iter().map(String::as_str))
    }
}

/// Turns a request's bearer credential into a caller.
///
/// Implementations must: refuse a missing or wrong credential with `Unauthorized` and a
/// message that does not echo the credential; compare secrets in constant time; never log
/// the credential.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, Error>;
}
