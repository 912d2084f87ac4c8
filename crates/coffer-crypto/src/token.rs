//! Bearer credentials: generation and hashing. Only a token's SHA-256 is stored; comparison is
//! constant-time.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::{CryptoError, SecretString, fill_random};

/// Prefix that makes Coffer bootstrap tokens recognisable to secret scanners (and tells them
/// apart from access tokens, which are JWTs).
pub const TOKEN_PREFIX: &str = "cft_";

/// Generates a new random bearer token (256 bits).
pub fn generate_token() -> Result<SecretString, CryptoError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(&mut *bytes)?;
    Ok(SecretString::new(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_slice())
    )))
}

/// The SHA-256 of a token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        Self(out)
    }

    /// Parses the hex form written by [`TokenHash::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `token` hashes to this value, in time independent of where they differ.
    pub fn matches(&self, token: &str) -> bool {
        bool::from(Self::of(token).0.ct_eq(&self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_matches() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("cft_"));
        let h = TokenHash::of(a.expose());
        assert!(h.matches(a.expose()));
        assert!(!h.matches(b.expose()));
        assert!(!h.matches(""));
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h.clone()));
        assert!(TokenHash::from_hex("zz").is_none());
        assert!(!format!("{h:?}").contains(&h.to_hex()));
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 example "abc".
        assert_eq!(
            TokenHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
