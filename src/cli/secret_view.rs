//! How `coffer secret` commands show secrets: the `az`-shaped JSON form and tables.

use coffer_client::proto::{Secret, SecretAttributes};
use serde_json::{Value, json};

use super::output::{self, Table, cell};

/// The JSON form of a secret, as `az keyvault secret show` prints it; `value` only when
/// `with_value` (list items never carry one).
pub fn secret_json(secret: &Secret, with_value: bool) -> Value {
    let default = SecretAttributes::default();
    let attributes = secret.attributes.as_ref().unwrap_or(&default);
    let mut json = json!({
        "attributes": {
            "created": output::time_json(attributes.created),
            "enabled": attributes.enabled,
            "expires": output::opt_time_json(attributes.expires),
            "notBefore": output::opt_time_json(attributes.not_before),
            "recoverableDays": attributes.recoverable_days,
            "recoveryLevel": attributes.recovery_level,
            "updated": output::time_json(attributes.updated),
        },
        "contentType": non_empty(&secret.content_type),
        "id": secret.id,
        "name": secret.name,
        "tags": secret.tags,
    });
    if with_value && let Value::Object(map) = &mut json {
        map.insert("value".to_owned(), Value::String(secret.value.clone()));
    }
    json
}

fn non_empty(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

/// One secret as a table; the value column only for `show`.
pub fn show_table(secret: &Secret, with_value: bool) -> Table {
    let json = secret_json(secret, false);
    let attr = |key: &str| cell(&json["attributes"][key]);
    let mut headers = vec![
        "Name",
        "Version",
        "Enabled",
        "ContentType",
        "NotBefore",
        "Expires",
    ];
    let mut row = vec![
        secret.name.clone(),
        secret.version.clone(),
        attr("enabled"),
        secret.content_type.clone(),
        attr("notBefore"),
        attr("expires"),
    ];
    if with_value {
        headers.push("Value");
        row.push(secret.value.clone());
    }
    Table {
        headers,
        rows: vec![row],
    }
}

/// Secrets (or versions of one secret) as a table, never with values.
pub fn list_table(secrets: &[Secret], versions: bool) -> Table {
    let first = if versions { "Version" } else { "Name" };
    Table {
        headers: vec![
            first,
            "Enabled",
            "ContentType",
            "NotBefore",
            "Expires",
            "Updated",
        ],
        rows: secrets
            .iter()
            .map(|secret| {
                let json = secret_json(secret, false);
                let attr = |key: &str| cell(&json["attributes"][key]);
                let id = if versions {
                    &secret.version
                } else {
                    &secret.name
                };
                vec![
                    id.clone(),
                    attr("enabled"),
                    secret.content_type.clone(),
                    attr("notBefore"),
                    attr("expires"),
                    attr("updated"),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret {
            vault: "kv1".to_owned(),
            name: "db".to_owned(),
            version: "abc".to_owned(),
            value: "s3cret".to_owned(),
            content_type: String::new(),
            attributes: Some(SecretAttributes {
                enabled: true,
                not_before: None,
                expires: Some(60),
                created: 0,
                updated: 0,
                recovery_level: "Recoverable+Purgeable".to_owned(),
                recoverable_days: 90,
            }),
            tags: Default::default(),
            id: "https://kv1.vault.local/secrets/db/abc".to_owned(),
        }
    }

    #[test]
    fn secret_json_shape() {
        let json = secret_json(&secret(), true);
        assert_eq!(
            json,
            json!({
                "attributes": {
                    "created": "1970-01-01T00:00:00Z", "enabled": true,
                    "expires": "1970-01-01T00:01:00Z", "notBefore": null,
                    "recoverableDays": 90, "recoveryLevel": "Recoverable+Purgeable",
                    "updated": "1970-01-01T00:00:00Z"
                },
                "contentType": null,
                "id": "https://kv1.vault.local/secrets/db/abc",
                "name": "db",
                "tags": {},
                "value": "s3cret"
            })
        );
    }

    #[test]
    fn lists_never_show_values() {
        let secrets = vec![secret()];
        assert!(secret_json(&secrets[0], false).get("value").is_none());
        let table = output::format_table(&list_table(&secrets, false));
        assert!(!table.contains("s3cret"), "{table}");
        assert!(table.contains("db"));
        let table = output::format_table(&list_table(&secrets, true));
        assert!(
            !table.contains("s3cret") && table.contains("abc"),
            "{table}"
        );
    }
}
