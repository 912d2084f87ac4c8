//! Keys: create, import, read, update and the lifecycle they share with secrets. Rotation is in
//! `key_rotation`, the cryptographic operations in `key_operations`.
//!
//! Private material is generated or imported here, sealed with the vault's data key before it
//! is proposed (the Raft log only carries ciphertext), and unsealed only to run an operation.

use coffer_crypto::keys::{KeyMaterial, KeySpec};
use coffer_crypto::{CryptoError, SealContext};
use coffer_store::{Applied, Command, KeyPatch, Page};
use coffer_types::authz::DataOperation;
use coffer_types::keys::{CurveName, JsonWebKey, KeyFamily, KeyOperation, KeyType};
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{
    DeletedObjectRecord, Error, KeyRecord, ObjectKind, ObjectName, Sku, Tags, VaultName,
    VaultRecord, Version,
};

use crate::key_operations::generate_material;
use crate::paging::{decode_token, encode_token, page_size};
use crate::request::{Consistency, RequestContext};
use crate::secrets::{optional_version, validate_time};
use crate::{Listing, Service};

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
pub(crate) fn crypto_error(e: CryptoError) -> Error {
    match e {
        CryptoError::Key(message) => Error::bad_parameter(message),
        other => Error::internal(other.to_string()),
    }
}

pub(crate) fn expect_key(applied: Applied) -> Result<KeyRecord, Error> {
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

pub(crate) fn vault_allows(vault: &VaultRecord, kty: KeyType) -> Result<(), Error> {
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
        let draft = NewVersion {
            kty,
            key_ops: parse_ops(&input.key_ops, kty.family())?,
            enabled: input.enabled.unwrap_or(true),
            not_before: input.not_before,
            expires: input.expires,
            tags: Tags::new(input.tags.clone())?,
            imported: false,
        }
        .checked()?;
        let spec = create_spec(&input, kty)?;
        let vault = self
            .vault_for_new_version(ctx, &vault_name, &name, kty, DataOperation::KeyCreate)
            .await?;
        let material = generate_material(spec).await?;
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
        let draft = NewVersion {
            kty,
            key_ops: parse_ops(&ops, kty.family())?,
            enabled: input.enabled.unwrap_or(true),
            not_before: input.not_before,
            expires: input.expires,
            tags: Tags::new(input.tags.clone())?,
            imported: true,
        }
        .checked()?;
        let vault = self
            .vault_for_new_version(ctx, &vault_name, &name, kty, DataOperation::KeyImport)
            .await?;
        let material = KeyMaterial::import(&input.key).map_err(crypto_error)?;
        if material.family() != kty.family() {
            return Err(Error::bad_parameter(
                "The key's material does not match its 'kty'.",
            ));
        }
        self.put_version(ctx.request_id(), &vault, &name, &material, draft, None)
            .await
    }

    /// The vault a new version of `name` goes into, once the caller may do `operation` on the
    /// key and the vault takes keys of type `kty`.
    async fn vault_for_new_version(
        &self,
        ctx: &RequestContext,
        vault_name: &VaultName,
        name: &ObjectName,
        kty: KeyType,
        operation: DataOperation,
    ) -> Result<VaultRecord, Error> {
        let vault = self
            .vault_for(vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, operation, Some(&name.key()))?;
        vault_allows(&vault, kty)?;
        Ok(vault)
    }

    /// Seals `material` into a new version of `name` and proposes it. With `replaces`, only
    /// while that version is still the latest (rotation).
    pub(crate) async fn put_version(
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
    pub(crate) async fn read_key(
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
            // An empty list would not mean "the defaults" here, as it does at creation: it is
            // refused rather than read either way.
            Some(ops) if ops.is_empty() => {
                return Err(Error::bad_parameter(
                    "key_ops must name at least one operation.",
                ));
            }
            Some(ops) => {
                // Checked against the version being changed: versions of one name may differ.
                let target = self
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
                Some(parse_ops(ops, target.kty.family())?)
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
        let vault = self
            .purge_object(ctx, vault, name, DataOperation::KeyPurge)
            .await?;
        // Its parsed material goes from this node's memory at once (other nodes drop it when
        // it has been unused for five minutes).
        self.loaded_keys.forget(&vault.id, Some(name));
        Ok(())
    }
}

/// What a new version holds besides its material.
pub(crate) struct NewVersion {
    pub(crate) kty: KeyType,
    pub(crate) key_ops: Vec<KeyOperation>,
    pub(crate) enabled: bool,
    pub(crate) not_before: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub(crate) tags: Tags,
    pub(crate) imported: bool,
}

impl NewVersion {
    /// The draft, once its dates are in range.
    fn checked(self) -> Result<Self, Error> {
        validate_time("nbf", self.not_before)?;
        validate_time("exp", self.expires)?;
        Ok(self)
    }
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
