//! The keys scenario: create, import, rotate, the cryptographic operations (all of them on the
//! server: the Rust KeyClient has no local provider), rotation policy, random bytes, backups
//! and the lifecycle.

use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, EncryptionAlgorithm, GetRandomBytesParameters,
    ImportKeyParameters, JsonWebKey, KeyClientGetKeyOptions, KeyOperationParameters,
    KeyRotationPolicy, KeyRotationPolicyAction, KeyRotationPolicyAttributes, KeyType,
    LifetimeAction, LifetimeActionTrigger, LifetimeActionType, RestoreKeyParameters,
    SignParameters, SignatureAlgorithm, VerifyParameters,
};
use azure_security_keyvault_keys::{KeyClient, ResourceExt};
use futures::TryStreamExt;

use crate::{Result, at, check, expect_error};

/// A SHA-256-sized digest; what is signed need not be a real hash for the service.
const DIGEST: [u8; 32] = [7; 32];

async fn create(client: &KeyClient, name: &str, parameters: CreateKeyParameters) -> Result<String> {
    let key = client
        .create_key(name, parameters.try_into().map_err(at("create"))?, None)
        .await
        .map_err(at("create"))?
        .into_model()
        .map_err(at("create"))?;
    key.resource_id()
        .map_err(at("create: resource id"))?
        .version
        .ok_or_else(|| format!("create {name}: no version"))
}

