//! The cryptographic operations on the node: encrypt, decrypt, wrap, unwrap, sign, verify, and
//! random bytes.
//!
//! Parsed keys are kept in a bounded cache keyed by vault incarnation, name and version; a
//! version's material never changes, so an entry never goes stale, and aws-lc cleanses the
//! memory of an evicted key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coffer_crypto::keys::{KeyMaterial, LoadedKey};
use coffer_types::authz::DataOperation;
use coffer_types::keys::{EncryptionAlgorithm, KeyFamily, KeyOperation, SignatureAlgorithm};
use coffer_types::{Error, KeyRecord, VaultName, VaultRecord};
use zeroize::Zeroizing;

use crate::Service;
use crate::keys::{crypto_error, key_context};
use crate::request::RequestContext;

/// Largest payload of one encrypt, decrypt, wrap or unwrap request.
pub const MAX_KEY_OPERATION_BYTES: usize = 64 * 1024;
/// Largest additional authenticated data of an AES-GCM request.
const MAX_AAD_BYTES: usize = 64 * 1024;
/// Most parsed keys a node keeps in memory.
const MAX_CACHED_KEYS: usize = 1_024;
/// Bounds of `GetRandomBytes`, as Azure's.
const RANDOM_BYTES: std::ops::RangeInclusive<u32> = 1..=128;
/// Input of encrypt, decrypt, wrapKey and unwrapKey.
#[derive(Clone, Default)]
pub struct KeyOperationInput {
    pub vault: String,
    pub name: String,
    /// Empty or `None` means the latest.
    pub version: Option<String>,
    pub alg: String,
    pub value: Zeroizing<Vec<u8>>,
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub tag: Vec<u8>,
}

