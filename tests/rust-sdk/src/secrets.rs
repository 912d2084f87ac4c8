//! The secrets scenarios: the whole lifecycle, paging, backups, and error paths.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_secrets::models::{
    RestoreSecretParameters, SecretAttributes, SecretClientGetSecretOptions,
    SecretClientListSecretPropertiesOptions, SecretClientUpdateSecretPropertiesOptions,
    SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient};
use futures::TryStreamExt;

use crate::{Result, at, check, env, expect_error};

async fn set(client: &SecretClient, name: &str, value: &str) -> Result<String> {
    let parameters = SetSecretParameters {
        value: Some(value.to_owned()),
        content_type: Some("text/plain".to_owned()),
        tags: Some(HashMap::from([("sdk".to_owned(), "rust".to_owned())])),
        ..Default::default()
    };
    let secret = client
        .set_secret(name, parameters.try_into().map_err(at("set"))?, None)
        .await
        .map_err(at("set"))?
        .into_model()
        .map_err(at("set"))?;
    let id = secret.resource_id().map_err(at("set: resource id"))?;
    id.version
        .ok_or_else(|| format!("set {name}: no version in {:?}", secret.id))
}

async fn value(client: &SecretClient, name: &str, version: Option<&str>) -> Result<Option<String>> {
    let options = SecretClientGetSecretOptions {
        secret_version: version.map(str::to_owned),
        ..Default::default()
    };
    let secret = client
        .get_secret(name, Some(options))
        .await
        .map_err(at("get"))?
        .into_model()
        .map_err(at("get"))?;
    Ok(secret.value)
}

