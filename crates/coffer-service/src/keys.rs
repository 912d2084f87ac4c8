//! Key operations: create, import, read, update, rotate and rotation policies, and the
//! cryptographic operations on the node (encrypt, decrypt, wrap, unwrap, sign, verify).
//!
//! Private material is generated or imported here, sealed with the vault's data key before it
//! is proposed (the Raft log only carries ciphertext), and unsealed only to run an operation.
//! Parsed keys are kept in a bounded cache keyed by vault incarnation, name and version; a
//! version's material never changes, so an entry never goes stale, and aws-lc cleanses the
//! memory of an evicted key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use coffer_crypto::keys::{KeyMaterial, KeySpec, LoadedKey};
use coffer_crypto::{CryptoError, SealContext};
use coffer_store::{Applied, Command, KeyPatch, Page};
use coffer_types::authz::DataOperation;
use coffer_types::keys::{
    CurveName, EncryptionAlgorithm, IsoDuration, JsonWebKey, KeyFamily, KeyOperation, KeyType,
    LifetimeAction, LifetimeTrigger, RotationAction, SignatureAlgorithm,
};
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{
    DeletedObjectRecord, Error, KeyRecord, KeyRotationPolicyRecord, ObjectKind, ObjectName, Sku,
    Tags, VaultName, VaultRecord, Version,
};
use zeroize::Zeroizing;

use crate::paging::{decode_token, encode_token, page_size};
use crate::request::{Consistency, RequestContext};
use crate::secrets::{optional_version, validate_time};
use crate::{Listing, Service};

/// Largest payload of one encrypt, decrypt, wrap or unwrap request.
pub const MAX_KEY_OPERATION_BYTES: usize = 64 * 1024;
/// Largest additional authenticated data of an AES-GCM request.
const MAX_AAD_BYTES: usize = 64 * 1024;
/// Most parsed keys a node keeps in memory.
const MAX_CACHED_KEYS: usize = 1_024;
/// Bounds of `GetRandomBytes`, as Azure's.
const RANDOM_BYTES: std::ops::RangeInclusive<u32> = 1..=128;
/// Most rotation policies one pass of the rotation job reads.
const ROTATION_BATCH: usize = 1_000;

/// Input of [`Service::create_key`]. Strings are Azure's names, parsed here.
#[derive(Debug, Clone, Default)]
pub struct CreateKey {
    pub vault: String,
    pub name: String,
    pub kty: String,
    pub key_size: Option<u32>,
    pub public_exponent: Option<u32>,
    pub crv: Option<String>,
    /// Empty means every operation the key type supports.
    pub key_ops: Vec<String>,
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// Input of [`Service::import_key`].
#[derive(Debug, Clone)]
pub struct ImportKey {
    pub vault: String,
    pub name: String,
    /// With its private parts; they are wiped once the material is taken over.
    pub key: JsonWebKey,
    /// Import as an `-HSM` key type.
    pub hsm: bool,
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// Input of [`Service::update_key`]; `None` leaves an attribute as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub key_ops: Option<Vec<String>>,
    pub tags: Option<Vec<(String, String)>>,
}

/// A key version with its vault (for ids and recovery attributes). Holds public parts only.
#[derive(Debug, Clone)]
pub struct KeyBundle {
    pub vault: VaultRecord,
    pub record: KeyRecord,
}

/// A deleted key: its deletion and its latest version.
#[derive(Debug, Clone)]
pub struct DeletedKeyBundle {
    pub vault: VaultRecord,
    pub deleted: DeletedObjectRecord,
    pub record: KeyRecord,
}

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

/// A lifetime action as a caller writes it.
#[derive(Debug, Clone, Default)]
pub struct LifetimeActionInput {
    pub action: String,
    pub time_after_create: Option<String>,
    pub time_before_expiry: Option<String>,
}

/// A key's rotation policy with the key it belongs to.
#[derive(Debug, Clone)]
pub struct RotationPolicyBundle {
    pub vault: VaultRecord,
    pub name: String,
    pub policy: KeyRotationPolicyRecord,
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

/// What key material is sealed to: its vault and name (case-folded) and its version.
pub(crate) fn key_context<'a>(
    vault_key: &'a str,
    name_key: &'a str,
    version: &'a str,
) -> SealContext<'a> {
    SealContext {
        vault: vault_key,
        kind: ObjectKind::Key,
        name: name_key,
        version,
    }
}