impl std::fmt::Debug for KeyOperationInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOperationInput")
            .field("vault", &self.vault)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("alg", &self.alg)
            .field("value_len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// The result of a key operation and the version that produced it (for its `kid`).
pub struct KeyOperationOutcome {
    pub vault: VaultRecord,
    pub name: String,
    pub version: String,
    /// Ciphertext, plaintext, wrapped or unwrapped key, or signature.
    pub value: Zeroizing<Vec<u8>>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub aad: Vec<u8>,
}

impl std::fmt::Debug for KeyOperationOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOperationOutcome")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("value_len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// Parsed keys, bounded. Keyed by (vault incarnation, case-folded name, version).
#[derive(Default)]
pub(crate) struct LoadedKeys {
    keys: Mutex<HashMap<(String, String, String), Arc<LoadedKey>>>,
}

impl LoadedKeys {
    fn get(&self, id: &(String, String, String)) -> Option<Arc<LoadedKey>> {
        self.lock().get(id).cloned()
    }

    fn insert(&self, id: (String, String, String), key: Arc<LoadedKey>) {
        let mut keys = self.lock();
        if keys.len() >= MAX_CACHED_KEYS
            && let Some(evicted) = keys.keys().next().cloned()
        {
            keys.remove(&evicted);
        }
        keys.insert(id, key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), Arc<LoadedKey>>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn bounded(field: &str, bytes: &[u8], max: usize) -> Result<(), Error> {
    if bytes.len() > max {
        return Err(Error::bad_parameter(format!(
            "The '{field}' parameter is {} bytes; at most {max} are accepted.",
            bytes.len()
        )));
    }
    Ok(())
}

fn non_empty(bytes: &[u8]) -> Option<&[u8]> {
    (!bytes.is_empty()).then_some(bytes)
}

impl Service {
    // Cryptographic operations.

    /// The parsed key of `record`, from the cache or unsealed now.
    fn loaded_key(&self, vault: &VaultRecord, record: &KeyRecord) -> Result<Arc<LoadedKey>, Error> {
        let name_key = record.name.to_ascii_lowercase();
        let id = (vault.id.clone(), name_key, record.version.clone());
        if let Some(key) = self.loaded_keys.get(&id) {
            return Ok(key);
        }
        let data_key = self.data_keys.data_key(vault)?;
        let vault_key = vault.name.to_ascii_lowercase();
        let context = key_context(&vault_key, &id.1, &record.version);
        let private = data_key
            .unseal(&context, &record.sealed_private)
            .map_err(|e| {
                tracing::error!(vault = %vault.name, key = %record.name, version = %record.version, error = %e, "stored key does not unseal");
                Error::internal("The stored key could not be decrypted.")
            })?;
        let material = KeyMaterial::from_bytes(private.expose()).map_err(|e| {
            tracing::error!(vault = %vault.name, key = %record.name, version = %record.version, error = %e, "stored key does not parse");
            Error::internal("The stored key could not be read.")
        })?;
        let key = Arc::new(material.load().map_err(crypto_error)?);
        self.loaded_keys.insert(id, key.clone());
        Ok(key)
    }

    /// The version an operation with algorithm `alg` names, checked against the algorithm's
    /// key family and the version's attributes, and its parsed key.
    async fn usable_key(
        &self,
        ctx: &RequestContext,
        input: (&str, &str, Option<&str>),
        operation: KeyOperation,
        data_operation: DataOperation,
        alg: (&str, KeyFamily),
    ) -> Result<(VaultRecord, KeyRecord, Arc<LoadedKey>), Error> {
        let (vault, name, version) = input;
        let (vault, record) = self
            .read_key(ctx, vault, name, version, data_operation)
            .await?;
        // A request that could never work with this key is a bad request, whatever the key's
        // operations and dates.
        if record.kty.family() != alg.1 {
            return Err(Error::bad_parameter(format!(
                "Algorithm {} is not supported by a key of type {}.",
                alg.0, record.kty
            )));
        }
        record.check_operation(operation, self.clock.now_unix())?;
        let key = self.loaded_key(&vault, &record)?;
        Ok((vault, record, key))
    }

    /// Encrypt, decrypt, wrapKey or unwrapKey.
    pub async fn key_operation(
        &self,
        ctx: &RequestContext,
        operation: KeyOperation,
        input: KeyOperationInput,
    ) -> Result<KeyOperationOutcome, Error> {
        let data_operation = match operation {
            KeyOperation::Encrypt => DataOperation::KeyEncrypt,
            KeyOperation::Decrypt => DataOperation::KeyDecrypt,
            KeyOperation::WrapKey => DataOperation::KeyWrap,
            KeyOperation::UnwrapKey => DataOperation::KeyUnwrap,
            other => {
                return Err(Error::bad_parameter(format!(
                    "Operation {other} is not an encryption operation."
                )));
            }
        };
        let alg = EncryptionAlgorithm::parse(&input.alg)?;
        bounded("value", &input.value, MAX_KEY_OPERATION_BYTES)?;
        bounded("aad", &input.aad, MAX_AAD_BYTES)?;
        bounded("iv", &input.iv, 64)?;
        bounded("tag", &input.tag, 64)?;
        let wraps = matches!(operation, KeyOperation::WrapKey | KeyOperation::UnwrapKey);
        if wraps && alg.is_gcm() {
            return Err(Error::bad_parameter(format!(
                "Algorithm {alg} encrypts; wrapKey and unwrapKey take RSA or AES key wrap \
                 algorithms."
            )));
        }
        if !wraps && alg.is_key_wrap() {
            return Err(Error::bad_parameter(format!(
                "Algorithm {alg} wraps keys; use wrapKey and unwrapKey with it."
            )));
        }
        let gcm_fields = !input.iv.is_empty() || !input.aad.is_empty() || !input.tag.is_empty();
        if !alg.is_gcm() && gcm_fields {
            return Err(Error::bad_parameter(format!(
                "Algorithm {alg} takes no iv, aad or tag."
            )));
        }
        if alg.is_gcm() && operation == KeyOperation::Encrypt && !input.iv.is_empty() {
            return Err(Error::bad_parameter(
                "The iv of AES-GCM encryption is generated by the vault; send none.",
            ));
        }
        let (vault, record, key) = self
            .usable_key(
                ctx,
                (&input.vault, &input.name, input.version.as_deref()),
                operation,
                data_operation,
                (alg.as_str(), alg.family()),
            )
            .await?;
        let aad = non_empty(&input.aad);
        let mut outcome = KeyOperationOutcome {
            vault,
            name: record.name,
            version: record.version,
            value: Zeroizing::new(Vec::new()),
            iv: Vec::new(),
            tag: Vec::new(),
            aad: input.aad.clone(),
        };
        match operation {
            KeyOperation::Encrypt => {
                let encrypted = key.encrypt(alg, &input.value, aad).map_err(crypto_error)?;
                outcome.value = Zeroizing::new(encrypted.ciphertext);
                outcome.iv = encrypted.iv.unwrap_or_default();
                outcome.tag = encrypted.tag.unwrap_or_default();
            }
            KeyOperation::Decrypt => {
                let plain = key
                    .decrypt(
                        alg,
                        &input.value,
                        non_empty(&input.iv),
                        non_empty(&input.tag),
                        aad,
                    )
                    .map_err(crypto_error)?;
                outcome.value = Zeroizing::new(plain.expose().to_vec());
            }
            KeyOperation::WrapKey => {
                outcome.value =
                    Zeroizing::new(key.wrap_key(alg, &input.value).map_err(crypto_error)?);
            }
            _ => {
                let plain = key.unwrap_key(alg, &input.value).map_err(crypto_error)?;
                outcome.value = Zeroizing::new(plain.expose().to_vec());
            }
        }
        Ok(outcome)
    }

    /// Signs a digest the caller computed.
    pub async fn sign(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
        alg: &str,
        digest: &[u8],
    ) -> Result<KeyOperationOutcome, Error> {
        let alg = SignatureAlgorithm::parse(alg)?;
        bounded("value", digest, 128)?;
        let (vault, record, key) = self
            .usable_key(
                ctx,
                (vault, name, version),
                KeyOperation::Sign,
                DataOperation::KeySign,
                (alg.as_str(), alg.family()),
            )
            .await?;
        let signature = key.sign(alg, digest).map_err(crypto_error)?;
        Ok(KeyOperationOutcome {
            vault,
            name: record.name,
            version: record.version,
            value: Zeroizing::new(signature),
            iv: Vec::new(),
            tag: Vec::new(),
            aad: Vec::new(),
        })
    }

    /// Whether `signature` is a valid signature of `digest`. A signature that does not verify
    /// is `Ok(false)`, not an error.
    #[allow(clippy::too_many_arguments)]
    pub async fn verify(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
        alg: &str,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        let alg = SignatureAlgorithm::parse(alg)?;
        bounded("digest", digest, 128)?;
        bounded("value", signature, 1024)?;
        let (_, _, key) = self
            .usable_key(
                ctx,
                (vault, name, version),
                KeyOperation::Verify,
                DataOperation::KeyVerify,
                (alg.as_str(), alg.family()),
            )
            .await?;
        key.verify(alg, digest, signature).map_err(crypto_error)
    }

    /// `count` bytes (1 to 128) from the node's random number generator. The vault must exist
    /// and be one the caller's tenant may reach.
    pub async fn random_bytes(
        &self,
        ctx: &RequestContext,
        vault: &str,
        count: u32,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if !RANDOM_BYTES.contains(&count) {
            return Err(Error::bad_parameter(format!(
                "count must be between {} and {}; {count} was given.",
                RANDOM_BYTES.start(),
                RANDOM_BYTES.end()
            )));
        }
        let vault_name = VaultName::parse(vault)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.check_vault_reachable(ctx, &vault)?;
        let mut bytes = Zeroizing::new(vec![0u8; count as usize]);
        coffer_crypto::fill_random(&mut bytes).map_err(|e| Error::internal(e.to_string()))?;
        Ok(bytes)
    }
}
