//! Authentication: who is calling. One interface, so the identity work (JWTs, workload
//! identity, managed identity) replaces the dev admin token without touching the handlers.

use coffer_crypto::TokenHash;
use coffer_types::Error;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable identifier, as it appears in audit records.
    pub id: String,
}

/// Turns a request's bearer credential into a principal.
///
/// Implementations must: refuse a missing or wrong credential with `Unauthorized` and a
/// message that does not echo the credential; compare secrets in constant time; never log
/// the credential.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, Error>;
}

/// The single admin credential of the foundation: a token whose SHA-256 is all the node keeps.
#[derive(Debug)]
pub struct AdminTokenAuthenticator {
    hash: TokenHash,
}

impl AdminTokenAuthenticator {
    pub fn new(hash: TokenHash) -> Self {
        Self { hash }
    }
}

impl Authenticator for AdminTokenAuthenticator {
    fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, Error> {
        let Some(token) = bearer else {
            return Err(Error::unauthorized(
                "Request is missing a Bearer or PoP token.",
            ));
        };
        if self.hash.matches(token) {
            Ok(Principal { id: "admin".into() })
        } else {
            Err(Error::unauthorized("The bearer token is not valid."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_types::ErrorCode;

    #[test]
    fn admin_token_is_checked() {
        let auth = AdminTokenAuthenticator::new(TokenHash::of("cft_right"));
        assert_eq!(auth.authenticate(Some("cft_right")).unwrap().id, "admin");
        let wrong = auth.authenticate(Some("cft_wrong")).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::Unauthorized);
        assert!(!wrong.message.contains("cft_wrong"));
        assert_eq!(
            auth.authenticate(None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }
}
