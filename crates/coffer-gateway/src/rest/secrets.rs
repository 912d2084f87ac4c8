//! Secrets and deleted secrets over REST: Azure's SecretBundle, SecretItem and
//! DeletedSecretBundle shapes around the service's secret operations.

use coffer_crypto::SecretString;
use coffer_service::{DeletedSecretBundle, SecretBundle, SecretUpdate, SetSecret};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    AttributesIn, TagsIn, ValueIn, add_deleted, attributes_out, decode, encode, tags_in, tags_out,
};
use super::{Call, Reply, Route};
use coffer_types::Error;

#[derive(Deserialize)]
struct SetSecretIn {
    value: String,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    #[serde(default)]
    attributes: Option<AttributesIn>,
    #[serde(default)]
    tags: TagsIn,
}

#[derive(Deserialize)]
struct UpdateSecretIn {
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    #[serde(default)]
    attributes: Option<AttributesIn>,
    #[serde(default)]
    tags: TagsIn,
}

/// How a secret version is shown: whole (with its value, when the operation returns one) or
/// as a list item, whose id names the version only in a list of versions.
enum Shape {
    Bundle,
    Item { versioned: bool },
}

fn secret_json(origin: &str, bundle: &SecretBundle, shape: Shape) -> Value {
    let SecretBundle {
        vault,
        record,
        value,
    } = bundle;
    let base_id = format!("{origin}/secrets/{}", record.name);
    let id = match shape {
        Shape::Bundle | Shape::Item { versioned: true } => format!("{base_id}/{}", record.version),
        Shape::Item { versioned: false } => base_id,
    };
    let mut body = json!({
        "id": id,
        "attributes": attributes_out(
            record.enabled,
            record.not_before,
            record.expires,
            record.created,
            record.updated,
            vault,
        ),
        "tags": tags_out(&record.tags),
    });
    if let Some(content_type) = &record.content_type {
        body["contentType"] = json!(content_type);
    }
    if let (Shape::Bundle, Some(value)) = (shape, value) {
        body["value"] = json!(value.expose());
    }
    body
}

fn deleted_json(origin: &str, deleted: DeletedSecretBundle, item: bool) -> Value {
    let DeletedSecretBundle {
        vault,
        deleted,
        record,
    } = deleted;
    let bundle = SecretBundle {
        vault,
        record,
        value: None,
    };
    let shape = if item {
        Shape::Item { versioned: false }
    } else {
        Shape::Bundle
    };
    let mut body = secret_json(origin, &bundle, shape);
    add_deleted(&mut body, origin, "deletedsecrets", &deleted);
    body
}

/// The audit id of a secret version a write produced.
fn audited(call: &Call, bundle: &SecretBundle) -> String {
    format!(
        "{}/secrets/{}/{}",
        call.vault, bundle.record.name, bundle.record.version
    )
}

pub(super) async fn serve(call: Call, route: Route) -> Result<Reply, Error> {
    let (svc, ctx, vault, origin) = (&call.svc, &call.ctx, call.vault.as_str(), &call.origin);
    match route {
        Route::SetSecret(name) => {
            let input: SetSecretIn = call.json()?;
            let attributes = input.attributes.unwrap_or_default();
            let bundle = svc
                .set_secret(
                    ctx,
                    SetSecret {
                        vault: vault.to_owned(),
                        name,
                        value: SecretString::new(input.value),
                        content_type: input.content_type,
                        enabled: attributes.enabled,
                        not_before: attributes.nbf,
                        expires: attributes.exp,
                        tags: tags_in(input.tags).unwrap_or_default(),
                    },
                )
                .await?;
            let id = audited(&call, &bundle);
            Ok(Reply::ok(secret_json(origin, &bundle, Shape::Bundle)).audited(id))
        }
        Route::GetSecret(name, version) => {
            let bundle = svc
                .get_secret(ctx, vault, &name, version.as_deref())
                .await?;
            Ok(Reply::ok(secret_json(origin, &bundle, Shape::Bundle)))
        }
        Route::UpdateSecret(name, version) => {
            let input: UpdateSecretIn = call.json()?;
            let attributes = input.attributes.unwrap_or_default();
            let update = SecretUpdate {
                enabled: attributes.enabled,
                not_before: attributes.nbf,
                expires: attributes.exp,
                content_type: input.content_type,
                tags: tags_in(input.tags),
            };
            let bundle = svc
                .update_secret(ctx, vault, &name, version.as_deref(), update)
                .await?;
            Ok(Reply::ok(secret_json(origin, &bundle, Shape::Bundle)))
        }
        Route::DeleteSecret(name) => {
            let deleted = svc.delete_secret(ctx, vault, &name).await?;
            Ok(Reply::ok(deleted_json(origin, deleted, false)))
        }
        Route::ListSecrets => {
            let listing = svc
                .list_secrets(ctx, vault, call.max_results()?, call.skip_token())
                .await?;
            let items = listing.map(|b| secret_json(origin, &b, Shape::Item { versioned: false }));
            call.page("/secrets", items)
        }
        Route::ListSecretVersions(name) => {
            let listing = svc
                .list_secret_versions(ctx, vault, &name, call.max_results()?, call.skip_token())
                .await?;
            let items = listing.map(|b| secret_json(origin, &b, Shape::Item { versioned: true }));
            call.page(&format!("/secrets/{name}/versions"), items)
        }
        Route::BackupSecret(name) => {
            let blob = svc.backup_secret(ctx, vault, &name).await?;
            Ok(Reply::ok(json!({ "value": encode(&blob) })))
        }
        Route::RestoreSecret => {
            let input: ValueIn = call.json()?;
            let blob = decode("value", &input.value)?;
            let bundle = svc.restore_secret(ctx, vault, &blob).await?;
            let id = audited(&call, &bundle);
            Ok(Reply::ok(secret_json(origin, &bundle, Shape::Bundle)).audited(id))
        }
        Route::ListDeletedSecrets => {
            let listing = svc
                .list_deleted_secrets(ctx, vault, call.max_results()?, call.skip_token())
                .await?;
            let items = listing.map(|d| deleted_json(origin, d, true));
            call.page("/deletedsecrets", items)
        }
        Route::GetDeletedSecret(name) => {
            let deleted = svc.get_deleted_secret(ctx, vault, &name).await?;
            Ok(Reply::ok(deleted_json(origin, deleted, false)))
        }
        Route::PurgeDeletedSecret(name) => {
            svc.purge_deleted_secret(ctx, vault, &name).await?;
            Ok(Reply::no_content())
        }
        Route::RecoverDeletedSecret(name) => {
            let bundle = svc.recover_deleted_secret(ctx, vault, &name).await?;
            Ok(Reply::ok(secret_json(origin, &bundle, Shape::Bundle)))
        }
        other => Err(Error::internal(format!(
            "{} is not a secret operation.",
            other.operation_name()
        ))),
    }
}
