//! The cryptographic operations on the node: encrypt, decrypt, wrap, unwrap, sign, verify, and
//! random bytes.
//!
//! Parsed keys are kept in a bounded cache keyed by vault incarnation, name and version; a
//! version's material never changes, so an entry never goes stale. Entries unused for five
//! minutes are dropped (the lifecycle job sweeps every minute), so a purged key's material does
//! not stay in memory, and aws-lc cleanses the memory of a dropped key. RSA private-key
//! operations, which take milliseconds, run on the blocking pool, off the threads that serve
//! Raft and other requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_crypto::keys::{KeyMaterial, KeySpec, LoadedKey};
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
/// How long a parsed key stays cached after its last use.
const CACHE_IDLE: Duration = Duration::from_secs(300);
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

/// (vault incarnation, case-folded name, version).
type KeyId = (String, String, String);

/// Parsed keys, bounded in number and in idle time.
#[derive(Default)]
pub(crate) struct LoadedKeys {
    keys: Mutex<HashMap<KeyId, (Instant, Arc<LoadedKey>)>>,
}

impl LoadedKeys {
    fn get(&self, id: &KeyId) -> Option<Arc<LoadedKey>> {
        let mut keys = self.lock();
        let entry = keys.get_mut(id)?;
        entry.0 = Instant::now();
        Some(entry.1.clone())
    }

    fn insert(&self, id: KeyId, key: Arc<LoadedKey>) {
        let mut keys = self.lock();
        Self::drop_idle(&mut keys);
        if keys.len() >= MAX_CACHED_KEYS
            && let Some(oldest) = keys
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| id.clone())
        {
            keys.remove(&oldest);
        }
        keys.insert(id, (Instant::now(), key));
    }

    /// Drops every key unused for [`CACHE_IDLE`].
    pub(crate) fn sweep(&self) {
        Self::drop_idle(&mut self.lock());
    }

    /// Drops the cached versions of one key (`name: Some`) or of a whole vault.
    pub(crate) fn forget(&self, vault_id: &str, name: Option<&str>) {
        self.lock().retain(|(vault, key, _), _| {
            vault != vault_id || name.is_some_and(|n| !key.eq_ignore_ascii_case(n))
        });
    }

    fn drop_idle(keys: &mut HashMap<KeyId, (Instant, Arc<LoadedKey>)>) {
        keys.retain(|_, (used, _)| used.elapsed() < CACHE_IDLE);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, (Instant, Arc<LoadedKey>)>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `work` on the blocking pool: for operations that take milliseconds (RSA private-key
/// operations, key generation), which would otherwise stall the threads serving Raft.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::internal("A key operation failed inside the server."))
}

/// Key generations running at once: RSA generation takes up to seconds of CPU, and a burst of
/// creates must not take every core from the node's other work.
static GENERATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// New key material of `spec`, generated on the blocking pool.
pub(crate) async fn generate_material(spec: KeySpec) -> Result<KeyMaterial, Error> {
    let _permit = GENERATIONS
        .acquire()
        .await
        .map_err(|_| Error::unavailable("The node is shutting down."))?;
    off_runtime(move || KeyMaterial::generate(&spec))
        .await?
        .map_err(crypto_error)
}

/// Refuses an algorithm of another key family: a request that could never work with this key
/// is a bad request, whatever the key's operations and dates.
fn same_family(alg: &str, family: KeyFamily, record: &KeyRecord) -> Result<(), Error> {
    if record.kty.family() != family {
        return Err(Error::bad_parameter(format!(
            "Algorithm {alg} is not supported by a key of type {}.",
            record.kty
        )));
    }
    Ok(())
}

/// The checks of sign and verify that do not depend on the key's state: the family, the
/// curve, and the digest's length.
fn signable(alg: SignatureAlgorithm, digest: &[u8], record: &KeyRecord) -> Result<(), Error> {
    same_family(alg.as_str(), alg.family(), record)?;
    if let Some(curve) = alg.curve()
        && record.public.crv != Some(curve)
    {
        return Err(Error::bad_parameter(format!(
            "Algorithm {alg} needs a {curve} key; this key is on {}.",
            record
                .public
                .crv
                .map(|c| c.as_str())
                .unwrap_or("another curve")
        )));
    }
    if digest.len() != alg.digest_len() {
        return Err(Error::bad_parameter(format!(
            "The digest is {} bytes; {alg} signs a {}-byte digest.",
            digest.len(),
            alg.digest_len()
        )));
    }
    Ok(())
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

    /// The version an operation names, checked first by `request` (what no state of the key
    /// could make work) and then against the version's attributes, and its parsed key.
    async fn usable_key(
        &self,
        ctx: &RequestContext,
        input: (&str, &str, Option<&str>),
        operation: KeyOperation,
        data_operation: DataOperation,
        request: impl FnOnce(&KeyRecord) -> Result<(), Error>,
    ) -> Result<(VaultRecord, KeyRecord, Arc<LoadedKey>), Error> {
        let (vault, name, version) = input;
        let (vault, record) = self
            .read_key(ctx, vault, name, version, data_operation)
            .await?;
        request(&record)?;
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
                |record| same_family(alg.as_str(), alg.family(), record),
            )
            .await?;
        let rsa = record.kty.family() == KeyFamily::Rsa;
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
            KeyOperation::Decrypt if rsa => {
                let value = input.value.clone();
                let plain = off_runtime(move || key.decrypt(alg, &value, None, None, None))
                    .await?
                    .map_err(crypto_error)?;
                outcome.value = Zeroizing::new(plain.expose().to_vec());
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
            _ if rsa => {
                let value = input.value.clone();
                let plain = off_runtime(move || key.unwrap_key(alg, &value))
                    .await?
                    .map_err(crypto_error)?;
                outcome.value = Zeroizing::new(plain.expose().to_vec());
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
                |record| signable(alg, digest, record),
            )
            .await?;
        let signature = if record.kty.family() == KeyFamily::Rsa {
            let digest = digest.to_vec();
            off_runtime(move || key.sign(alg, &digest)).await?
        } else {
            key.sign(alg, digest)
        }
        .map_err(crypto_error)?;
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
                |record| signable(alg, digest, record),
            )
            .await?;
        key.verify(alg, digest, signature).map_err(crypto_error)
    }

    /// Drops parsed keys unused for five minutes; the lifecycle job calls it every minute.
    pub fn sweep_key_cache(&self) {
        self.loaded_keys.sweep();
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
