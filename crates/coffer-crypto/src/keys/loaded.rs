//! [`LoadedKey`] and [`PublicKey`]: the operations, and the checks that every request passes
//! before any key is used (algorithm against key type and curve, digest length).

use std::fmt;

use aws_lc_rs::digest::{self, Digest};
use coffer_types::{CurveName, EncryptionAlgorithm, JsonWebKey, KeyFamily, SignatureAlgorithm};

use super::ec::{EcPrivateKey, EcPublicKey};
use super::oct::OctKey;
use super::rsa::{RsaPrivateKey, RsaPublicKey};
use super::{Encrypted, family_name, key_error, unsupported_encryption, unsupported_signature};
use crate::{CryptoError, SecretBytes};

/// A key parsed for operations. Holds aws-lc objects only (which cleanse their key memory on
/// drop); `Debug` names the family and size.
pub struct LoadedKey {
    inner: Loaded,
}

pub(super) enum Loaded {
    Rsa(RsaPrivateKey),
    Ec(EcPrivateKey),
    Oct(OctKey),
}

/// The public half of an RSA or EC key, from a public JWK: verify, and for RSA encrypt and
/// wrapKey, through the same code as [`LoadedKey`].
pub struct PublicKey {
    inner: Public,
}

enum Public {
    Rsa(RsaPublicKey),
    Ec(EcPublicKey),
}

impl LoadedKey {
    pub(super) fn new(inner: Loaded) -> Self {
        Self { inner }
    }

    pub fn family(&self) -> KeyFamily {
        match self.inner {
            Loaded::Rsa(_) => KeyFamily::Rsa,
            Loaded::Ec(_) => KeyFamily::Ec,
            Loaded::Oct(_) => KeyFamily::Oct,
        }
    }

    /// Encrypts with RSA1_5, RSA-OAEP or RSA-OAEP-256 (RSA keys), or A128GCM, A192GCM or
    /// A256GCM (oct keys, with optional additional authenticated data; the random iv and the
    /// tag are returned).
    pub fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Encrypted, CryptoError> {
        match &self.inner {
            Loaded::Rsa(key) => rsa_encrypt(key.public(), alg, plaintext, aad),
            Loaded::Ec(_) => Err(unsupported_encryption(alg, KeyFamily::Ec)),
            Loaded::Oct(key) => key.encrypt(alg, plaintext, aad),
        }
    }

    /// Decrypts what [`LoadedKey::encrypt`] (or another implementation of the algorithm) made.
    /// AES-GCM needs the 12-byte `iv` and 16-byte `tag`; RSA takes neither.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        tag: Option<&[u8]>,
        aad: Option<&[u8]>,
    ) -> Result<SecretBytes, CryptoError> {
        match &self.inner {
            Loaded::Rsa(key) => {
                check_rsa_request(alg, [iv, tag, aad])?;
                key.decrypt(alg, ciphertext)
            }
            Loaded::Ec(_) => Err(unsupported_encryption(alg, KeyFamily::Ec)),
            Loaded::Oct(key) => key.decrypt(alg, ciphertext, iv, tag, aad),
        }
    }

    /// Wraps a key: RSA1_5, RSA-OAEP or RSA-OAEP-256 (RSA keys, the same operation as
    /// encrypt), or A128KW, A192KW or A256KW (oct keys, RFC 3394).
    pub fn wrap_key(&self, alg: EncryptionAlgorithm, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Loaded::Rsa(rsa) => rsa_wrap(rsa.public(), alg, key),
            Loaded::Ec(_) => Err(unsupported_encryption(alg, KeyFamily::Ec)),
            Loaded::Oct(oct) => oct.wrap(alg, key),
        }
    }

    pub fn unwrap_key(
        &self,
        alg: EncryptionAlgorithm,
        wrapped: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        match &self.inner {
            Loaded::Rsa(key) => {
                check_rsa_request(alg, [None, None, None])?;
                key.decrypt(alg, wrapped)
            }
            Loaded::Ec(_) => Err(unsupported_encryption(alg, KeyFamily::Ec)),
            Loaded::Oct(key) => key.unwrap(alg, wrapped),
        }
    }

    /// Signs a digest the caller computed; its length must be the algorithm's hash length.
    /// ECDSA signatures are `r || s`.
    pub fn sign(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Loaded::Rsa(key) => {
                let digest = signature_digest(alg, KeyFamily::Rsa, None, digest)?;
                key.sign(alg, &digest)
            }
            Loaded::Ec(key) => {
                let curve = key.public().curve();
                let digest = signature_digest(alg, KeyFamily::Ec, Some(curve), digest)?;
                key.sign(&digest)
            }
            Loaded::Oct(_) => Err(unsupported_signature(alg, KeyFamily::Oct)),
        }
    }

    /// `Ok(false)` for a signature that does not verify (including malformed signature bytes);
    /// `Err` only for bad requests (digest length, algorithm/key mismatch).
    pub fn verify(
        &self,
        alg: SignatureAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        match &self.inner {
            Loaded::Rsa(key) => verify_rsa(key.public(), alg, digest, signature),
            Loaded::Ec(key) => verify_ec(key.public(), alg, digest, signature),
            Loaded::Oct(_) => Err(unsupported_signature(alg, KeyFamily::Oct)),
        }
    }
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("LoadedKey");
        out.field("family", &self.family());
        match &self.inner {
            Loaded::Rsa(key) => out.field("key_size", &key.public().bits()),
            Loaded::Ec(key) => out.field("curve", &key.public().curve()),
            Loaded::Oct(key) => out.field("key_size", &key.bits()),
        };
        out.finish_non_exhaustive()
    }
}