pub(crate) async fn all(client: &SecretClient, vault_url: &str) -> Result<()> {
    let first = set(client, "rs-s1", "first value").await?;
    let second = set(client, "rs-s1", "second value").await?;
    check("set two versions", first != second, (&first, &second))?;
    let latest = value(client, "rs-s1", None).await?;
    check(
        "get latest",
        latest.as_deref() == Some("second value"),
        &latest,
    )?;
    let old = value(client, "rs-s1", Some(&first)).await?;
    check(
        "get by version",
        old.as_deref() == Some("first value"),
        &old,
    )?;

    for i in 0..27 {
        set(client, &format!("rs-page-{i:02}"), "paged").await?;
    }
    let mut pager = client.list_secret_properties(None).map_err(at("list"))?;
    let mut names = Vec::new();
    while let Some(item) = pager.try_next().await.map_err(at("list"))? {
        let id = item.resource_id().map_err(at("list: resource id"))?;
        check_origin(&id.vault_url, vault_url)?;
        names.push(id.name);
    }
    let paged = names.iter().filter(|n| n.starts_with("rs-page-")).count();
    check("list follows nextLink past 25", paged == 27, names.len())?;
    let options = SecretClientListSecretPropertiesOptions {
        maxresults: Some(10),
        ..Default::default()
    };
    let pages: Vec<_> = client
        .list_secret_properties(Some(options))
        .map_err(at("pages"))?
        .into_pages()
        .try_collect()
        .await
        .map_err(at("pages"))?;
    check("maxresults pages", pages.len() >= 3, pages.len())?;
    let versions: Vec<_> = client
        .list_secret_properties_versions("rs-s1", None)
        .map_err(at("versions"))?
        .try_collect()
        .await
        .map_err(at("versions"))?;
    check("list versions", versions.len() == 2, versions.len())?;

    let update = UpdateSecretPropertiesParameters {
        content_type: Some("application/json".to_owned()),
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = SecretClientUpdateSecretPropertiesOptions {
        secret_version: Some(first.clone()),
        ..Default::default()
    };
    let updated = client
        .update_secret_properties(
            "rs-s1",
            update.try_into().map_err(at("update"))?,
            Some(options),
        )
        .await
        .map_err(at("update"))?
        .into_model()
        .map_err(at("update"))?;
    let disabled = updated.attributes.and_then(|a| a.enabled) == Some(false);
    check(
        "update properties",
        disabled && updated.content_type.as_deref() == Some("application/json"),
        updated.content_type,
    )?;
    let options = SecretClientGetSecretOptions {
        secret_version: Some(first),
        ..Default::default()
    };
    expect_error(
        "a disabled version is forbidden",
        client.get_secret("rs-s1", Some(options)).await,
        403,
        "Forbidden",
    )?;

    let deleted = client
        .delete_secret("rs-s1", None)
        .await
        .map_err(at("delete"))?
        .into_model()
        .map_err(at("delete"))?;
    let recovery = deleted.recovery_id.unwrap_or_default();
    check(
        "soft delete",
        recovery.ends_with("/deletedsecrets/rs-s1") && deleted.scheduled_purge_date.is_some(),
        &recovery,
    )?;
    client
        .get_deleted_secret("rs-s1", None)
        .await
        .map_err(at("get deleted"))?;
    let deleted_names: Vec<String> = client
        .list_deleted_secret_properties(None)
        .map_err(at("list deleted"))?
        .try_collect::<Vec<_>>()
        .await
        .map_err(at("list deleted"))?
        .into_iter()
        .filter_map(|d| d.resource_id().ok().map(|id| id.name))
        .collect();
    check(
        "list deleted",
        deleted_names.contains(&"rs-s1".to_owned()),
        &deleted_names,
    )?;
    expect_error(
        "a deleted name cannot be set",
        client
            .set_secret(
                "rs-s1",
                SetSecretParameters {
                    value: Some("x".into()),
                    ..Default::default()
                }
                .try_into()
                .map_err(at("conflict"))?,
                None,
            )
            .await,
        409,
        "Conflict",
    )?;
    client
        .recover_deleted_secret("rs-s1", None)
        .await
        .map_err(at("recover"))?;
    let recovered = value(client, "rs-s1", None).await?;
    check(
        "recover",
        recovered.as_deref() == Some("second value"),
        &recovered,
    )?;
    client
        .delete_secret("rs-s1", None)
        .await
        .map_err(at("delete again"))?;
    client
        .purge_deleted_secret("rs-s1", None)
        .await
        .map_err(at("purge"))?;
    expect_error(
        "purged is gone",
        client.get_secret("rs-s1", None).await,
        404,
        "SecretNotFound",
    )?;

    set(client, "rs-backup", "kept value").await?;
    let backup = client
        .backup_secret("rs-backup", None)
        .await
        .map_err(at("backup"))?
        .into_model()
        .map_err(at("backup"))?;
    client
        .delete_secret("rs-backup", None)
        .await
        .map_err(at("backup delete"))?;
    client
        .purge_deleted_secret("rs-backup", None)
        .await
        .map_err(at("backup purge"))?;
    let restore = RestoreSecretParameters {
        secret_backup: backup.value,
    };
    client
        .restore_secret(restore.try_into().map_err(at("restore"))?, None)
        .await
        .map_err(at("restore"))?;
    let restored = value(client, "rs-backup", None).await?;
    check(
        "backup and restore",
        restored.as_deref() == Some("kept value"),
        &restored,
    )
}

fn check_origin(got: &str, vault_url: &str) -> Result<()> {
    if got.trim_end_matches('/') == vault_url.trim_end_matches('/') {
        Ok(())
    } else {
        Err(format!("ids name the vault as {got}, not {vault_url}"))
    }
}

pub(crate) async fn errors(client: &SecretClient, keys: &KeyClient) -> Result<()> {
    let bad = SetSecretParameters {
        value: Some("x".into()),
        ..Default::default()
    };
    expect_error(
        "an invalid name",
        client
            .set_secret("bad_name", bad.try_into().map_err(at("invalid"))?, None)
            .await,
        400,
        "BadParameter",
    )?;
    expect_error(
        "a missing secret",
        client.get_secret("never-set", None).await,
        404,
        "SecretNotFound",
    )?;
    expect_error(
        "a missing key",
        keys.get_key("never-made", None).await,
        404,
        "KeyNotFound",
    )
}

/// `COFFER_CALLS` gets of one secret as fast as they go: the SDK's retry policy must absorb
/// the vault's 429s by waiting as Retry-After asks.
pub(crate) async fn throttled(client: &SecretClient) -> Result<()> {
    let name = env("COFFER_SECRET_NAME")?;
    let calls: u32 = env("COFFER_CALLS")
        .unwrap_or_else(|_| "30".into())
        .parse()
        .map_err(|e| format!("COFFER_CALLS: {e}"))?;
    let started = Instant::now();
    for _ in 0..calls {
        client
            .get_secret(&name, None)
            .await
            .map_err(at("throttled get"))?;
    }
    let elapsed: Duration = started.elapsed();
    println!(
        "ok throttled calls={calls} elapsed_ms={}",
        elapsed.as_millis()
    );
    Ok(())
}

pub(crate) async fn read(client: &SecretClient) -> Result<()> {
    let got = value(client, &env("COFFER_SECRET_NAME")?, None).await?;
    check("read", got == Some(env("COFFER_EXPECTED")?), &got)?;
    let write = SetSecretParameters {
        value: Some("x".into()),
        ..Default::default()
    };
    expect_error(
        "a reader may not write",
        client
            .set_secret("not-allowed", write.try_into().map_err(at("write"))?, None)
            .await,
        403,
        "Forbidden",
    )
}
