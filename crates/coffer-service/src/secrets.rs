//! Secret operations.

use coffer_crypto::{SealContext, SecretString};
use coffer_store::{Applied, Command, Page, SecretPatch};
use coffer_types::authz::DataOperation;
use coffer_types::limits::{MAX_CONTENT_TYPE_CHARS, MAX_SECRET_VALUE_BYTES};
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{
    Error, ErrorCode, ObjectKind, ObjectName, SecretRecord, Tags, VaultName, VaultRecord, Version,
};

use crate::paging::{decode_token, encode_token, page_size};
use crate::request::{Consistency, RequestContext};
use crate::{Listing, Service};

/// Input of [`Service::set_secret`].
#[derive(Debug, Clone)]
pub struct SetSecret {
    pub vault: String,
    pub name: String,
    pub value: SecretString,
    pub content_type: Option<String>,
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// Input of [`Service::update_secret`]; `None` leaves an attribute as it is.
#[derive(Debug, Clone, Default)]
pub struct SecretUpdate {
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub content_type: Option<String>,
    pub tags: Option<Vec<(String, String)>>,
}

/// A secret version with what a response needs: its vault (for ids and recovery attributes)
/// and, for reads of one version, the unsealed value.
#[derive(Debug, Clone)]
pub struct SecretBundle {
    pub vault: VaultRecord,
    pub record: SecretRecord,
    pub value: Option<SecretString>,
}

/// A page of secret records as bundles without values: what every list operation returns.
fn value_free_listing(vault: &VaultRecord, page: Page<SecretRecord>) -> Listing<SecretBundle> {
    Listing {
        items: page
            .items
            .into_iter()
            .map(|record| SecretBundle {
                vault: vault.clone(),
                record,
                value: None,
            })
            .collect(),
        next_page_token: encode_token(page.next),
    }
}

/// What a secret value is sealed to: its vault and name (case-folded) and its version.
pub(crate) fn secret_context<'a>(
    vault_key: &'a str,
    name_key: &'a str,
    version: &'a str,
) -> SealContext<'a> {
    SealContext {
        vault: vault_key,
        kind: ObjectKind::Secret,
        name: name_key,
        version,
    }
}

/// A version given by a caller, where empty or absent means the latest.
pub(crate) fn optional_version(version: Option<&str>) -> Result<Option<Version>, Error> {
    version
        .filter(|v| !v.is_empty())
        .map(Version::parse)
        .transpose()
}

/// Latest time we accept: 9999-12-31T23:59:59Z.
pub(crate) const MAX_TIME: i64 = 253_402_300_799;

pub(crate) fn validate_time(field: &str, t: Option<i64>) -> Result<(), Error> {
    match t {
        Some(t) if !(0..=MAX_TIME).contains(&t) => Err(Error::bad_parameter(format!(
            "The '{field}' attribute is out of range: it must be a time between 1970 and 9999."
        ))),
        _ => Ok(()),
    }
}

fn validate_content_type(content_type: Option<&str>) -> Result<(), Error> {
    match content_type {
        Some(ct) if ct.chars().count() > MAX_CONTENT_TYPE_CHARS => Err(Error::bad_parameter(
            format!("contentType is longer than {MAX_CONTENT_TYPE_CHARS} characters."),
        )),
        _ => Ok(()),
    }
}

fn expect_secret(applied: Applied) -> Result<SecretRecord, Error> {
    match applied {
        Applied::Secret(record) => Ok(record),
        Applied::Failed(e) => Err(e),
        other => Err(Error::internal(format!(
            "unexpected store answer {other:?}"
        ))),
    }
}

impl Service {
    /// Adds a new version of a secret (creating the secret on first set).
    pub async fn set_secret(
        &self,
        ctx: &RequestContext,
        input: SetSecret,
    ) -> Result<SecretBundle, Error> {
        let vault_name = VaultName::parse(&input.vault)?;
        let name = ObjectName::parse(&input.name)?;
        if input.value.len() > MAX_SECRET_VALUE_BYTES {
            return Err(Error::bad_parameter(format!(
                "The secret value is {} bytes; the largest allowed is {MAX_SECRET_VALUE_BYTES} bytes.",
                input.value.len()
            )));
        }
        validate_content_type(input.content_type.as_deref())?;
        validate_time("nbf", input.not_before)?;
        validate_time("exp", input.expires)?;
        let tags = Tags::new(input.tags.clone())?;

        // Sealing needs the vault's data key, not a linearizable read of the vault: the state
        // machine refuses a value sealed for any incarnation of the vault but the current one.
        // So this node's copy is used when it has one, saving a read-index round trip to the
        // leader; a missing copy, or one the state machine finds stale, is read again behind a
        // barrier.
        let (mut vault, mut fresh) = match self.store.vault(&vault_name.key())? {
            Some(vault) => (vault, false),
            None => (
                self.vault_for(&vault_name, Consistency::Linearizable)
                    .await?,
                true,
            ),
        };
        self.authorize_data(ctx, &vault, DataOperation::SecretSet, Some(&name.key()))?;
        let mut request_id = ctx.request_id().to_owned();
        let record = loop {
            let record = self.seal_version(&vault, &vault_name, &name, &input, &tags)?;
            let command = Command::PutSecret {
                vault: vault_name.key(),
                vault_id: vault.id.clone(),
                record,
            };
            match self.store.write(request_id.clone(), command).await? {
                Applied::Failed(e) if e.code == ErrorCode::VaultNotFound && !fresh => {
                    vault = self
                        .vault_for(&vault_name, Consistency::Linearizable)
                        .await?;
                    self.authorize_data(ctx, &vault, DataOperation::SecretSet, Some(&name.key()))?;
                    fresh = true;
                    // The first proposal is remembered under the first id with its refusal;
                    // the second is a different proposal, so it gets an id of its own (derived,
                    // so a retry of the whole request repeats both steps).
                    request_id.push_str(":fresh");
                }
                applied => break expect_secret(applied)?,
            }
        };
        Ok(SecretBundle {
            vault,
            record,
            value: Some(input.value),
        })
    }

