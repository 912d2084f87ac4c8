//! Keys over REST: Azure's KeyBundle, KeyItem, DeletedKeyBundle, the cryptographic
//! operations, rotation policies and random bytes. Private key parts arrive only in an import
//! and leave in nothing.

use coffer_service::{
    CreateKey, DeletedKeyBundle, ImportKey, KeyBundle, KeyOperationInput, KeyOperationOutcome,
    KeyUpdate, LifetimeActionInput, RotationPolicyBundle,
};
use coffer_types::keys::{CurveName, KeyOperation, KeyType, LifetimeTrigger};
use coffer_types::{Error, JsonWebKey};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::{Zeroize, Zeroizing};

use super::model::{
    AttributesIn, TagsIn, ValueIn, add_deleted, attributes_out, decode, encode, tags_in, tags_out,
};
use super::{Call, Reply, Route};

#[derive(Deserialize)]
struct CreateKeyIn {
    kty: String,
    key_size: Option<u32>,
    public_exponent: Option<u32>,
    crv: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    attributes: Option<AttributesIn>,
    #[serde(default)]
    tags: TagsIn,
}

/// A JWK as sent in an import; every part base64url. The strings are wiped once decoded.
#[derive(Deserialize, Default)]
struct JwkIn {
    kty: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    p: Option<String>,
    q: Option<String>,
    k: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Drop for JwkIn {
    fn drop(&mut self) {
        for part in [
            &mut self.d,
            &mut self.dp,
            &mut self.dq,
            &mut self.qi,
            &mut self.p,
            &mut self.q,
            &mut self.k,
        ] {
            part.zeroize();
        }
    }
}

#[derive(Deserialize)]
struct ImportKeyIn {
    key: JwkIn,
    #[serde(rename = "Hsm")]
    hsm: Option<bool>,
    #[serde(default)]
    attributes: Option<AttributesIn>,
    #[serde(default)]
    tags: TagsIn,
}

#[derive(Deserialize)]
struct UpdateKeyIn {
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    attributes: Option<AttributesIn>,
    #[serde(default)]
    tags: TagsIn,
}

/// encrypt, decrypt, wrapkey and unwrapkey.
#[derive(Deserialize)]
struct OperationIn {
    alg: String,
    value: String,
    iv: Option<String>,
    aad: Option<String>,
    tag: Option<String>,
}

#[derive(Deserialize)]
struct SignIn {
    alg: String,
    value: String,
}

#[derive(Deserialize)]
struct VerifyIn {
    alg: String,
    digest: String,
    value: String,
}

#[derive(Deserialize)]
struct RandomIn {
    count: u32,
}

#[derive(Deserialize)]
struct PolicyIn {
    #[serde(rename = "lifetimeActions", default)]
    lifetime_actions: Option<Vec<LifetimeActionIn>>,
    #[serde(default)]
    attributes: Option<PolicyAttributesIn>,
}

#[derive(Deserialize)]
struct LifetimeActionIn {
    trigger: TriggerIn,
    action: ActionIn,
}

#[derive(Deserialize)]
struct TriggerIn {
    #[serde(rename = "timeAfterCreate")]
    time_after_create: Option<String>,
    #[serde(rename = "timeBeforeExpiry")]
    time_before_expiry: Option<String>,
}

#[derive(Deserialize)]
struct ActionIn {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PolicyAttributesIn {
    #[serde(rename = "expiryTime")]
    expiry_time: Option<String>,
}

fn kid(origin: &str, name: &str, version: &str) -> String {
    format!("{origin}/keys/{name}/{version}")
}

fn key_json(origin: &str, bundle: &KeyBundle, item: Option<bool>) -> Value {
    let KeyBundle { vault, record } = bundle;
    let versioned_kid = kid(origin, &record.name, &record.version);
    let mut attributes = attributes_out(
        record.enabled,
        record.not_before,
        record.expires,
        record.created,
        record.updated,
        vault,
    );
    attributes.insert("exportable".into(), false.into());
    let mut body = json!({
        "attributes": attributes,
        "tags": tags_out(&record.tags),
    });
    match item {
        // A list item: the kid names the version only in a list of versions.
        Some(versioned) => {
            body["kid"] = if versioned {
                json!(versioned_kid)
            } else {
                json!(format!("{origin}/keys/{}", record.name))
            };
        }
        None => {
            let public = &record.public;
            let mut key = json!({
                "kid": versioned_kid,
                "kty": record.kty.as_str(),
                "key_ops": record.key_ops.iter().map(|op| op.as_str()).collect::<Vec<_>>(),
            });
            for (field, part) in [
                ("n", &public.n),
                ("e", &public.e),
                ("x", &public.x),
                ("y", &public.y),
            ] {
                if let Some(bytes) = part {
                    key[field] = json!(encode(bytes));
                }
            }
            if let Some(crv) = public.crv {
                key["crv"] = json!(crv.as_str());
            }
            body["key"] = key;
        }
    }
    body
}

fn deleted_json(origin: &str, deleted: DeletedKeyBundle, item: bool) -> Value {
    let DeletedKeyBundle {
        vault,
        deleted,
        record,
    } = deleted;
    let bundle = KeyBundle { vault, record };
    let mut body = key_json(origin, &bundle, item.then_some(false));
    add_deleted(&mut body, origin, "deletedkeys", &deleted);
    body
}

fn policy_json(origin: &str, bundle: &RotationPolicyBundle) -> Value {
    let policy = &bundle.policy;
    let actions: Vec<Value> = policy
        .lifetime_actions
        .iter()
        .map(|a| {
            let trigger = match a.trigger {
                LifetimeTrigger::TimeAfterCreate(d) => json!({"timeAfterCreate": d.to_text()}),
                LifetimeTrigger::TimeBeforeExpiry(d) => json!({"timeBeforeExpiry": d.to_text()}),
            };
            json!({"trigger": trigger, "action": {"type": a.action.as_str()}})
        })
        .collect();
    let mut attributes = json!({"created": policy.created, "updated": policy.updated});
    if let Some(expiry) = policy.expiry_time {
        attributes["expiryTime"] = json!(expiry.to_text());
    }
    json!({
        "id": format!("{origin}/keys/{}/rotationpolicy", bundle.name),
        "lifetimeActions": actions,
        "attributes": attributes,
    })
}

fn outcome_json(origin: &str, outcome: &KeyOperationOutcome) -> Value {
    let mut body = json!({
        "kid": kid(origin, &outcome.name, &outcome.version),
        "value": encode(&outcome.value),
    });
    for (field, part) in [
        ("iv", &outcome.iv),
        ("tag", &outcome.tag),
        ("aad", &outcome.aad),
    ] {
        if !part.is_empty() {
            body[field] = json!(encode(part));
        }
    }
    body
}

fn optional_bytes(field: &str, text: Option<&String>) -> Result<Vec<u8>, Error> {
    text.map(|t| decode(field, t))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn jwk_from(input: &JwkIn) -> Result<JsonWebKey, Error> {
    let part =
        |field: &str, text: &Option<String>| text.as_ref().map(|t| decode(field, t)).transpose();
    let mut jwk = JsonWebKey::default();
    jwk.kty = input.kty.as_deref().map(KeyType::parse).transpose()?;
    jwk.crv = input.crv.as_deref().map(CurveName::parse).transpose()?;
    jwk.key_ops = input
        .key_ops
        .iter()
        .flatten()
        .map(|op| KeyOperation::parse(op))
        .collect::<Result<_, _>>()?;
    jwk.n = part("n", &input.n)?;
    jwk.e = part("e", &input.e)?;
    jwk.x = part("x", &input.x)?;
    jwk.y = part("y", &input.y)?;
    jwk.d = part("d", &input.d)?;
    jwk.dp = part("dp", &input.dp)?;
    jwk.dq = part("dq", &input.dq)?;
    jwk.qi = part("qi", &input.qi)?;
    jwk.p = part("p", &input.p)?;
    jwk.q = part("q", &input.q)?;
    jwk.k = part("k", &input.k)?;
    Ok(jwk)
}

/// Azure's action names are `Rotate` and `Notify`; older SDKs send them in lower case.
fn action_name(kind: &str) -> String {
    match kind.to_ascii_lowercase().as_str() {
        "rotate" => "Rotate".to_owned(),
        "notify" => "Notify".to_owned(),
        _ => kind.to_owned(),
    }
}

fn audited(call: &Call, bundle: &KeyBundle) -> String {
    format!(
        "{}/keys/{}/{}",
        call.vault, bundle.record.name, bundle.record.version
    )
}

pub(super) async fn serve(call: Call, route: Route) -> Result<Reply, Error> {
    let (svc, ctx, vault, origin) = (&call.svc, &call.ctx, call.vault.as_str(), &call.origin);
    let bundle_reply = |bundle: KeyBundle| {
        let id = audited(&call, &bundle);
        Reply::ok(key_json(origin, &bundle, None)).audited(id)
    };
    match route {
        Route::CreateKey(name) => {
            let input: CreateKeyIn = call.json()?;
            let attributes = input.attributes.unwrap_or_default();
            let bundle = svc
                .create_key(
                    ctx,
                    CreateKey {
                        vault: vault.to_owned(),
                        name,
                        kty: input.kty,
                        key_size: input.key_size,
                        public_exponent: input.public_exponent,
                        crv: input.crv,
                        key_ops: input.key_ops.unwrap_or_default(),
                        enabled: attributes.enabled,
                        not_before: attributes.nbf,
                        expires: attributes.exp,
                        tags: tags_in(input.tags).unwrap_or_default(),
                    },
                )
                .await?;
            Ok(bundle_reply(bundle))
        }
        Route::ImportKey(name) => {
            let input: ImportKeyIn = call.json()?;
            let key = jwk_from(&input.key)?;
            let attributes = input.attributes.unwrap_or_default();
            let bundle = svc
                .import_key(
                    ctx,
                    ImportKey {
                        vault: vault.to_owned(),
                        name,
                        key,
                        hsm: input.hsm.unwrap_or(false),
                        enabled: attributes.enabled,
                        not_before: attributes.nbf,
                        expires: attributes.exp,
                        tags: tags_in(input.tags).unwrap_or_default(),
                    },
                )
                .await?;
            Ok(bundle_reply(bundle))
        }
        Route::RotateKey(name) => Ok(bundle_reply(svc.rotate_key(ctx, vault, &name).await?)),
        Route::GetKey(name, version) => {
            let bundle = svc.get_key(ctx, vault, &name, version.as_deref()).await?;
            Ok(Reply::ok(key_json(origin, &bundle, None)))
        }
        Route::UpdateKey(name, version) => {
            let input: UpdateKeyIn = call.json()?;
            let attributes = input.attributes.unwrap_or_default();
            let update = KeyUpdate {
                enabled: attributes.enabled,
                not_before: attributes.nbf,
                expires: attributes.exp,
                key_ops: input.key_ops,
                tags: tags_in(input.tags),
            };
            let bundle = svc
                .update_key(ctx, vault, &name, version.as_deref(), update)
                .await?;
            Ok(Reply::ok(key_json(origin, &bundle, None)))
        }
        Route::DeleteKey(name) => {
            let deleted = svc.delete_key(ctx, vault, &name).await?;
            Ok(Reply::ok(deleted_json(origin, deleted, false)))
        }
        Route::ListKeys => {
            let listing = svc
                .list_keys(ctx, vault, call.max_results()?, call.skip_token())
                .await?;
            call.page("/keys", listing.map(|b| key_json(origin, &b, Some(false))))
        }
        Route::ListKeyVersions(name) => {
            let listing = svc
                .list_key_versions(ctx, vault, &name, call.max_results()?, call.skip_token())
                .await?;
            let items = listing.map(|b| key_json(origin, &b, Some(true)));
            call.page(&format!("/keys/{name}/versions"), items)
        }
        Route::BackupKey(name) => {
            let blob = svc.backup_key(ctx, vault, &name).await?;
            Ok(Reply::ok(json!({ "value": encode(&blob) })))
        }
        Route::RestoreKey => {
            let input: ValueIn = call.json()?;
            let blob = decode("value", &input.value)?;
            Ok(bundle_reply(svc.restore_key(ctx, vault, &blob).await?))
        }
        Route::ListDeletedKeys => {
            let listing = svc
                .list_deleted_keys(ctx, vault, call.max_results()?, call.skip_token())
                .await?;
            call.page(
                "/deletedkeys",
                listing.map(|d| deleted_json(origin, d, true)),
            )
        }
        Route::GetDeletedKey(name) => {
            let deleted = svc.get_deleted_key(ctx, vault, &name).await?;
            Ok(Reply::ok(deleted_json(origin, deleted, false)))
        }
        Route::PurgeDeletedKey(name) => {
            svc.purge_deleted_key(ctx, vault, &name).await?;
            Ok(Reply::no_content())
        }
        Route::RecoverDeletedKey(name) => {
            let bundle = svc.recover_deleted_key(ctx, vault, &name).await?;
            Ok(Reply::ok(key_json(origin, &bundle, None)))
        }
        Route::GetRotationPolicy(name) => {
            let bundle = svc.get_key_rotation_policy(ctx, vault, &name).await?;
            Ok(Reply::ok(policy_json(origin, &bundle)))
        }
        Route::SetRotationPolicy(name) => {
            let input: PolicyIn = call.json()?;
            let actions: Vec<LifetimeActionInput> = input
                .lifetime_actions
                .unwrap_or_default()
                .into_iter()
                .map(|a| LifetimeActionInput {
                    action: action_name(&a.action.kind),
                    time_after_create: a.trigger.time_after_create,
                    time_before_expiry: a.trigger.time_before_expiry,
                })
                .collect();
            let expiry = input.attributes.and_then(|a| a.expiry_time);
            let bundle = svc
                .update_key_rotation_policy(ctx, vault, &name, &actions, expiry.as_deref())
                .await?;
            Ok(Reply::ok(policy_json(origin, &bundle)))
        }
        Route::KeyOperation(name, version, KeyOperation::Sign) => {
            let input: SignIn = call.json()?;
            let digest = decode("value", &input.value)?;
            let outcome = svc
                .sign(ctx, vault, &name, version.as_deref(), &input.alg, &digest)
                .await?;
            Ok(Reply::ok(outcome_json(origin, &outcome)))
        }
        Route::KeyOperation(name, version, KeyOperation::Verify) => {
            let input: VerifyIn = call.json()?;
            let digest = decode("digest", &input.digest)?;
            let signature = decode("value", &input.value)?;
            let valid = svc
                .verify(
                    ctx,
                    vault,
                    &name,
                    version.as_deref(),
                    &input.alg,
                    &digest,
                    &signature,
                )
                .await?;
            Ok(Reply::ok(json!({ "value": valid })))
        }
        Route::KeyOperation(name, version, operation) => {
            let input: OperationIn = call.json()?;
            let value = Zeroizing::new(decode("value", &input.value)?);
            let outcome = svc
                .key_operation(
                    ctx,
                    operation,
                    KeyOperationInput {
                        vault: vault.to_owned(),
                        name,
                        version,
                        alg: input.alg,
                        value,
                        iv: optional_bytes("iv", input.iv.as_ref())?,
                        aad: optional_bytes("aad", input.aad.as_ref())?,
                        tag: optional_bytes("tag", input.tag.as_ref())?,
                    },
                )
                .await?;
            Ok(Reply::ok(outcome_json(origin, &outcome)))
        }
        Route::RandomBytes => {
            let input: RandomIn = call.json()?;
            let bytes = svc.random_bytes(ctx, vault, input.count).await?;
            Ok(Reply::ok(json!({ "value": encode(&bytes) })))
        }
        other => Err(Error::internal(format!(
            "{} is not a key operation.",
            other.operation_name()
        ))),
    }
}