/// A request the crypto layer refused is the caller's mistake; its message is for them.
fn crypto_error(e: CryptoError) -> Error {
    match e {
        CryptoError::Key(message) => Error::bad_parameter(message),
        other => Error::internal(other.to_string()),
    }
}

fn expect_key(applied: Applied) -> Result<KeyRecord, Error> {
    match applied {
        Applied::Key(record) => Ok(*record),
        Applied::Failed(e) => Err(e),
        other => Err(Error::internal(format!(
            "unexpected store answer {other:?}"
        ))),
    }
}

/// The operations a key of `family` can perform, which new keys get by default.
fn default_ops(family: KeyFamily) -> Vec<KeyOperation> {
    use KeyOperation::*;
    match family {
        KeyFamily::Rsa => vec![Encrypt, Decrypt, Sign, Verify, WrapKey, UnwrapKey],
        KeyFamily::Ec => vec![Sign, Verify],
        KeyFamily::Oct => vec![Encrypt, Decrypt, WrapKey, UnwrapKey],
    }
}

/// Parses `key_ops`, refusing operations a key of `family` cannot perform. Empty means the
/// family's default.
fn parse_ops(ops: &[String], family: KeyFamily) -> Result<Vec<KeyOperation>, Error> {
    if ops.is_empty() {
        return Ok(default_ops(family));
    }
    let supported = default_ops(family);
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let op = KeyOperation::parse(op)?;
        let usable = supported.contains(&op) || matches!(op, KeyOperation::Import);
        if !usable {
            return Err(Error::bad_parameter(format!(
                "Operation {op} is not supported by a key of this type."
            )));
        }
        if !out.contains(&op) {
            out.push(op);
        }
    }
    Ok(out)
}

fn vault_allows(vault: &VaultRecord, kty: KeyType) -> Result<(), Error> {
    if kty.is_hsm() && vault.sku != Sku::Premium {
        return Err(Error::bad_parameter(format!(
            "Key type {kty} needs a premium vault; vault {} is standard.",
            vault.name
        )));
    }
    Ok(())
}

/// The spec of a new key from a create request.
fn create_spec(input: &CreateKey, kty: KeyType) -> Result<KeySpec, Error> {
    match kty.family() {
        KeyFamily::Rsa => Ok(KeySpec::Rsa {
            bits: input.key_size.filter(|s| *s != 0).unwrap_or(2048),
            public_exponent: input.public_exponent.filter(|e| *e != 0).unwrap_or(65_537),
        }),
        KeyFamily::Ec => {
            let curve = match input.crv.as_deref().filter(|c| !c.is_empty()) {
                Some(crv) => CurveName::parse(crv)?,
                None => CurveName::P256,
            };
            Ok(KeySpec::Ec { curve })
        }
        KeyFamily::Oct => Ok(KeySpec::Oct {
            bits: input.key_size.filter(|s| *s != 0).unwrap_or(256),
        }),
    }
}