pub(crate) async fn all(client: &KeyClient) -> Result<()> {
    let rsa = create(
        client,
        "rs-rsa",
        CreateKeyParameters {
            kty: Some(KeyType::Rsa),
            key_size: Some(2048),
            ..Default::default()
        },
    )
    .await?;
    create(
        client,
        "rs-ec",
        CreateKeyParameters {
            kty: Some(KeyType::Ec),
            curve: Some(CurveName::P256),
            ..Default::default()
        },
    )
    .await?;
    println!("ok create rsa and ec");
    let options = KeyClientGetKeyOptions {
        key_version: Some(rsa.clone()),
        ..Default::default()
    };
    let got = client
        .get_key("rs-rsa", Some(options))
        .await
        .map_err(at("get"))?
        .into_model()
        .map_err(at("get"))?;
    let public = got.key.unwrap_or_default();
    check(
        "get key",
        public.n.is_some() && public.e.is_some() && public.d.is_none(),
        &public.kty,
    )?;
    let names: Vec<String> = client
        .list_key_properties(None)
        .map_err(at("list"))?
        .try_collect::<Vec<_>>()
        .await
        .map_err(at("list"))?
        .into_iter()
        .filter_map(|k| k.resource_id().ok().map(|id| id.name))
        .collect();
    check(
        "list keys",
        names.contains(&"rs-rsa".to_owned()) && names.contains(&"rs-ec".to_owned()),
        &names,
    )?;
    let rotated = client
        .rotate_key("rs-rsa", None)
        .await
        .map_err(at("rotate"))?
        .into_model()
        .map_err(at("rotate"))?
        .resource_id()
        .map_err(at("rotate"))?
        .version
        .unwrap_or_default();
    check("rotate", !rotated.is_empty() && rotated != rsa, &rotated)?;
    let versions: Vec<_> = client
        .list_key_properties_versions("rs-rsa", None)
        .map_err(at("versions"))?
        .try_collect()
        .await
        .map_err(at("versions"))?;
    check("list key versions", versions.len() == 2, versions.len())?;

    // Encrypt with the latest version (no version in the path: `/keys/rs-rsa//encrypt`), then
    // decrypt with the version the result names.
    let plaintext = b"attack at dawn".to_vec();
    let encrypt = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(plaintext.clone()),
        ..Default::default()
    };
    let encrypted = client
        .encrypt("rs-rsa", encrypt.try_into().map_err(at("encrypt"))?, None)
        .await
        .map_err(at("encrypt"))?
        .into_model()
        .map_err(at("encrypt"))?;
    let decrypt = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: encrypted.result,
        ..Default::default()
    };
    let decrypted = client
        .decrypt(
            "rs-rsa",
            &rotated,
            decrypt.try_into().map_err(at("decrypt"))?,
            None,
        )
        .await
        .map_err(at("decrypt"))?
        .into_model()
        .map_err(at("decrypt"))?;
    check(
        "encrypt/decrypt",
        decrypted.result.as_deref() == Some(&plaintext[..]),
        decrypted.kid,
    )?;
    let cek = vec![0x5a; 32];
    let wrap = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep),
        value: Some(cek.clone()),
        ..Default::default()
    };
    let wrapped = client
        .wrap_key("rs-rsa", wrap.try_into().map_err(at("wrap"))?, None)
        .await
        .map_err(at("wrap"))?
        .into_model()
        .map_err(at("wrap"))?;
    let unwrap = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep),
        value: wrapped.result,
        ..Default::default()
    };
    let unwrapped = client
        .unwrap_key(
            "rs-rsa",
            &rotated,
            unwrap.try_into().map_err(at("unwrap"))?,
            None,
        )
        .await
        .map_err(at("unwrap"))?
        .into_model()
        .map_err(at("unwrap"))?;
    check(
        "wrap/unwrap",
        unwrapped.result.as_deref() == Some(&cek[..]),
        "",
    )?;
    for (name, version, alg, step) in [
        (
            "rs-rsa",
            rotated.as_str(),
            SignatureAlgorithm::Rs256,
            "sign/verify rs256",
        ),
        ("rs-ec", "", SignatureAlgorithm::Es256, "sign/verify es256"),
    ] {
        sign_and_verify(client, name, version, alg, step).await?;
    }

    let import = ImportKeyParameters {
        key: Some(JsonWebKey {
            kty: Some(KeyType::Oct),
            key_ops: Some(vec!["wrapKey".into(), "unwrapKey".into()]),
            k: Some((0u8..32).collect()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let imported = client
        .import_key(
            "rs-imported",
            import.try_into().map_err(at("import"))?,
            None,
        )
        .await
        .map_err(at("import"))?
        .into_model()
        .map_err(at("import"))?;
    let key = imported.key.unwrap_or_default();
    check(
        "import",
        key.kty == Some(KeyType::Oct) && key.k.is_none(),
        &key.kty,
    )?;

    let policy = KeyRotationPolicy {
        lifetime_actions: Some(vec![LifetimeAction {
            action: Some(LifetimeActionType {
                type_prop: Some(KeyRotationPolicyAction::Rotate),
            }),
            trigger: Some(LifetimeActionTrigger {
                time_after_create: Some("P30D".into()),
                ..Default::default()
            }),
        }]),
        attributes: Some(KeyRotationPolicyAttributes {
            expiry_time: Some("P90D".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .update_key_rotation_policy("rs-rsa", policy.try_into().map_err(at("policy"))?, None)
        .await
        .map_err(at("policy"))?;
    let got = client
        .get_key_rotation_policy("rs-rsa", None)
        .await
        .map_err(at("get policy"))?
        .into_model()
        .map_err(at("get policy"))?;
    let expiry = got.attributes.and_then(|a| a.expiry_time);
    let after = got
        .lifetime_actions
        .unwrap_or_default()
        .into_iter()
        .find_map(|a| a.trigger.and_then(|t| t.time_after_create));
    check(
        "rotation policy",
        expiry.as_deref() == Some("P90D") && after.as_deref() == Some("P30D"),
        (&expiry, &after),
    )?;
    let random = client
        .get_random_bytes(
            GetRandomBytesParameters { count: Some(32) }
                .try_into()
                .map_err(at("rng"))?,
            None,
        )
        .await
        .map_err(at("rng"))?
        .into_model()
        .map_err(at("rng"))?;
    check(
        "random bytes",
        random.value.map(|v| v.len()) == Some(32),
        "",
    )?;

    let backup = client
        .backup_key("rs-ec", None)
        .await
        .map_err(at("backup"))?
        .into_model()
        .map_err(at("backup"))?;
    client
        .delete_key("rs-ec", None)
        .await
        .map_err(at("backup delete"))?;
    client
        .purge_deleted_key("rs-ec", None)
        .await
        .map_err(at("backup purge"))?;
    let restore = RestoreKeyParameters {
        key_backup: backup.value,
    };
    client
        .restore_key(restore.try_into().map_err(at("restore"))?, None)
        .await
        .map_err(at("restore"))?;
    sign_and_verify(
        client,
        "rs-ec",
        "",
        SignatureAlgorithm::Es256,
        "backup and restore key",
    )
    .await?;

    let deleted = client
        .delete_key("rs-rsa", None)
        .await
        .map_err(at("delete"))?
        .into_model()
        .map_err(at("delete"))?;
    check(
        "delete key",
        deleted
            .recovery_id
            .as_deref()
            .is_some_and(|r| r.ends_with("/deletedkeys/rs-rsa")),
        &deleted.recovery_id,
    )?;
    client
        .get_deleted_key("rs-rsa", None)
        .await
        .map_err(at("get deleted"))?;
    let deleted_names: Vec<String> = client
        .list_deleted_key_properties(None)
        .map_err(at("list deleted"))?
        .try_collect::<Vec<_>>()
        .await
        .map_err(at("list deleted"))?
        .into_iter()
        .filter_map(|k| k.resource_id().ok().map(|id| id.name))
        .collect();
    check(
        "list deleted keys",
        deleted_names.contains(&"rs-rsa".to_owned()),
        &deleted_names,
    )?;
    client
        .recover_deleted_key("rs-rsa", None)
        .await
        .map_err(at("recover"))?;
    sign_and_verify(
        client,
        "rs-rsa",
        "",
        SignatureAlgorithm::Rs256,
        "recover key",
    )
    .await?;
    client
        .delete_key("rs-rsa", None)
        .await
        .map_err(at("delete again"))?;
    client
        .purge_deleted_key("rs-rsa", None)
        .await
        .map_err(at("purge"))?;
    expect_error(
        "purged key is gone",
        client.get_key("rs-rsa", None).await,
        404,
        "KeyNotFound",
    )
}

/// Signs a digest on the server and verifies it there: true for it, false for another digest.
async fn sign_and_verify(
    client: &KeyClient,
    name: &str,
    version: &str,
    alg: SignatureAlgorithm,
    step: &str,
) -> Result<()> {
    let sign = SignParameters {
        algorithm: Some(alg.clone()),
        value: Some(DIGEST.to_vec()),
    };
    let signed = client
        .sign(name, sign.try_into().map_err(at(step))?, None)
        .await
        .map_err(at(step))?
        .into_model()
        .map_err(at(step))?;
    let kid_version = signed
        .kid
        .as_deref()
        .and_then(|kid| kid.rsplit('/').next())
        .unwrap_or(version)
        .to_owned();
    let mut verdicts = Vec::new();
    for digest in [DIGEST.to_vec(), vec![8; 32]] {
        let verify = VerifyParameters {
            algorithm: Some(alg.clone()),
            digest: Some(digest),
            signature: signed.result.clone(),
        };
        let verdict = client
            .verify(
                name,
                &kid_version,
                verify.try_into().map_err(at(step))?,
                None,
            )
            .await
            .map_err(at(step))?
            .into_model()
            .map_err(at(step))?;
        verdicts.push(verdict.value);
    }
    check(step, verdicts == [Some(true), Some(false)], verdicts)
}
