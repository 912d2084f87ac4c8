//! How deleted secrets and vaults are shown: the object's own JSON form plus when it was
//! deleted and when it will be purged, in the camelCase names `az` uses (`recoveryId`,
//! `deletedDate`, `scheduledPurgeDate`; the recovery level stays in `attributes`, as for an
//! active secret).

use coffer_client::proto::{DeletedSecret, DeletedVault, Secret, Vault};
use serde_json::Value;

use super::output::{self, Table, cell};
use super::secret_view::secret_json;
use super::vault::vault_json;

/// Adds the deletion fields to an object's JSON form.
fn with_deletion<const N: usize>(mut json: Value, fields: [(&str, Value); N]) -> Value {
    if let Value::Object(map) = &mut json {
        for (key, value) in fields {
            map.insert(key.to_owned(), value);
        }
    }
    json
}

/// A deleted secret as `az keyvault secret show-deleted` prints it (never a value).
pub fn deleted_secret_json(deleted: &DeletedSecret) -> Value {
    let default = Secret::default();
    let secret = deleted.secret.as_ref().unwrap_or(&default);
    with_deletion(
        secret_json(secret, false),
        [
            ("recoveryId", Value::String(deleted.recovery_id.clone())),
            ("deletedDate", output::time_json(deleted.deleted_date)),
            (
                "scheduledPurgeDate",
                output::time_json(deleted.scheduled_purge_date),
            ),
        ],
    )
}

/// Deleted secrets as a table: name, recovery id, dates and recovery level.
pub fn deleted_secrets_table(deleted: &[DeletedSecret]) -> Table {
    Table {
        headers: vec![
            "Name",
            "RecoveryId",
            "DeletedDate",
            "ScheduledPurgeDate",
            "RecoveryLevel",
        ],
        rows: deleted
            .iter()
            .map(|item| {
                let json = deleted_secret_json(item);
                vec![
                    cell(&json["name"]),
                    item.recovery_id.clone(),
                    cell(&json["deletedDate"]),
                    cell(&json["scheduledPurgeDate"]),
                    cell(&json["attributes"]["recoveryLevel"]),
                ]
            })
            .collect(),
    }
}

/// A deleted vault: its properties, when it was deleted and when it will be purged.
pub fn deleted_vault_json(deleted: &DeletedVault) -> Value {
    let default = Vault::default();
    let vault = deleted.vault.as_ref().unwrap_or(&default);
    with_deletion(
        vault_json(vault),
        [
            ("deletedDate", output::time_json(deleted.deleted_date)),
            (
                "scheduledPurgeDate",
                output::time_json(deleted.scheduled_purge_date),
            ),
        ],
    )
}

/// Deleted vaults as a table.
pub fn deleted_vaults_table(deleted: &[DeletedVault]) -> Table {
    Table {
        headers: vec![
            "Name",
            "Location",
            "DeletedDate",
            "ScheduledPurgeDate",
            "PurgeProtection",
        ],
        rows: deleted
            .iter()
            .map(|item| {
                let json = deleted_vault_json(item);
                vec![
                    cell(&json["name"]),
                    cell(&json["location"]),
                    cell(&json["deletedDate"]),
                    cell(&json["scheduledPurgeDate"]),
                    cell(&json["purgeProtection"]),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use coffer_client::proto::SecretAttributes;
    use serde_json::json;

    fn deleted_secret() -> DeletedSecret {
        DeletedSecret {
            secret: Some(Secret {
                vault: "kv1".to_owned(),
                name: "db".to_owned(),
                version: "abc".to_owned(),
                // A server never sends one here; if it did, it must not be shown.
                value: "s3cret".to_owned(),
                content_type: String::new(),
                attributes: Some(SecretAttributes {
                    enabled: true,
                    not_before: None,
                    expires: None,
                    created: 0,
                    updated: 0,
                    recovery_level: "Recoverable+Purgeable".to_owned(),
                    recoverable_days: 90,
                }),
                tags: Default::default(),
                id: "https://kv1.vault.local/secrets/db/abc".to_owned(),
            }),
            recovery_id: "https://kv1.vault.local/deletedsecrets/db".to_owned(),
            deleted_date: 60,
            scheduled_purge_date: 7_776_060,
        }
    }

    #[test]
    fn deleted_secret_json_shape() {
        assert_eq!(
            deleted_secret_json(&deleted_secret()),
            json!({
                "attributes": {
                    "created": "1970-01-01T00:00:00Z", "enabled": true,
                    "expires": null, "notBefore": null,
                    "recoverableDays": 90, "recoveryLevel": "Recoverable+Purgeable",
                    "updated": "1970-01-01T00:00:00Z"
                },
                "contentType": null,
                "deletedDate": "1970-01-01T00:01:00Z",
                "id": "https://kv1.vault.local/secrets/db/abc",
                "name": "db",
                "recoveryId": "https://kv1.vault.local/deletedsecrets/db",
                "scheduledPurgeDate": "1970-04-01T00:01:00Z",
                "tags": {}
            })
        );
    }

    #[test]
    fn deleted_secrets_table_never_shows_a_value() {
        let table = output::format_table(&deleted_secrets_table(&[deleted_secret()]));
        assert!(!table.contains("s3cret"), "{table}");
        assert!(
            table.contains("https://kv1.vault.local/deletedsecrets/db"),
            "{table}"
        );
        assert!(table.contains("Recoverable+Purgeable"), "{table}");
        assert!(table.contains("1970-04-01T00:01:00Z"), "{table}");
    }

    #[test]
    fn deleted_vault_json_adds_the_dates() {
        let deleted = DeletedVault {
            vault: Some(Vault {
                name: "kv1".to_owned(),
                location: "home".to_owned(),
                ..Default::default()
            }),
            deleted_date: 0,
            scheduled_purge_date: 60,
        };
        let json = deleted_vault_json(&deleted);
        assert_eq!(json["name"], "kv1");
        assert_eq!(json["deletedDate"], "1970-01-01T00:00:00Z");
        assert_eq!(json["scheduledPurgeDate"], "1970-01-01T00:01:00Z");
        let table = output::format_table(&deleted_vaults_table(&[deleted]));
        assert!(table.starts_with("Name"), "{table}");
        assert!(table.contains("kv1   home"), "{table}");
    }
}
