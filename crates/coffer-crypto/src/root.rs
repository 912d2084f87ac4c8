//! The root key: the top of the key hierarchy. It wraps each vault's data key and the few
//! cluster-internal secrets (token signing keys); values are never sealed with it directly. Dev mode generates it into the data directory (mode 0600);
//! production reads it from a key file. Shamir unsealing and HSMs plug in here later.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::seal::{KEY_LEN, seal_with, unseal_with};
use crate::{
    CryptoError, DataKey, SecretBytes, create_private_file, fill_random, read_private_file,
};

/// The node's root key.
pub struct RootKey {
    key: LessSafeKey,
}

impl RootKey {
    /// Loads a root key file: 32 bytes, base64, refused when group or world readable.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let text = read_private_file(path)?;
        let text = std::str::from_utf8(&text).map_err(|_| CryptoError::KeyFile {
            path: path.to_owned(),
            reason: "not base64 text".into(),
        })?;
        let bytes =
            Zeroizing::new(
                STANDARD
                    .decode(text.trim())
                    .map_err(|_| CryptoError::KeyFile {
                        path: path.to_owned(),
                        reason: "not base64 text".into(),
                    })?,
            );
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::KeyFile {
                path: path.to_owned(),
                reason: format!("holds {} bytes; a root key is {KEY_LEN}", bytes.len()),
            });
        }
        Self::from_bytes(&bytes)
    }

    /// Generates a new root key into `path` (created 0600, never overwritten) and returns it.
    pub fn generate(path: &Path) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut *bytes)?;
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(bytes.as_slice())));
        create_private_file(path, text.as_bytes())?;
        Self::from_bytes(&*bytes)
    }

    /// Loads the key at `path`, generating it first if the file does not exist (dev mode).
    pub fn load_or_generate(path: &Path) -> Result<Self, CryptoError> {
        if path.exists() {
            Self::load(path)
        } else {
            Self::generate(path)
        }
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::Seal)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Creates a fresh data key for `vault` (case-folded name) and returns it with its wrapped
    /// form, which is what gets replicated.
    pub fn new_data_key(&self, vault: &str) -> Result<(DataKey, Vec<u8>), CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut *bytes)?;
        let wrapped = seal_with(&self.key, &wrap_context(vault), &*bytes)?;
        Ok((DataKey::from_bytes(&*bytes)?, wrapped))
    }

    /// Unwraps a vault's data key.
    pub fn unwrap_data_key(&self, vault: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let bytes = unseal_with(&self.key, &wrap_context(vault), wrapped)?;
        DataKey::from_bytes(bytes.expose())
    }
}

impl RootKey {
    /// Seals a cluster-internal secret (a token signing key, say) directly with the root key,
    /// bound to `purpose` so it opens only as what it was sealed for.
    pub fn seal_internal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.key, &internal_context(purpose), plaintext)
    }

    /// Opens what [`RootKey::seal_internal`] sealed for the same `purpose`.
    pub fn unseal_internal(
        &self,
        purpose: &str,
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        unseal_with(&self.key, &internal_context(purpose), sealed)
    }
}

fn internal_context(purpose: &str) -> Vec<u8> {
    let mut aad = b"coffer.internal.v1\0".to_vec();
    aad.extend_from_slice(purpose.as_bytes());
    aad
}

fn wrap_context(vault: &str) -> Vec<u8> {
    let mut aad = b"coffer.vault-key.v1\0".to_vec();
    aad.extend_from_slice(vault.as_bytes());
    aad
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SealContext;
    use coffer_types::ObjectKind;

    #[test]
    fn generated_key_reloads_and_unwraps_data_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let root = RootKey::generate(&path).unwrap();
        let sealed = root.seal_internal("signing-key/k1", b"pkcs8").unwrap();
        assert_eq!(
            root.unseal_internal("signing-key/k1", &sealed)
                .unwrap()
                .expose(),
            b"pkcs8"
        );
        assert!(root.unseal_internal("signing-key/k2", &sealed).is_err());
        let (dk, wrapped) = root.new_data_key("kv1").unwrap();
        let ctx = SealContext {
            vault: "kv1",
            kind: ObjectKind::Secret,
            name: "a",
            version: "v",
        };
        let sealed = dk.seal(&ctx, b"hello").unwrap();

        let reloaded = RootKey::load(&path).unwrap();
        let dk2 = reloaded.unwrap_data_key("kv1", &wrapped).unwrap();
        assert_eq!(dk2.unseal(&ctx, &sealed).unwrap().expose(), b"hello");
        assert!(
            reloaded.unwrap_data_key("kv2", &wrapped).is_err(),
            "bound to its vault"
        );
        assert!(RootKey::generate(&path).is_err(), "never overwrites a key");
        assert_eq!(format!("{root:?}"), "RootKey(<redacted>)");
    }

    #[test]
    fn wrong_length_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        create_private_file(&path, STANDARD.encode([1u8; 16]).as_bytes()).unwrap();
        assert!(
            RootKey::load(&path)
                .unwrap_err()
                .to_string()
                .contains("16 bytes")
        );
    }
}
