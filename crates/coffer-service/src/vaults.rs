//! Vault operations.

use coffer_store::{Applied, Command, VaultPatch};
use coffer_types::authz::{Scope, mgmt};
use coffer_types::records::RECORD_FORMAT;
use coffer_types::{Error, ErrorCode, Sku, Tags, VaultName, VaultRecord};

use crate::paging::{decode_token, encode_token, page_size};
use crate::request::{Consistency, RequestContext};
use crate::{Listing, Service};

/// Input of [`Service::create_vault`].
#[derive(Debug, Clone, Default)]
pub struct CreateVault {
    pub name: String,
    pub location: String,
    pub sku: Option<Sku>,
    /// 0 means the default (90 days).
    pub retention_days: u32,
    pub purge_protection: bool,
    pub tags: Vec<(String, String)>,
    /// `None` means RBAC, the default.
    pub enable_rbac_authorization: Option<bool>,
    /// `None` means open to every network, as a new Azure vault is.
    pub network: Option<coffer_types::NetworkRuleSet>,
}

/// Input of [`Service::update_vault`]; `None` leaves a property as it is.
#[derive(Debug, Clone, Default)]
pub struct VaultUpdate {
    pub sku: Option<Sku>,
    pub purge_protection: Option<bool>,
    pub tags: Option<Vec<(String, String)>>,
    pub enable_rbac_authorization: Option<bool>,
}

/// A region name such as `eastus`: 1 to 64 lowercase letters and digits.
pub(crate) fn is_region_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A location is a region name.
fn validate_location(location: &str) -> Result<(), Error> {
    if is_region_name(location) {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The location {} is invalid: give a region name such as eastus.",
            coffer_types::error::quote_user_text(location)
        )))
    }
}

pub(crate) fn expect_vault(applied: Applied) -> Result<VaultRecord, Error> {
    match applied {
        Applied::Vault(record) => Ok(*record),
        Applied::Failed(e) => Err(e),
        other => Err(Error::internal(format!(
            "unexpected store answer {other:?}"
        ))),
    }
}

impl Service {
    pub async fn create_vault(
        &self,
        ctx: &RequestContext,
        input: CreateVault,
    ) -> Result<VaultRecord, Error> {
        let name = VaultName::parse(&input.name)?;
        self.authorize(ctx, &Scope::vault(&name.key())?, mgmt::VAULT_WRITE)?;
        validate_location(&input.location)?;
        let retention_days = VaultRecord::validate_retention(input.retention_days)?;
        let tags = Tags::new(input.tags)?;
        let (_, wrapped_key) = self
            .data_keys
            .root()
            .new_data_key(&name.key())
            .map_err(|e| {
                tracing::error!(error = %e, "creating a vault data key failed");
                Error::internal("Creating the vault's key failed.")
            })?;
        let id = coffer_crypto::new_version().map_err(|e| Error::internal(e.to_string()))?;
        let now = self.clock.now_unix();
        let record = VaultRecord {
            format: RECORD_FORMAT,
            id: id.to_string(),
            name: name.as_str().to_owned(),
            location: input.location,
            sku: input.sku.unwrap_or_default(),
            retention_days,
            purge_protection: input.purge_protection,
            tags,
            created: now,
            updated: now,
            wrapped_key,
            enable_rbac_authorization: input.enable_rbac_authorization.unwrap_or(true),
            access_policies: Vec::new(),
            tenant_id: ctx.caller().tenant.clone(),
            network: input.network.unwrap_or_default(),
            throttle: Default::default(),
        };
        expect_vault(
            self.store
                .write(
                    ctx.request_id().to_owned(),
                    Command::CreateVault {
                        record: Box::new(record),
                    },
                )
                .await?,
        )
    }

    pub async fn get_vault(&self, ctx: &RequestContext, name: &str) -> Result<VaultRecord, Error> {
        self.authorized_vault(ctx, &VaultName::parse(name)?, mgmt::VAULT_READ)
            .await
    }

    pub async fn list_vaults(
        &self,
        ctx: &RequestContext,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<VaultRecord>, Error> {
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        self.read_point(ctx.consistency).await?;
        let page = self.store.vaults(after.as_deref(), max)?;
        // A page may come back shorter than asked when the caller may not see every vault;
        // the page token still moves on, as Azure's paging allows.
        let items = page
            .items
            .into_iter()
            .filter(|v| self.authorize_vault(ctx, v, mgmt::VAULT_READ).is_ok())
            .collect();
        Ok(Listing {
            items,
            next_page_token: encode_token(page.next),
        })
    }

    pub async fn update_vault(
        &self,
        ctx: &RequestContext,
        name: &str,
        update: VaultUpdate,
    ) -> Result<VaultRecord, Error> {
        let name = VaultName::parse(name)?;
        let scope = Scope::vault(&name.key())?;
        self.authorize(ctx, &scope, mgmt::VAULT_WRITE)?;
        if update.enable_rbac_authorization.is_some() {
            // Switching models changes who can read the vault's data, so it takes the right
            // to change role assignments as well (as Azure requires since 2025).
            self.authorize(ctx, &scope, mgmt::ROLE_ASSIGNMENT_WRITE)?;
        }
        let tags = update.tags.map(Tags::new).transpose()?;
        let patch = VaultPatch {
            sku: update.sku,
            purge_protection: update.purge_protection,
            tags,
            enable_rbac_authorization: update.enable_rbac_authorization,
            ..VaultPatch::default()
        };
        self.patch_vault(ctx, &name, patch).await
    }

    /// The vault `name`, read as current as `ctx` asks, once the caller may do the management
    /// `action` on it. Whether a vault exists is told only to callers who may act on it.
    pub(crate) async fn authorized_vault(
        &self,
        ctx: &RequestContext,
        name: &VaultName,
        action: &str,
    ) -> Result<VaultRecord, Error> {
        match self.vault_for(name, ctx.consistency).await {
            Ok(vault) => {
                self.authorize_vault(ctx, &vault, action)?;
                Ok(vault)
            }
            Err(e) if e.code == ErrorCode::VaultNotFound => {
                self.authorize(ctx, &Scope::vault(&name.key())?, action)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The vault `name` as this node has applied it, once that copy is as current as
    /// `consistency` asks.
    pub(crate) async fn vault_for(
        &self,
        name: &VaultName,
        consistency: Consistency,
    ) -> Result<VaultRecord, Error> {
        self.read_point(consistency).await?;
        self.store
            .vault(&name.key())?
            .ok_or_else(|| Error::vault_not_found(name.as_str()))
    }
}
