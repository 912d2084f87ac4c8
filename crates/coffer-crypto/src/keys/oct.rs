//! Symmetric (`oct`) keys: AES-128/192/256 for AES-GCM encryption and AES key wrap.
//!
//! Each algorithm names its key length (A128GCM, A192KW, …) and runs only with a key of that
//! length, as in Azure. GCM nonces are 96 random bits drawn here for every encryption, and the
//! 128-bit tag is returned apart from the ciphertext, as Azure returns it.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::cipher;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap};
use coffer_types::{EncryptionAlgorithm, JsonWebKey, KeyFamily, KeyType};
use zeroize::Zeroizing;

use super::{Encrypted, aes_kw, check_data_len, key_error, unsupported_encryption};
use crate::{CryptoError, SecretBytes, fill_random};

const TAG_LEN: usize = 16;
const KW_OVERHEAD: usize = 8;
const GCM_FAILED: &str = "The ciphertext or its authentication tag is invalid.";
const UNWRAP_FAILED: &str = "The wrapped key could not be unwrapped with this key.";

fn check_len(len: usize) -> Result<(), ()> {
    if matches!(len, 16 | 24 | 32) {
        Ok(())
    } else {
        Err(())
    }
}

/// An AES key at rest, wiped on drop.
#[derive(Clone)]
pub(super) struct OctMaterial {
    key: Zeroizing<Vec<u8>>,
}

impl OctMaterial {
    pub(super) fn generate(bits: u32) -> Result<Self, CryptoError> {
        let len = match bits {
            128 => 16,
            192 => 24,
            256 => 32,
            other => {
                return Err(key_error(format!(
                    "Coffer creates oct keys of 128, 192 or 256 bits; {other} bits were \
                     requested."
                )));
            }
        };
        let mut key = Zeroizing::new(vec![0u8; len]);
        fill_random(&mut key)?;
        Ok(Self { key })
    }

    pub(super) fn import(jwk: &JsonWebKey) -> Result<Self, CryptoError> {
        let Some(k) = &jwk.k else {
            return Err(key_error("An oct key import needs k; the key lacks k."));
        };
        check_len(k.len()).map_err(|_| {
            key_error(format!(
                "An oct key must be 128, 192 or 256 bits; this key has {} bits.",
                k.len().saturating_mul(8)
            ))
        })?;
        Ok(Self {
            key: Zeroizing::new(k.clone()),
        })
    }

    /// Reads a stored raw key; a wrong length means the stored material is damaged.
    pub(super) fn from_raw(key: &[u8]) -> Result<Self, CryptoError> {
        check_len(key.len()).map_err(|_| CryptoError::Unseal)?;
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
        })
    }

    pub(super) fn raw(&self) -> &[u8] {
        &self.key
    }

    pub(super) fn bits(&self) -> u32 {
        // 16, 24 or 32 bytes (checked on every way in).
        u32::try_from(self.key.len() * 8).unwrap_or(0)
    }

    pub(super) fn public_jwk(&self) -> JsonWebKey {
        let mut jwk = JsonWebKey::default();
        jwk.kty = Some(KeyType::Oct);
        jwk
    }

    pub(super) fn load(&self) -> Result<OctKey, CryptoError> {
        let algorithm = match self.key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Err(CryptoError::Unseal),
        };
        let unbound = UnboundKey::new(algorithm, &self.key).map_err(|_| CryptoError::Unseal)?;
        Ok(OctKey {
            key: self.key.clone(),
            gcm: LessSafeKey::new(unbound),
        })
    }
}

/// A loaded AES key: the GCM key, and the raw key for key wrap (aws-lc's wrap takes the key
/// bytes on each call).
pub(super) struct OctKey {
    key: Zeroizing<Vec<u8>>,
    gcm: LessSafeKey,
}

impl OctKey {
    pub(super) fn bits(&self) -> usize {
        self.key.len() * 8
    }

    /// Refuses an algorithm whose key length is not this key's.
    fn check_algorithm(&self, alg: EncryptionAlgorithm) -> Result<(), CryptoError> {
        let Some(len) = alg.aes_key_len() else {
            return Err(unsupported_encryption(alg, KeyFamily::Oct));
        };
        if len != self.key.len() {
            return Err(key_error(format!(
                "Algorithm {alg} needs a {}-bit key; this key has {} bits.",
                len * 8,
                self.bits()
            )));
        }
        Ok(())
    }

    fn check_gcm(&self, alg: EncryptionAlgorithm) -> Result<(), CryptoError> {
        if alg.is_key_wrap() {
            return Err(key_error(format!(
                "Algorithm {alg} wraps keys: use it with wrapKey and unwrapKey."
            )));
        }
        self.check_algorithm(alg)
    }

