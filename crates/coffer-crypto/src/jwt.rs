//! JSON Web Tokens for service principals: Coffer signs its own access tokens with an ES256
//! [`SigningKey`], and verifies the client assertions principals sign with their own keys
//! (published as a JWK or registered as an X.509 certificate) with a [`VerifyingKey`].
//!
//! Invariants:
//! - A token is verified with the algorithm its header names, and only if the key allows that
//!   algorithm. `none`, every `HS*` algorithm and any unknown name are refused before any
//!   cryptography runs, which defeats both `alg: none` and the confusion attack where a token
//!   is MACed with HS256 keyed by the verifier's public key.
//! - [`Jwt::verify`] proves who signed; [`Jwt::validate`] checks the claims (expiry, issuer,
//!   audience). A caller needs both; nothing in a [`Jwt`] should be trusted before both pass.
//! - Key sets hold public keys only: a JWK carrying private members is refused.
//! - Errors never carry the token, its signature or key bytes; they may name a claim's value
//!   (an issuer, an algorithm), cut short so hostile input cannot flood a log.
//!
//! Only compact JWS is supported: no JWE, no unencoded payloads, no `crit` extensions.

mod algorithm;
mod error;
mod jwk;
mod signing;
#[cfg(test)]
mod test_support;
mod token;
mod validation;
mod verifying;

pub use algorithm::Algorithm;
pub use error::JwtError;
pub use jwk::{Jwk, Jwks, jwk_thumbprint};
pub use signing::SigningKey;
pub use token::{Header, Jwt, MAX_TOKEN_LEN};
pub use validation::Validation;
pub use verifying::{VerifyingKey, certificate_thumbprints, certificates_from_pem};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes as JWS base64url: URL-safe alphabet, no padding.
fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64 text in the base64url alphabet without padding: what lenient readers compare or
/// decode, since MSAL pads its base64url and some clients send the standard alphabet. (JWS
/// parts are never read this way: see `b64_decode`.)
pub fn base64url_unpadded(text: &str) -> String {
    text.trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// Decodes JWS base64url strictly: padding, the standard alphabet and non-zero trailing bits are
/// all refused, so each value has exactly one encoding and a token cannot be altered without
/// changing its signed bytes.
fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}