impl PublicKey {
    /// From a JWK's public parts (RSA `n, e`; EC `crv, x, y`); private parts are ignored. An
    /// oct key has no public half and is refused.
    pub fn from_jwk(jwk: &JsonWebKey) -> Result<PublicKey, CryptoError> {
        let Some(kty) = jwk.kty else {
            return Err(key_error("The key has no kty."));
        };
        let inner = match kty.family() {
            KeyFamily::Rsa => Public::Rsa(RsaPublicKey::from_jwk(jwk)?),
            KeyFamily::Ec => Public::Ec(EcPublicKey::from_jwk(jwk)?),
            KeyFamily::Oct => {
                return Err(key_error("A key of type oct has no public key."));
            }
        };
        Ok(PublicKey { inner })
    }

    pub fn family(&self) -> KeyFamily {
        match self.inner {
            Public::Rsa(_) => KeyFamily::Rsa,
            Public::Ec(_) => KeyFamily::Ec,
        }
    }

    /// RSA1_5, RSA-OAEP or RSA-OAEP-256 with an RSA key; what [`LoadedKey::decrypt`] opens.
    pub fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> Result<Encrypted, CryptoError> {
        match &self.inner {
            Public::Rsa(key) => rsa_encrypt(key, alg, plaintext, None),
            Public::Ec(_) => Err(unsupported_encryption(alg, KeyFamily::Ec)),
        }
    }

    pub fn wrap_key(&self, alg: EncryptionAlgorithm, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Public::Rsa(rsa) => rsa_wrap(rsa, alg, key),
            Public::Ec(_) => Err(unsupported_encryption(alg, KeyFamily::Ec)),
        }
    }

    /// As [`LoadedKey::verify`].
    pub fn verify(
        &self,
        alg: SignatureAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<bool, CryptoError> {
        match &self.inner {
            Public::Rsa(key) => verify_rsa(key, alg, digest, signature),
            Public::Ec(key) => verify_ec(key, alg, digest, signature),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("PublicKey");
        out.field("family", &self.family());
        match &self.inner {
            Public::Rsa(key) => out.field("key_size", &key.bits()),
            Public::Ec(key) => out.field("curve", &key.curve()),
        };
        out.finish_non_exhaustive()
    }
}

/// An RSA algorithm, and none of the inputs that only AES-GCM takes.
fn check_rsa_request(
    alg: EncryptionAlgorithm,
    gcm_inputs: [Option<&[u8]>; 3],
) -> Result<(), CryptoError> {
    if alg.family() != KeyFamily::Rsa {
        return Err(unsupported_encryption(alg, KeyFamily::Rsa));
    }
    if gcm_inputs
        .iter()
        .any(|input| input.is_some_and(|bytes| !bytes.is_empty()))
    {
        return Err(key_error(format!(
            "Algorithm {alg} takes no iv, authentication tag or additional authenticated data."
        )));
    }
    Ok(())
}

fn rsa_encrypt(
    key: &RsaPublicKey,
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
    aad: Option<&[u8]>,
) -> Result<Encrypted, CryptoError> {
    check_rsa_request(alg, [None, None, aad])?;
    Ok(Encrypted {
        ciphertext: key.encrypt(alg, plaintext, "plaintext")?,
        iv: None,
        tag: None,
    })
}

fn rsa_wrap(
    key: &RsaPublicKey,
    alg: EncryptionAlgorithm,
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    check_rsa_request(alg, [None, None, None])?;
    key.encrypt(alg, data, "key to wrap")
}

fn verify_rsa(
    key: &RsaPublicKey,
    alg: SignatureAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    let digest = signature_digest(alg, KeyFamily::Rsa, None, digest)?;
    Ok(key.verify(alg, &digest, signature))
}

fn verify_ec(
    key: &EcPublicKey,
    alg: SignatureAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<bool, CryptoError> {
    let digest = signature_digest(alg, KeyFamily::Ec, Some(key.curve()), digest)?;
    Ok(key.verify(&digest, signature))
}

/// Checks a signature request against the key (`family`, and `curve` for EC) and wraps the
/// caller's digest for aws-lc, tagged with the algorithm's hash.
fn signature_digest(
    alg: SignatureAlgorithm,
    family: KeyFamily,
    curve: Option<CurveName>,
    digest: &[u8],
) -> Result<Digest, CryptoError> {
    if alg.family() != family {
        return Err(unsupported_signature(alg, family));
    }
    if let Some(needed) = alg.curve()
        && curve != Some(needed)
    {
        let actual = curve.map_or(family_name(family), CurveName::as_str);
        return Err(key_error(format!(
            "Algorithm {alg} needs a {needed} key; this key is on {actual}."
        )));
    }
    let expected = alg.digest_len();
    if digest.len() != expected {
        return Err(key_error(format!(
            "The digest is {} bytes; {alg} signs a {expected}-byte digest.",
            digest.len()
        )));
    }
    let hash = match expected {
        32 => &digest::SHA256,
        48 => &digest::SHA384,
        _ => &digest::SHA512,
    };
    // The length was checked above, which is the only way this import fails.
    Digest::import_less_safe(digest, hash).map_err(|_| {
        key_error(format!(
            "The digest is {} bytes; {alg} signs a {expected}-byte digest.",
            digest.len()
        ))
    })
}
