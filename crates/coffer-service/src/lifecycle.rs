//! Soft-delete, recovery and purge of objects (secrets, keys) and vaults, and the purger.
//!
//! The state machine holds the lifecycle (coffer-store `lifecycle`), written once for every
//! object kind; this module adds validation, authorization and the clock. Deletion times come
//! from the injected clock, so tests move time instead of waiting for retention to pass.

use coffer_store::{Applied, Command, DuePurge, LifecycleCommand};
use coffer_types::authz::{DataOperation, Scope, mgmt};
use coffer_types::error::quote_user_text;
use coffer_types::{
    DeletedObjectRecord, DeletedVaultRecord, Error, ObjectName, SecretRecord, VaultName,
    VaultRecord,
};

use crate::paging::{decode_token, encode_token, page_size};
use crate::request::{Consistency, RequestContext};
use crate::{Listing, Service};

/// A deleted secret: its deletion, and its latest version's properties (never a value).
#[derive(Debug, Clone)]
pub struct DeletedSecretBundle {
    pub vault: VaultRecord,
    pub deleted: DeletedObjectRecord,
    pub record: SecretRecord,
}

/// Most purges one pass of the purger proposes; the rest wait for the next pass.
const PURGE_BATCH: usize = 1_000;

fn expect(applied: Applied) -> Result<Applied, Error> {
    match applied {
        Applied::Failed(e) => Err(e),
        other => Ok(other),
    }
}

fn unexpected(applied: &Applied) -> Error {
    Error::internal(format!("unexpected store answer {applied:?}"))
}

