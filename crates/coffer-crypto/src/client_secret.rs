//! Client secrets of service principals: generation and salted hashing. Only the hash is
//! stored; comparison is constant-time.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::{CryptoError, SecretString, fill_random};

/// Prefix that makes Coffer client secrets recognisable to secret scanners, and tells them
/// apart from bearer tokens (`cft_`).
const CLIENT_SECRET_PREFIX: &str = "cfs_";

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Generates a new random client secret (256 bits).
pub fn generate_client_secret() -> Result<SecretString, CryptoError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(&mut *bytes)?;
    Ok(SecretString::new(format!(
        "{CLIENT_SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_slice())
    )))
}

/// The stored form of a client secret: a random salt and HMAC-SHA256(key = salt, secret).
///
/// No slow KDF (Argon2, PBKDF2): the secrets are 256-bit random values Coffer generated, not
/// passwords, so there is no dictionary to slow down and a brute-force search is hopeless at any
/// speed; a deliberately slow hash would only let clients make every token request expensive.
/// The salt makes two hashes of one secret differ, so a leaked table shows neither which
/// principals share a secret nor matches precomputed values.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecretHash {
    salt: [u8; SALT_LEN],
    hash: [u8; HASH_LEN],
}

fn keyed_hash(salt: &[u8; SALT_LEN], secret: &str) -> [u8; HASH_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), secret.as_bytes());
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

impl ClientSecretHash {
    /// Length of [`ClientSecretHash::to_bytes`]: salt ‖ hash.
    pub const LEN: usize = SALT_LEN + HASH_LEN;

    /// Hashes `secret` with a fresh random salt.
    pub fn new(secret: &str) -> Result<Self, CryptoError> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        Ok(Self {
            hash: keyed_hash(&salt, secret),
            salt,
        })
    }

    /// Whether `secret` hashes to this value, in time independent of where they differ.
    pub fn matches(&self, secret: &str) -> bool {
        bool::from(keyed_hash(&self.salt, secret).ct_eq(&self.hash))
    }

    /// The stored form: salt (16 bytes) then hash (32 bytes).
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..SALT_LEN].copy_from_slice(&self.salt);
        out[SALT_LEN..].copy_from_slice(&self.hash);
        out
    }

    /// Parses [`ClientSecretHash::to_bytes`]; any other length is refused.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let (salt, hash) = bytes.split_at(SALT_LEN);
        Some(Self {
            salt: salt.try_into().ok()?,
            hash: hash.try_into().ok()?,
        })
    }
}

impl fmt::Debug for ClientSecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecretHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = generate_client_secret().unwrap();
        let b = generate_client_secret().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("cfs_"));
        let body = URL_SAFE_NO_PAD.decode(&a.expose()[4..]).unwrap();
        assert_eq!(body.len(), 32);
    }

    #[test]
    fn hash_matches_only_its_secret() {
        let secret = generate_client_secret().unwrap();
        let other = generate_client_secret().unwrap();
        let h = ClientSecretHash::new(secret.expose()).unwrap();
        assert!(h.matches(secret.expose()));
        assert!(!h.matches(other.expose()));
        assert!(!h.matches(""));
        assert!(!h.matches(&secret.expose()[..secret.len() - 1]));
    }

    #[test]
    fn two_hashes_of_one_secret_differ() {
        let h1 = ClientSecretHash::new("cfs_same").unwrap();
        let h2 = ClientSecretHash::new("cfs_same").unwrap();
        assert_ne!(h1, h2);
        assert_ne!(h1.to_bytes()[..16], h2.to_bytes()[..16]);
        assert_ne!(h1.to_bytes()[16..], h2.to_bytes()[16..]);
        assert!(h1.matches("cfs_same") && h2.matches("cfs_same"));
    }

    #[test]
    fn stored_form_round_trips_and_wrong_lengths_are_refused() {
        let h = ClientSecretHash::new("cfs_x").unwrap();
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), 48);
        let back = ClientSecretHash::from_bytes(&bytes).unwrap();
        assert_eq!(back, h);
        assert!(back.matches("cfs_x"));
        assert!(ClientSecretHash::from_bytes(&bytes[..47]).is_none());
        assert!(ClientSecretHash::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_none());
        assert!(ClientSecretHash::from_bytes(&[]).is_none());
    }

    #[test]
    fn hash_is_hmac_sha256_keyed_by_the_salt() {
        // Known answer from OpenSSL: printf %s cfs_known-answer |
        //   openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f
        let salt: Vec<u8> = (0u8..16).collect();
        let expected = "4d052a8934b0dc1a0ca997517dedb6ae52ab351b9a37e9084120b808674327b4";
        let mut stored = salt.clone();
        for i in 0..32 {
            stored.push(u8::from_str_radix(&expected[2 * i..2 * i + 2], 16).unwrap());
        }
        let h = ClientSecretHash::from_bytes(&stored).unwrap();
        assert!(h.matches("cfs_known-answer"));
        assert!(!h.matches("cfs_known-answeR"));
        assert_eq!(
            keyed_hash(&h.salt, "cfs_known-answer").to_vec(),
            stored[16..].to_vec()
        );
    }

    #[test]
    fn debug_prints_no_bytes() {
        let h = ClientSecretHash::new("cfs_hunter2").unwrap();
        let shown = format!("{h:?} {h:#?}");
        let bytes = h.to_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex[..8]), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            shown,
            "ClientSecretHash(<redacted>) ClientSecretHash(<redacted>)"
        );
    }
}
