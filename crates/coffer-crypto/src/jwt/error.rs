/// Why a token or key was refused. Messages never include the token, its signature or key
/// material; values an attacker chose (an algorithm name, an issuer) are cut to 64 characters
/// and printed escaped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a compact JWS this module accepts; the reason is a fixed text, never token content.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// `none`, an `HS*` algorithm, or a name this module does not know.
    #[error("the signing algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header's algorithm is a supported one, but not one this key may verify.
    #[error("the token's algorithm is not one its key may verify")]
    KeyAlgorithmMismatch,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token claims to have been issued in the future")]
    IssuedInFuture,
    #[error("the token's issuer {0:?} is not accepted")]
    WrongIssuer(String),
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    /// A registered claim is present with the wrong JSON type (`exp` as a string, `aud` as an
    /// object).
    #[error("the token's {0} claim has the wrong type")]
    InvalidClaim(&'static str),
    #[error("the key is not usable: {0}")]
    InvalidKey(String),
}

/// How many characters of an attacker-chosen value an error may carry.
pub(crate) const EXCERPT_CHARS: usize = 64;

/// The first [`EXCERPT_CHARS`] characters of `text`, for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_CHARS).collect()
}
