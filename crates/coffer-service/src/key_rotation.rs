//! Key rotation: `rotate`, rotation policies, and the job that rotates keys whose policy is due.

use coffer_crypto::keys::KeySpec;
use coffer_store::{Applied, Command};
use coffer_types::authz::DataOperation;
use coffer_types::keys::{
    IsoDuration, KeyFamily, LifetimeAction, LifetimeTrigger, MIN_ROTATION_DAYS, RotationAction,
};
use coffer_types::records::{DAY_SECONDS, RECORD_FORMAT};
use coffer_types::{Error, KeyRecord, KeyRotationPolicyRecord, ObjectName, VaultName, VaultRecord};

use crate::Service;
use crate::key_operations::generate_material;
use crate::keys::{KeyBundle, NewVersion};
use crate::request::RequestContext;

/// Most rotation policies one pass of the rotation job reads.
const ROTATION_BATCH: usize = 1_000;

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
        let material = generate_material(same_spec(latest)?).await?;
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
                // Never sooner than 7 days after the version was made, whatever the policy
                // (a version whose expiry was moved close to its creation, say): the job must
                // not add a version every pass.
                let earliest = latest
                    .created
                    .saturating_add(MIN_ROTATION_DAYS as i64 * DAY_SECONDS);
                if due.is_none_or(|due| due > now || due < earliest) {
                    continue;
                }
                let Some(vault) = self.store.vault(&entry.vault)? else {
                    continue;
                };
                let name = ObjectName::parse(&latest.name)?;
                // A fresh id: what makes a repeated rotation harmless is `expected_head`, and a
                // version id can be shared by restored copies of one key.
                let request_id = format!("rotate-{}", crate::new_uuid()?);
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
}