    fn check_key_wrap(&self, alg: EncryptionAlgorithm) -> Result<(), CryptoError> {
        if alg.is_gcm() {
            return Err(key_error(format!(
                "Algorithm {alg} encrypts data: use it with encrypt and decrypt; wrapKey with \
                 an oct key takes A128KW, A192KW or A256KW."
            )));
        }
        self.check_algorithm(alg)
    }

    pub(super) fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Encrypted, CryptoError> {
        self.check_gcm(alg)?;
        check_data_len("plaintext", plaintext.len())?;
        let aad = aad.unwrap_or_default();
        check_data_len("additional authenticated data", aad.len())?;
        let mut iv = [0u8; NONCE_LEN];
        fill_random(&mut iv)?;
        // Sealed in place in a zeroizing buffer: it holds the plaintext until sealing succeeds.
        let mut buf = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .gcm
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Seal)?;
        Ok(Encrypted {
            ciphertext: std::mem::take(&mut *buf),
            iv: Some(iv.to_vec()),
            tag: Some(tag.as_ref().to_vec()),
        })
    }

    pub(super) fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        tag: Option<&[u8]>,
        aad: Option<&[u8]>,
    ) -> Result<SecretBytes, CryptoError> {
        self.check_gcm(alg)?;
        check_data_len("ciphertext", ciphertext.len())?;
        let aad = aad.unwrap_or_default();
        check_data_len("additional authenticated data", aad.len())?;
        let iv = iv.ok_or_else(|| {
            key_error(format!(
                "Algorithm {alg} needs the iv that the encryption returned."
            ))
        })?;
        let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| {
            key_error(format!(
                "The iv is {} bytes; {alg} uses a {NONCE_LEN}-byte iv.",
                iv.len()
            ))
        })?;
        let tag = tag.ok_or_else(|| {
            key_error(format!(
                "Algorithm {alg} needs the authentication tag that the encryption returned."
            ))
        })?;
        if tag.len() != TAG_LEN {
            return Err(key_error(format!(
                "The authentication tag is {} bytes; {alg} uses a {TAG_LEN}-byte tag.",
                tag.len()
            )));
        }
        // Opened in place in a zeroizing buffer, so the plaintext never sits in plain memory.
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        self.gcm
            .open_in_place_separate_tag(nonce, Aad::from(aad), tag, &mut buf)
            .map_err(|_| key_error(GCM_FAILED))?;
        Ok(SecretBytes::new(std::mem::take(&mut *buf)))
    }

    pub(super) fn wrap(
        &self,
        alg: EncryptionAlgorithm,
        key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.check_key_wrap(alg)?;
        check_data_len("key to wrap", key.len())?;
        if key.len() < aes_kw::MIN_KEY_DATA || !key.len().is_multiple_of(8) {
            return Err(key_error(format!(
                "The key to wrap is {} bytes; {alg} wraps keys of at least {} bytes whose \
                 length is a multiple of 8.",
                key.len(),
                aes_kw::MIN_KEY_DATA
            )));
        }
        let wrapped = match self.key.len() {
            24 => aes_kw::wrap(&cipher::AES_192, &self.key, key),
            _ => {
                let mut out = vec![0u8; key.len() + KW_OVERHEAD];
                AesKek::new(self.kw_cipher(), &self.key)
                    .and_then(|kek| kek.wrap(key, &mut out).map(|w| w.len()))
                    .map(|len| {
                        out.truncate(len);
                        out
                    })
            }
        };
        wrapped.map_err(|_| CryptoError::Seal)
    }

    pub(super) fn unwrap(
        &self,
        alg: EncryptionAlgorithm,
        wrapped: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        self.check_key_wrap(alg)?;
        check_data_len("wrapped key", wrapped.len())?;
        let min = aes_kw::MIN_KEY_DATA + KW_OVERHEAD;
        if wrapped.len() < min || !wrapped.len().is_multiple_of(8) {
            return Err(key_error(format!(
                "The wrapped key is {} bytes; {alg} output is at least {min} bytes long and a \
                 multiple of 8.",
                wrapped.len()
            )));
        }
        let mut unwrapped = match self.key.len() {
            24 => aes_kw::unwrap(&cipher::AES_192, &self.key, wrapped),
            _ => {
                let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
                AesKek::new(self.kw_cipher(), &self.key)
                    .and_then(|kek| kek.unwrap(wrapped, &mut out).map(|p| p.len()))
                    .map(|len| {
                        out.truncate(len);
                        out
                    })
            }
        }
        .map_err(|_| key_error(UNWRAP_FAILED))?;
        Ok(SecretBytes::new(std::mem::take(&mut *unwrapped)))
    }

    /// aws-lc's wrap cipher for a 128- or 256-bit key (192 runs in [`aes_kw`]).
    fn kw_cipher(&self) -> &'static key_wrap::AesBlockCipher {
        if self.key.len() == 16 {
            &key_wrap::AES_128
        } else {
            &key_wrap::AES_256
        }
    }
}
