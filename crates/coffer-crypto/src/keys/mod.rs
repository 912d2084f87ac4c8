//! The cryptography of Key Vault keys: generating and importing RSA, EC and AES (`oct`) keys,
//! storing their material, and the encrypt, decrypt, wrapKey, unwrapKey, sign and verify
//! operations with Azure Key Vault's algorithms.
//!
//! [`KeyMaterial`] is a key's private material at rest: what the service seals with the vault's
//! data key. [`LoadedKey`] is that material parsed once into aws-lc objects, for operations.
//! [`PublicKey`] holds the public half of an RSA or EC key only (from a public JWK), and runs
//! the public operations through the same code as [`LoadedKey`].
//!
//! Every primitive is aws-lc's, so private-key operations are constant-time. The one
//! construction written here is RFC 3394 key wrap with a 192-bit key (A192KW), built on
//! aws-lc's AES block operation because aws-lc-rs wraps with 128- and 256-bit keys only.
//!
//! Signing and verifying take a digest the caller computed, as Azure's do: nothing is hashed
//! here. ECDSA signatures are the JWS form, `r || s` at the curve's fixed length.
//!
//! Every refusal of a request is [`CryptoError::Key`] with a sentence for the caller. Messages
//! never hold key bytes, plaintext or bytes the caller sent; the ones for a failed decryption
//! or unwrap are the same whatever failed, so they reveal nothing about padding. Material that
//! fails to parse in [`KeyMaterial::from_bytes`] or [`KeyMaterial::load`] was damaged in the
//! store, not sent by a caller: it is [`CryptoError::Unseal`]. A failure inside aws-lc while
//! producing output (which well-formed input never causes) is [`CryptoError::Seal`], and key
//! generation failing is [`CryptoError::Random`].
//!
//! # Stored form
//!
//! [`KeyMaterial::to_bytes`] writes a format byte (1), a family byte, and the material:
//!
//! ```text
//! RSA: 0x01 0x01            PKCS#8 v1 DER (RSAPrivateKey inside)
//! EC:  0x01 0x02 curve-id   PKCS#8 v1 DER (ECPrivateKey inside); curve ids: 1 P-256,
//!                           2 P-256K, 3 P-384, 4 P-521
//! oct: 0x01 0x03            the raw AES key (16, 24 or 32 bytes)
//! ```

use std::fmt;

use coffer_types::{CurveName, EncryptionAlgorithm, KeyFamily, SignatureAlgorithm};

use crate::CryptoError;

mod aes_kw;
mod ec;
mod loaded;
mod material;
mod oct;
mod rsa;

pub use loaded::{LoadedKey, PublicKey};
pub use material::KeyMaterial;

/// What [`KeyMaterial::generate`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// 2048, 3072 or 4096 bits; the public exponent must be 65537 (0 is taken as 65537).
    Rsa {
        bits: u32,
        public_exponent: u32,
    },
    Ec {
        curve: CurveName,
    },
    /// 128, 192 or 256 bits.
    Oct {
        bits: u32,
    },
}

/// The result of an encryption. `iv` and `tag` are set for AES-GCM only: the 12-byte random
/// nonce and the 16-byte authentication tag, which Azure returns apart from the ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Encrypted {
    pub ciphertext: Vec<u8>,
    pub iv: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
}

impl fmt::Debug for Encrypted {
    // Lengths only: the service logs requests, and a ciphertext has no place in a log either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encrypted")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("iv_len", &self.iv.as_ref().map(Vec::len))
            .field("tag_len", &self.tag.as_ref().map(Vec::len))
            .finish()
    }
}

/// The most bytes one AES operation takes in (plaintext, ciphertext, additional data, key to
/// wrap). Azure's own limits are far lower; this only keeps a hostile request from making the
/// node copy and process an absurd buffer.
pub const MAX_DATA_LEN: usize = 1 << 20;

pub(crate) fn key_error(message: impl Into<String>) -> CryptoError {
    CryptoError::Key(message.into())
}

/// The `kty` Azure would name for a family (the software type).
pub(crate) fn family_name(family: KeyFamily) -> &'static str {
    match family {
        KeyFamily::Rsa => "RSA",
        KeyFamily::Ec => "EC",
        KeyFamily::Oct => "oct",
    }
}

pub(crate) fn unsupported_encryption(alg: EncryptionAlgorithm, family: KeyFamily) -> CryptoError {
    key_error(format!(
        "Algorithm {alg} is not supported by a key of type {}.",
        family_name(family)
    ))
}

pub(crate) fn unsupported_signature(alg: SignatureAlgorithm, family: KeyFamily) -> CryptoError {
    key_error(format!(
        "Algorithm {alg} is not supported by a key of type {}.",
        family_name(family)
    ))
}

/// Refuses an input longer than [`MAX_DATA_LEN`]; `what` names it for the message.
pub(crate) fn check_data_len(what: &str, len: usize) -> Result<(), CryptoError> {
    if len > MAX_DATA_LEN {
        return Err(key_error(format!(
            "The {what} is {len} bytes; Coffer takes at most {MAX_DATA_LEN} bytes in one \
             operation."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