    /// A new version of `name` holding `input`'s value sealed with `vault`'s data key.
    fn seal_version(
        &self,
        vault: &VaultRecord,
        vault_name: &VaultName,
        name: &ObjectName,
        input: &SetSecret,
        tags: &Tags,
    ) -> Result<SecretRecord, Error> {
        let key = self.data_keys.data_key(vault)?;
        let version = coffer_crypto::new_version().map_err(|e| Error::internal(e.to_string()))?;
        let (vault_key, name_key) = (vault_name.key(), name.key());
        let context = secret_context(&vault_key, &name_key, version.as_str());
        // Sealed here, before the proposal: the Raft log only ever carries ciphertext.
        let sealed_value = key
            .seal(&context, input.value.expose().as_bytes())
            .map_err(|e| Error::internal(e.to_string()))?;
        let now = self.clock.now_unix();
        Ok(SecretRecord {
            format: RECORD_FORMAT,
            name: name.as_str().to_owned(),
            version: version.to_string(),
            sealed_value,
            content_type: input.content_type.clone(),
            enabled: input.enabled.unwrap_or(true),
            not_before: input.not_before,
            expires: input.expires,
            created: now,
            updated: now,
            tags: tags.clone(),
        })
    }

    /// Reads one version (the latest when `version` is empty) with its value.
    ///
    /// Like Azure Key Vault, a disabled version is refused (`Forbidden`/`SecretDisabled`);
    /// `nbf` and `exp` of secrets are informational and not enforced (see docs/adr).
    pub async fn get_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<SecretBundle, Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let version = optional_version(version)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, DataOperation::SecretGet, Some(&name.key()))?;
        let record = self
            .store
            .secret(
                &vault_name.key(),
                &name.key(),
                version.as_ref().map(Version::as_str),
            )?
            .ok_or_else(|| match &version {
                Some(v) => Error::secret_version_not_found(name.as_str(), v.as_str()),
                None => Error::secret_not_found(name.as_str()),
            })?;
        if !record.enabled {
            return Err(Error::secret_disabled("get"));
        }
        let key = self.data_keys.data_key(&vault)?;
        let (vault_key, name_key) = (vault_name.key(), name.key());
        let context = secret_context(&vault_key, &name_key, &record.version);
        let plain = key.unseal(&context, &record.sealed_value).map_err(|e| {
            tracing::error!(vault = %vault.name, secret = %record.name, version = %record.version, error = %e, "stored secret does not unseal");
            Error::internal("The stored secret could not be decrypted.")
        })?;
        let value = String::from_utf8(plain.expose().to_vec())
            .map_err(|_| Error::internal("The stored secret is not UTF-8."))?;
        Ok(SecretBundle {
            vault,
            record,
            value: Some(SecretString::new(value)),
        })
    }

    /// The latest version of each secret, without values.
    pub async fn list_secrets(
        &self,
        ctx: &RequestContext,
        vault: &str,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<SecretBundle>, Error> {
        let vault_name = VaultName::parse(vault)?;
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, DataOperation::SecretList, None)?;
        let page = self
            .store
            .secrets(&vault_name.key(), after.as_deref(), max)?;
        Ok(value_free_listing(&vault, page))
    }

    /// Every version of one secret, without values. An unknown name lists nothing, as in Azure.
    pub async fn list_secret_versions(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<SecretBundle>, Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(
            ctx,
            &vault,
            DataOperation::SecretListVersions,
            Some(&name.key()),
        )?;
        let page =
            self.store
                .secret_versions(&vault_name.key(), &name.key(), after.as_deref(), max)?;
        Ok(value_free_listing(&vault, page))
    }

    /// Changes attributes of one version (the latest when `version` is empty). The value of a
    /// version never changes.
    pub async fn update_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        version: Option<&str>,
        update: SecretUpdate,
    ) -> Result<SecretBundle, Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let version = optional_version(version)?;
        validate_content_type(update.content_type.as_deref())?;
        validate_time("nbf", update.not_before)?;
        validate_time("exp", update.expires)?;
        let tags = update.tags.map(Tags::new).transpose()?;
        let vault = self
            .vault_for(&vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, DataOperation::SecretUpdate, Some(&name.key()))?;
        let patch = SecretPatch {
            enabled: update.enabled,
            not_before: update.not_before,
            expires: update.expires,
            content_type: update.content_type,
            tags,
        };
        let command = Command::UpdateSecret {
            vault: vault_name.key(),
            name: name.as_str().to_owned(),
            version: version.map(|v| v.to_string()),
            patch,
            updated: self.clock.now_unix(),
        };
        let record = expect_secret(
            self.store
                .write(ctx.request_id().to_owned(), command)
                .await?,
        )?;
        Ok(SecretBundle {
            vault,
            record,
            value: None,
        })
    }
}