/// The spec that makes another key like `record` (for rotation).
fn same_spec(record: &KeyRecord) -> Result<KeySpec, Error> {
    match record.kty.family() {
        KeyFamily::Rsa => Ok(KeySpec::Rsa {
            bits: record.key_size.unwrap_or(2048),
            public_exponent: 65_537,
        }),
        KeyFamily::Ec => Ok(KeySpec::Ec {
            curve: record
                .public
                .crv
                .ok_or_else(|| Error::internal("A stored EC key has no curve."))?,
        }),
        KeyFamily::Oct => Ok(KeySpec::Oct {
            bits: record.key_size.unwrap_or(256),
        }),
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

fn parse_policy_input(
    actions: &[LifetimeActionInput],
    expiry_time: Option<&str>,
) -> Result<(Vec<LifetimeAction>, Option<IsoDuration>), Error> {
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        let action = RotationAction::parse(&a.action)?;
        let after = a.time_after_create.as_deref().filter(|t| !t.is_empty());
        let before = a.time_before_expiry.as_deref().filter(|t| !t.is_empty());
        let trigger = match (after, before) {
            (Some(t), None) => LifetimeTrigger::TimeAfterCreate(IsoDuration::parse(t)?),
            (None, Some(t)) => LifetimeTrigger::TimeBeforeExpiry(IsoDuration::parse(t)?),
            _ => {
                return Err(Error::bad_parameter(
                    "Each lifetime action needs exactly one trigger: timeAfterCreate or \
                     timeBeforeExpiry.",
                ));
            }
        };
        out.push(LifetimeAction { trigger, action });
    }
    let expiry = expiry_time
        .filter(|t| !t.is_empty())
        .map(IsoDuration::parse)
        .transpose()?;
    Ok((out, expiry))
}

impl Service {
    // Creating keys.

    /// Creates a key (a new version when the name exists) with material generated here.
    pub async fn create_key(
        &self,
        ctx: &RequestContext,
        input: CreateKey,
    ) -> Result<KeyBundle, Error> {
        let vault_name = VaultName::parse(&input.vault)?;
        let name = ObjectName::parse(&input.name)?;
        let kty = KeyType::parse(if input.kty.is_empty() {
            "RSA"
        } else {
            &input.kty
        })?;
        let key_ops = parse_ops(&input.key_ops, kty.family())?;
        validate_time("nbf", input.not_before)?;
        validate_time("exp", input.expires)?;
        let tags = Tags::new(input.tags.clone())?;
        let spec = create_spec(&input, kty)?;
        let vault = self
            .vault_for(&vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, DataOperation::KeyCreate, Some(&name.key()))?;
        vault_allows(&vault, kty)?;
        let material = KeyMaterial::generate(&spec).map_err(crypto_error)?;
        let draft = NewVersion {
            kty,
            key_ops,
            enabled: input.enabled.unwrap_or(true),
            not_before: input.not_before,
            expires: input.expires,
            tags,
            imported: false,
        };
        self.put_version(ctx.request_id(), &vault, &name, &material, draft, None)
            .await
    }

    /// Imports a key from a JSON Web Key with its private parts, which must belong together.
    pub async fn import_key(
        &self,
        ctx: &RequestContext,
        mut input: ImportKey,
    ) -> Result<KeyBundle, Error> {
        let result = self.import_key_inner(ctx, &input).await;
        input.key.wipe_private_parts();
        result
    }

    async fn import_key_inner(
        &self,
        ctx: &RequestContext,
        input: &ImportKey,
    ) -> Result<KeyBundle, Error> {
        let vault_name = VaultName::parse(&input.vault)?;
        let name = ObjectName::parse(&input.name)?;
        let Some(kty) = input.key.kty else {
            return Err(Error::bad_parameter("The key to import has no 'kty'."));
        };
        let kty = match (input.hsm, kty.family()) {
            (false, _) => kty,
            (true, KeyFamily::Rsa) => KeyType::RsaHsm,
            (true, KeyFamily::Ec) => KeyType::EcHsm,
            (true, KeyFamily::Oct) => KeyType::OctHsm,
        };
        if !input.key.has_private_parts() {
            return Err(Error::bad_parameter(
                "The key to import holds no private parts: Coffer imports private keys only.",
            ));
        }
        let ops: Vec<String> = input
            .key
            .key_ops
            .iter()
            .map(|op| op.as_str().to_owned())
            .collect();
        let key_ops = parse_ops(&ops, kty.family())?;
        validate_time("nbf", input.not_before)?;
        validate_time("exp", input.expires)?;
        let tags = Tags::new(input.tags.clone())?;
        let vault = self
            .vault_for(&vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, DataOperation::KeyImport, Some(&name.key()))?;
        vault_allows(&vault, kty)?;
        let material = KeyMaterial::import(&input.key).map_err(crypto_error)?;
        if material.family() != kty.family() {
            return Err(Error::bad_parameter(
                "The key's material does not match its 'kty'.",
            ));
        }
        let draft = NewVersion {
            kty,
            key_ops,
            enabled: input.enabled.unwrap_or(true),
            not_before: input.not_before,
            expires: input.expires,
            tags,
            imported: true,
        };
        self.put_version(ctx.request_id(), &vault, &name, &material, draft, None)
            .await
    }

    /// Seals `material` into a new version of `name` and proposes it. With `replaces`, only
    /// while that version is still the latest (rotation).
    async fn put_version(
        &self,
        request_id: &str,
        vault: &VaultRecord,
        name: &ObjectName,
        material: &KeyMaterial,
        draft: NewVersion,
        replaces: Option<String>,
    ) -> Result<KeyBundle, Error> {
        let data_key = self.data_keys.data_key(vault)?;
        let version = coffer_crypto::new_version().map_err(|e| Error::internal(e.to_string()))?;
        let (vault_key, name_key) = (vault.name.to_ascii_lowercase(), name.key());
        let context = key_context(&vault_key, &name_key, version.as_str());
        let private = material.to_bytes();
        // Sealed here, before the proposal: the Raft log only ever carries ciphertext.
        let sealed_private = data_key
            .seal(&context, private.expose())
            .map_err(|e| Error::internal(e.to_string()))?;
        let now = self.clock.now_unix();
        let record = KeyRecord {
            format: RECORD_FORMAT,
            name: name.as_str().to_owned(),
            version: version.to_string(),
            kty: draft.kty,
            key_ops: draft.key_ops,
            key_size: material.key_size(),
            public: material.public_jwk(),
            sealed_private,
            enabled: draft.enabled,
            not_before: draft.not_before,
            expires: draft.expires,
            created: now,
            updated: now,
            tags: draft.tags,
            imported: draft.imported,
        };
        let command = Command::PutKey {
            vault: vault_key,
            vault_id: vault.id.clone(),
            record: Box::new(record),
            expected_head: replaces,
        };
        let record = expect_key(self.store.write(request_id.to_owned(), command).await?)?;
        Ok(KeyBundle {
            vault: vault.clone(),
            record,
        })
    }

    // Reading and updating.

    /// One version (the latest when `version` is empty), public parts only.
    pub async fn get_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<KeyBundle, Error> {
        let (vault, record) = self
            .read_key(ctx, vault, name, version, DataOperation::KeyGet)
            .await?;
        Ok(KeyBundle { vault, record })
    }

    /// The vault and version a read or an operation names, once the caller may do
    /// `operation` on the key.
    async fn read_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
        operation: DataOperation,
    ) -> Result<(VaultRecord, KeyRecord), Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let version = optional_version(version)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, operation, Some(&name.key()))?;
        let record = self
            .store
            .key(
                &vault_name.key(),
                &name.key(),
                version.as_ref().map(Version::as_str),
            )?
            .ok_or_else(|| match &version {
                Some(v) => Error::key_version_not_found(name.as_str(), v.as_str()),
                None => Error::key_not_found(name.as_str()),
            })?;
        Ok((vault, record))
    }

    /// The latest version of each key.
    pub async fn list_keys(
        &self,
        ctx: &RequestContext,
        vault: &str,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<KeyBundle>, Error> {
        let vault_name = VaultName::parse(vault)?;
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, DataOperation::KeyList, None)?;
        let page = self.store.keys(&vault_name.key(), after.as_deref(), max)?;
        Ok(key_listing(&vault, page))
    }

    /// Every version of one key. An unknown name lists nothing, as in Azure.
    pub async fn list_key_versions(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<KeyBundle>, Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(
            ctx,
            &vault,
            DataOperation::KeyListVersions,
            Some(&name.key()),
        )?;
        let page =
            self.store
                .key_versions(&vault_name.key(), &name.key(), after.as_deref(), max)?;
        Ok(key_listing(&vault, page))
    }

    /// Changes attributes of one version (the latest when `version` is empty).
    pub async fn update_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
        update: KeyUpdate,
    ) -> Result<KeyBundle, Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let version = optional_version(version)?;
        validate_time("nbf", update.not_before)?;
        validate_time("exp", update.expires)?;
        let tags = update.tags.map(Tags::new).transpose()?;
        let vault = self
            .vault_for(&vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, DataOperation::KeyUpdate, Some(&name.key()))?;
        let key_ops = match &update.key_ops {
            None => None,
            Some(ops) => {
                let current = self
                    .store
                    .key(&vault_name.key(), &name.key(), None)?
                    .ok_or_else(|| Error::key_not_found(name.as_str()))?;
                Some(parse_ops(ops, current.kty.family())?)
            }
        };
        let command = Command::UpdateKey {
            vault: vault_name.key(),
            name: name.as_str().to_owned(),
            version: version.map(|v| v.to_string()),
            patch: KeyPatch {
                enabled: update.enabled,
                not_before: update.not_before,
                expires: update.expires,
                key_ops,
                tags,
            },
            updated: self.clock.now_unix(),
        };
        let record = expect_key(
            self.store
                .write(ctx.request_id().to_owned(), command)
                .await?,
        )?;
        Ok(KeyBundle { vault, record })
    }

    // Rotation.

    /// A new version with the same type, size or curve, operations and tags as the latest;
    /// its expiry is the rotation policy's `expiryTime` from now, if the policy has one.
    pub async fn rotate_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<KeyBundle, Error> {
        let (vault_name, name, vault) = self
            .authorized_object(ctx, vault, name, DataOperation::KeyRotate)
            .await?;
        let latest = self
            .store
            .key(&vault_name.key(), &name.key(), None)?
            .ok_or_else(|| Error::key_not_found(name.as_str()))?;
        self.rotate_from(ctx.request_id(), &vault, &name, &latest)
            .await
    }

    async fn rotate_from(
        &self,
        request_id: &str,
        vault: &VaultRecord,
        name: &ObjectName,
        latest: &KeyRecord,
    ) -> Result<KeyBundle, Error> {
        let policy = self
            .store
            .key_rotation_policy(&vault.name.to_ascii_lowercase(), &name.key())?;
        let now = self.clock.now_unix();
        let expires = policy
            .and_then(|p| p.expiry_time)
            .and_then(|d| d.shift(now, false));
        let material = KeyMaterial::generate(&same_spec(latest)?).map_err(crypto_error)?;
        let draft = NewVersion {
            kty: latest.kty,
            key_ops: latest.key_ops.clone(),
            enabled: true,
            not_before: None,
            expires,
            tags: latest.tags.clone(),
            imported: false,
        };
        self.put_version(
            request_id,
            vault,
            name,
            &material,
            draft,
            Some(latest.version.clone()),
        )
        .await
    }

    /// The key's rotation policy; a key without one has an empty policy (no actions).
    pub async fn get_key_rotation_policy(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<RotationPolicyBundle, Error> {
        let (vault, record) = self
            .read_key(ctx, vault, name, None, DataOperation::KeyGetRotationPolicy)
            .await?;
        let name_key = record.name.to_ascii_lowercase();
        let policy = self
            .store
            .key_rotation_policy(&vault.name.to_ascii_lowercase(), &name_key)?
            .unwrap_or(KeyRotationPolicyRecord {
                format: RECORD_FORMAT,
                lifetime_actions: Vec::new(),
                expiry_time: None,
                created: record.created,
                updated: record.created,
            });
        Ok(RotationPolicyBundle {
            vault,
            name: record.name,
            policy,
        })
    }

    pub async fn update_key_rotation_policy(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        actions: &[LifetimeActionInput],
        expiry_time: Option<&str>,
    ) -> Result<RotationPolicyBundle, Error> {
        VaultName::parse(vault)?;
        ObjectName::parse(name)?;
        let (lifetime_actions, expiry_time) = parse_policy_input(actions, expiry_time)?;
        let now = self.clock.now_unix();
        let policy = KeyRotationPolicyRecord {
            format: RECORD_FORMAT,
            lifetime_actions,
            expiry_time,
            created: now,
            updated: now,
        };
        policy.validate()?;
        let (vault_name, name, vault) = self
            .authorized_object(ctx, vault, name, DataOperation::KeySetRotationPolicy)
            .await?;
        let command = Command::SetKeyRotationPolicy {
            vault: vault_name.key(),
            name: name.as_str().to_owned(),
            policy,
        };
        match self
            .store
            .write(ctx.request_id().to_owned(), command)
            .await?
        {
            Applied::KeyRotationPolicy(policy) => Ok(RotationPolicyBundle {
                vault,
                name: name.as_str().to_owned(),
                policy,
            }),
            Applied::Failed(e) => Err(e),
            other => Err(Error::internal(format!(
                "unexpected store answer {other:?}"
            ))),
        }
    }

    /// One pass of the rotation job: on the leader, rotates every key whose policy's Rotate
    /// action is due by the service's clock, and returns how many it rotated. Elsewhere it
    /// does nothing. A rotation replaces exactly the version it read, so a pass repeated by
    /// another leader adds no second version.
    pub async fn rotate_due_keys(&self) -> Result<usize, Error> {
        if !self.store.status().is_leader {
            return Ok(0);
        }
        let now = self.clock.now_unix();
        let mut rotated = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (entries, next) = self
                .store
                .rotation_policies(after.as_deref(), ROTATION_BATCH)?;
            for entry in entries {
                let Some(latest) = self.store.key(&entry.vault, &entry.name, None)? else {
                    // A deleted key keeps its policy but is not rotated.
                    continue;
                };
                let due = entry.policy.rotation_due(latest.created, latest.expires);
                if due.is_none_or(|due| due > now) {
                    continue;
                }
                let Some(vault) = self.store.vault(&entry.vault)? else {
                    continue;
                };
                let name = ObjectName::parse(&latest.name)?;
                // Derived from the version it replaces: a retry of the same rotation is one
                // request.
                let request_id = format!("rotate-{}", latest.version);
                match self.rotate_from(&request_id, &vault, &name, &latest).await {
                    Ok(bundle) => {
                        rotated += 1;
                        tracing::info!(vault = %vault.name, key = %latest.name, version = %bundle.record.version, "key rotated by its rotation policy");
                    }
                    Err(e) => {
                        tracing::warn!(vault = %vault.name, key = %latest.name, error = %e.message, "policy rotation refused");
                    }
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(rotated)
    }

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

    // The lifecycle, shared with secrets.

    pub async fn delete_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<DeletedKeyBundle, Error> {
        let (vault, deleted) = self
            .delete_object(ctx, vault, name, DataOperation::KeyDelete)
            .await?;
        self.deleted_key_bundle(vault, deleted)
    }

    fn deleted_key_bundle(
        &self,
        vault: VaultRecord,
        deleted: DeletedObjectRecord,
    ) -> Result<DeletedKeyBundle, Error> {
        let record = self
            .store
            .key_version_any_state(
                &vault.name.to_ascii_lowercase(),
                &deleted.name.to_ascii_lowercase(),
                &deleted.latest_version,
            )?
            .ok_or_else(|| Error::internal("A deleted key's latest version is missing."))?;
        Ok(DeletedKeyBundle {
            vault,
            deleted,
            record,
        })
    }

    pub async fn get_deleted_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<DeletedKeyBundle, Error> {
        let (vault, deleted) = self
            .get_deleted_object(ctx, vault, name, DataOperation::KeyGetDeleted)
            .await?;
        self.deleted_key_bundle(vault, deleted)
    }

    pub async fn list_deleted_keys(
        &self,
        ctx: &RequestContext,
        vault: &str,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<DeletedKeyBundle>, Error> {
        let (vault, page) = self
            .list_deleted_objects(ctx, vault, DataOperation::KeyListDeleted, max, page_token)
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|deleted| self.deleted_key_bundle(vault.clone(), deleted))
            .collect::<Result<_, _>>()?;
        Ok(Listing {
            items,
            next_page_token: page.next_page_token,
        })
    }

    pub async fn recover_deleted_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<KeyBundle, Error> {
        let (vault, recovered) = self
            .recover_object(ctx, vault, name, DataOperation::KeyRecover)
            .await?;
        let bundle = self.deleted_key_bundle(vault, recovered)?;
        Ok(KeyBundle {
            vault: bundle.vault,
            record: bundle.record,
        })
    }

    pub async fn purge_deleted_key(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<(), Error> {
        self.purge_object(ctx, vault, name, DataOperation::KeyPurge)
            .await
    }
}

/// What a new version holds besides its material.
struct NewVersion {
    kty: KeyType,
    key_ops: Vec<KeyOperation>,
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
    tags: Tags,
    imported: bool,
}

fn key_listing(vault: &VaultRecord, page: Page<KeyRecord>) -> Listing<KeyBundle> {
    Listing {
        items: page
            .items
            .into_iter()
            .map(|record| KeyBundle {
                vault: vault.clone(),
                record,
            })
            .collect(),
        next_page_token: encode_token(page.next),
    }
}
