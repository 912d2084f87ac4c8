//! Sealing values with a vault's data key (AES-256-GCM).
//!
//! Sealed format, version 1: `0x01 || nonce (12) || ciphertext || tag (16)`. Nonces are random:
//! each vault has its own key, and a vault would need billions of writes before random 96-bit
//! nonces approach the collision bound NIST SP 800-38D sets.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use coffer_types::ObjectKind;
use zeroize::Zeroizing;

use crate::{CryptoError, SecretBytes, fill_random};

const FORMAT_V1: u8 = 1;
pub(crate) const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Where a value lives; bound into the ciphertext as additional data.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// The vault's case-folded name.
    pub vault: &'a str,
    pub kind: ObjectKind,
    /// The object's case-folded name.
    pub name: &'a str,
    pub version: &'a str,
}

impl SealContext<'_> {
    fn additional_data(&self) -> Vec<u8> {
        // Components are NUL-separated; none may contain NUL (names are validated upstream).
        let mut aad = Vec::with_capacity(64);
        for part in [
            "coffer.seal.v1",
            self.vault,
            self.kind.as_str(),
            self.name,
            self.version,
        ] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }
}

/// A vault's data key. The raw bytes live only inside aws-lc, which cleanses them on drop.
pub struct DataKey {
    key: LessSafeKey,
}

impl DataKey {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::Unseal)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plaintext` for `context`.
    pub fn seal(
        &self,
        context: &SealContext<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.key, &context.additional_data(), plaintext)
    }

    /// Opens a value sealed by [`DataKey::seal`] for the same context.
    pub fn unseal(
        &self,
        context: &SealContext<'_>,
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        unseal_with(&self.key, &context.additional_data(), sealed)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

pub(crate) fn seal_with(
    key: &LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| CryptoError::Seal)?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn unseal_with(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<SecretBytes, CryptoError> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
        return Err(CryptoError::Unseal);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
    // Opened in place inside a zeroizing buffer, so the plaintext never sits in plain memory.
    let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CryptoError::Unseal)?
        .len();
    buf.truncate(len);
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_bytes(&[7u8; KEY_LEN]).unwrap()
    }

    fn ctx<'a>(name: &'a str, version: &'a str) -> SealContext<'a> {
        SealContext {
            vault: "kv1",
            kind: ObjectKind::Secret,
            name,
            version,
        }
    }

    #[test]
    fn round_trip() {
        let k = key();
        let sealed = k.seal(&ctx("a", "v1"), b"S3cret!").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"S3cret!"));
        assert_eq!(
            k.unseal(&ctx("a", "v1"), &sealed).unwrap().expose(),
            b"S3cret!"
        );
    }

    #[test]
    fn context_is_bound() {
        let k = key();
        let sealed = k.seal(&ctx("a", "v1"), b"value").unwrap();
        assert!(k.unseal(&ctx("b", "v1"), &sealed).is_err(), "other name");
        assert!(k.unseal(&ctx("a", "v2"), &sealed).is_err(), "other version");
        let other_kind = SealContext {
            kind: ObjectKind::Key,
            ..ctx("a", "v1")
        };
        assert!(k.unseal(&other_kind, &sealed).is_err(), "other kind");
        let other_vault = SealContext {
            vault: "kv2",
            ..ctx("a", "v1")
        };
        assert!(k.unseal(&other_vault, &sealed).is_err(), "other vault");
    }

    #[test]
    fn tampering_and_truncation_are_refused() {
        let k = key();
        let sealed = k.seal(&ctx("a", "v1"), b"value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(k.unseal(&ctx("a", "v1"), &bad).is_err(), "flip at {i}");
        }
        assert!(k.unseal(&ctx("a", "v1"), &sealed[..10]).is_err());
        assert!(k.unseal(&ctx("a", "v1"), &[]).is_err());
    }

    #[test]
    fn another_key_cannot_unseal() {
        let sealed = key().seal(&ctx("a", "v1"), b"value").unwrap();
        let other = DataKey::from_bytes(&[8u8; KEY_LEN]).unwrap();
        assert!(other.unseal(&ctx("a", "v1"), &sealed).is_err());
    }

    /// Known-answer check against NIST's GCM test vector (gcmEncryptExtIV256, Count 0 of the
    /// 96-bit IV, 128-bit tag, no AAD, 128-bit plaintext set) through our framing.
    #[test]
    fn nist_known_answer() {
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let key = hex("31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22");
        let iv = hex("0d18e06c7c725ac9e362e1ce");
        let pt = hex("2db5168e932556f8089a0622981d017d");
        let ct = hex("fa4362189661d163fcd6a56d8bf0405a");
        let tag = hex("d636ac1bbedd5cc3ee727dc2ab4a9489");
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
        let mut sealed = vec![FORMAT_V1];
        sealed.extend_from_slice(&iv);
        sealed.extend_from_slice(&ct);
        sealed.extend_from_slice(&tag);
        assert_eq!(
            unseal_with(&k, &[], &sealed).unwrap().expose(),
            pt.as_slice()
        );
    }

    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", key()), "DataKey(<redacted>)");
    }
}