impl Service {
    /// The vault and object a lifecycle operation names, once the caller may do `operation`
    /// on the object; the vault read linearizably, since a write follows.
    pub(crate) async fn authorized_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        operation: DataOperation,
    ) -> Result<(VaultName, ObjectName, VaultRecord), Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let vault = self
            .vault_for(&vault_name, Consistency::Linearizable)
            .await?;
        self.authorize_data(ctx, &vault, operation, Some(&name.key()))?;
        Ok((vault_name, name, vault))
    }

    async fn propose(
        &self,
        request_id: String,
        command: LifecycleCommand,
    ) -> Result<Applied, Error> {
        expect(
            self.store
                .write(request_id, Command::Lifecycle(command))
                .await?,
        )
    }

    // Written once for every kind; `operation` names the kind and the permission it needs.

    /// Deletes an object: every version moves to the deleted state, recoverable until its
    /// scheduled purge date.
    pub(crate) async fn delete_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        operation: DataOperation,
    ) -> Result<(VaultRecord, DeletedObjectRecord), Error> {
        let (vault_name, name, vault) = self.authorized_object(ctx, vault, name, operation).await?;
        let command = LifecycleCommand::DeleteObject {
            vault: vault_name.key(),
            kind: operation.object_kind(),
            name: name.as_str().to_owned(),
            deleted_date: self.clock.now_unix(),
        };
        match self.propose(ctx.request_id().to_owned(), command).await? {
            Applied::DeletedObject(deleted) => Ok((vault, deleted)),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) async fn get_deleted_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        operation: DataOperation,
    ) -> Result<(VaultRecord, DeletedObjectRecord), Error> {
        let vault_name = VaultName::parse(vault)?;
        let name = ObjectName::parse(name)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, operation, Some(&name.key()))?;
        let kind = operation.object_kind();
        let deleted = self
            .store
            .deleted_object(&vault_name.key(), kind, &name.key())?
            .ok_or_else(|| Error::deleted_object_not_found(kind, name.as_str()))?;
        Ok((vault, deleted))
    }

    pub(crate) async fn list_deleted_objects(
        &self,
        ctx: &RequestContext,
        vault: &str,
        operation: DataOperation,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<(VaultRecord, Listing<DeletedObjectRecord>), Error> {
        let vault_name = VaultName::parse(vault)?;
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        let vault = self.vault_for(&vault_name, ctx.consistency).await?;
        self.authorize_data(ctx, &vault, operation, None)?;
        let page = self.store.deleted_objects(
            &vault_name.key(),
            operation.object_kind(),
            after.as_deref(),
            max,
        )?;
        Ok((
            vault,
            Listing {
                items: page.items,
                next_page_token: encode_token(page.next),
            },
        ))
    }

    /// Recovers a deleted object with all its versions.
    pub(crate) async fn recover_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        operation: DataOperation,
    ) -> Result<(VaultRecord, DeletedObjectRecord), Error> {
        let (vault_name, name, vault) = self.authorized_object(ctx, vault, name, operation).await?;
        let command = LifecycleCommand::RecoverObject {
            vault: vault_name.key(),
            kind: operation.object_kind(),
            name: name.as_str().to_owned(),
        };
        match self.propose(ctx.request_id().to_owned(), command).await? {
            Applied::DeletedObject(recovered) => Ok((vault, recovered)),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a deleted object for good; returns its vault. Refused under purge protection.
    pub(crate) async fn purge_object(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
        operation: DataOperation,
    ) -> Result<VaultRecord, Error> {
        let (vault_name, name, vault) = self.authorized_object(ctx, vault, name, operation).await?;
        if vault.purge_protection {
            return Err(Error::purge_protected());
        }
        let command = LifecycleCommand::PurgeObject {
            vault: vault_name.key(),
            kind: operation.object_kind(),
            name: name.as_str().to_owned(),
            due_at: None,
        };
        match self.propose(ctx.request_id().to_owned(), command).await? {
            Applied::Deleted => Ok(vault),
            other => Err(unexpected(&other)),
        }
    }

    // Secrets.

    /// Deletes a secret: every version moves to the deleted state, recoverable until its
    /// scheduled purge date.
    pub async fn delete_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<DeletedSecretBundle, Error> {
        let (vault, deleted) = self
            .delete_object(ctx, vault, name, DataOperation::SecretDelete)
            .await?;
        self.deleted_bundle(vault, deleted)
    }

    fn deleted_bundle(
        &self,
        vault: VaultRecord,
        deleted: DeletedObjectRecord,
    ) -> Result<DeletedSecretBundle, Error> {
        let vault_key = vault.name.to_ascii_lowercase();
        let record = self
            .store
            .secret_version_any_state(
                &vault_key,
                &deleted.name.to_ascii_lowercase(),
                &deleted.latest_version,
            )?
            .ok_or_else(|| Error::internal("A deleted secret's latest version is missing."))?;
        Ok(DeletedSecretBundle {
            vault,
            deleted,
            record,
        })
    }

    pub async fn get_deleted_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<DeletedSecretBundle, Error> {
        let (vault, deleted) = self
            .get_deleted_object(ctx, vault, name, DataOperation::SecretGetDeleted)
            .await?;
        self.deleted_bundle(vault, deleted)
    }

    pub async fn list_deleted_secrets(
        &self,
        ctx: &RequestContext,
        vault: &str,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<DeletedSecretBundle>, Error> {
        let (vault, page) = self
            .list_deleted_objects(
                ctx,
                vault,
                DataOperation::SecretListDeleted,
                max,
                page_token,
            )
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|deleted| self.deleted_bundle(vault.clone(), deleted))
            .collect::<Result<_, _>>()?;
        Ok(Listing {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// Recovers a deleted secret with all its versions; returns its latest version.
    pub async fn recover_deleted_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<crate::SecretBundle, Error> {
        let (vault, recovered) = self
            .recover_object(ctx, vault, name, DataOperation::SecretRecover)
            .await?;
        let bundle = self.deleted_bundle(vault, recovered)?;
        Ok(crate::SecretBundle {
            vault: bundle.vault,
            record: bundle.record,
            value: None,
        })
    }

    /// Removes a deleted secret for good. Refused under purge protection.
    pub async fn purge_deleted_secret(
        &self,
        ctx: &RequestContext,
        vault: &str,
        name: &str,
    ) -> Result<(), Error> {
        self.purge_object(ctx, vault, name, DataOperation::SecretPurge)
            .await
            .map(drop)
    }

    /// Deletes a vault: it moves to the deleted state with its objects, and its name stays
    /// reserved until it is recovered or purged.
    pub async fn delete_vault(&self, ctx: &RequestContext, name: &str) -> Result<(), Error> {
        let name = VaultName::parse(name)?;
        self.authorize(ctx, &Scope::vault(&name.key())?, mgmt::VAULT_DELETE)?;
        let command = LifecycleCommand::DeleteVault {
            vault: name.key(),
            deleted_date: self.clock.now_unix(),
        };
        match self.propose(ctx.request_id().to_owned(), command).await? {
            Applied::DeletedVault(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// A deleted vault the caller may see (`deletedVaults/read` at its scope).
    pub async fn get_deleted_vault(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<DeletedVaultRecord, Error> {
        let name = VaultName::parse(name)?;
        self.read_point(ctx.consistency).await?;
        self.authorized_deleted_vault(ctx, &name, mgmt::DELETED_VAULT_READ)
    }

    fn authorized_deleted_vault(
        &self,
        ctx: &RequestContext,
        name: &VaultName,
        action: &str,
    ) -> Result<DeletedVaultRecord, Error> {
        let scope = Scope::vault(&name.key())?;
        match self.store.deleted_vault(&name.key())? {
            Some(deleted) => {
                self.authorize_at(ctx, &scope, Some(&deleted.vault), action)?;
                Ok(deleted)
            }
            None => {
                self.authorize_at(ctx, &scope, None, action)?;
                Err(Error::deleted_vault_not_found(name.as_str()))
            }
        }
    }

    pub async fn list_deleted_vaults(
        &self,
        ctx: &RequestContext,
        max: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Listing<DeletedVaultRecord>, Error> {
        let max = page_size(max)?;
        let after = decode_token(page_token)?;
        self.read_point(ctx.consistency).await?;
        let page = self.store.deleted_vaults(after.as_deref(), max)?;
        let items = page
            .items
            .into_iter()
            .filter(|d| {
                Scope::vault(&d.vault.name.to_ascii_lowercase()).is_ok_and(|scope| {
                    self.authorize_at(ctx, &scope, Some(&d.vault), mgmt::DELETED_VAULT_READ)
                        .is_ok()
                })
            })
            .collect();
        Ok(Listing {
            items,
            next_page_token: encode_token(page.next),
        })
    }

    /// Recovers a deleted vault with its objects, as they were when it was deleted.
    pub async fn recover_deleted_vault(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<VaultRecord, Error> {
        let name = VaultName::parse(name)?;
        self.read_point(Consistency::Linearizable).await?;
        // Recovering is creating the vault again (Azure: createMode recover).
        self.authorized_deleted_vault(ctx, &name, mgmt::VAULT_WRITE)?;
        let command = LifecycleCommand::RecoverVault { vault: name.key() };
        match self.propose(ctx.request_id().to_owned(), command).await? {
            Applied::Vault(record) => Ok(*record),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a deleted vault, its objects and its role assignments for good. Refused under
    /// purge protection.
    pub async fn purge_deleted_vault(&self, ctx: &RequestContext, name: &str) -> Result<(), Error> {
        let name = VaultName::parse(name)?;
        self.read_point(Consistency::Linearizable).await?;
        let deleted = self.authorized_deleted_vault(ctx, &name, mgmt::DELETED_VAULT_PURGE)?;
        if deleted.vault.purge_protection {
            return Err(Error::purge_protected());
        }
        let command = LifecycleCommand::PurgeVault {
            vault: name.key(),
            due_at: None,
        };
        match self.propose(ctx.request_id().to_owned(), command).await? {
            Applied::Deleted => {
                // Its keys' parsed material goes from this node's memory at once.
                self.loaded_keys.forget(&deleted.vault.id, None);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// One pass of the purger: on the leader, permanently removes up to [`PURGE_BATCH`]
    /// deleted objects and vaults whose scheduled purge date has passed by the service's
    /// clock, and returns how many it removed. Elsewhere it does nothing. Safe to run at any
    /// time and any number of times: each purge is re-checked against the scheduled date as
    /// it is applied, so a purge raced by a recovery does nothing.
    pub async fn purge_due(&self) -> Result<usize, Error> {
        if !self.store.status().is_leader {
            return Ok(0);
        }
        let now = self.clock.now_unix();
        let due = self.store.due_for_purge(now, PURGE_BATCH)?;
        let mut purged = 0;
        for item in due {
            let command = match &item {
                DuePurge::Object { vault, kind, name } => LifecycleCommand::PurgeObject {
                    vault: vault.clone(),
                    kind: *kind,
                    name: name.clone(),
                    due_at: Some(now),
                },
                DuePurge::Vault { vault } => LifecycleCommand::PurgeVault {
                    vault: vault.clone(),
                    due_at: Some(now),
                },
            };
            let request_id = format!("purge-{}", crate::new_uuid()?);
            let what = match &item {
                DuePurge::Object { vault, kind, name } => format!(
                    "{} {} in vault {}",
                    kind.as_str(),
                    quote_user_text(name),
                    quote_user_text(vault)
                ),
                DuePurge::Vault { vault } => format!("vault {}", quote_user_text(vault)),
            };
            match self.propose(request_id, command).await {
                Ok(_) => {
                    purged += 1;
                    tracing::info!(purged = %what, "purged after its retention period");
                }
                Err(e) => tracing::warn!(item = %what, error = %e.message, "purge refused"),
            }
        }
        Ok(purged)
    }
}
