//! How `coffer key` commands show keys, deleted keys, rotation policies and operation
//! results: the `az`-shaped JSON form and tables; and the one JSON form read back, a rotation
//! policy in Azure's REST shape.
//!
//! A key is shown with its public parts only (`n`, `e` or `crv`, `x`, `y`, base64url as in a
//! JSON Web Key). The private part names are not printed at all, not even as `null`: a server
//! never sends them, and if one did, they would still not reach the terminal.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coffer_client::proto::{
    DeletedKey, JsonWebKey, Key, KeyAttributes, KeyOperationResult, KeyRotationPolicy,
    LifetimeAction,
};
use coffer_types::keys::IsoDuration;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use super::CliError;
use super::output::{self, Table, cell};

/// Bytes as base64url without padding, the JWK encoding; `null` when empty.
fn b64url(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        Value::String(URL_SAFE_NO_PAD.encode(bytes))
    }
}

fn non_empty(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

fn attributes_json(attributes: Option<&KeyAttributes>) -> Value {
    let default = KeyAttributes::default();
    let a = attributes.unwrap_or(&default);
    json!({
        "created": output::time_json(a.created),
        "enabled": a.enabled,
        "expires": output::opt_time_json(a.expires),
        "exportable": a.exportable,
        "notBefore": output::opt_time_json(a.not_before),
        "recoverableDays": a.recoverable_days,
        "recoveryLevel": a.recovery_level,
        "updated": output::time_json(a.updated),
    })
}

/// The public parts of a JSON Web Key. `kid` falls back to the key's own id.
fn jwk_json(jwk: &JsonWebKey, kid: &str) -> Value {
    let kid = if jwk.kid.is_empty() { kid } else { &jwk.kid };
    json!({
        "crv": non_empty(&jwk.crv),
        "e": b64url(&jwk.e),
        "keyOps": jwk.key_ops,
        "kid": kid,
        "kty": non_empty(&jwk.kty),
        "n": b64url(&jwk.n),
        "x": b64url(&jwk.x),
        "y": b64url(&jwk.y),
    })
}

/// A key as `az keyvault key show` prints it.
pub fn key_json(key: &Key) -> Value {
    let default = JsonWebKey::default();
    json!({
        "attributes": attributes_json(key.attributes.as_ref()),
        "key": jwk_json(key.key.as_ref().unwrap_or(&default), &key.kid),
        "managed": null,
        "tags": key.tags,
    })
}

/// A key as `az keyvault key list` prints each item: its id and properties, no key.
pub fn key_item_json(key: &Key) -> Value {
    json!({
        "attributes": attributes_json(key.attributes.as_ref()),
        "kid": key.kid,
        "managed": null,
        "name": key.name,
        "tags": key.tags,
    })
}

/// Adds the deletion fields of `deleted` to an object's JSON form.
fn with_deletion(mut json: Value, deleted: &DeletedKey) -> Value {
    if let Value::Object(map) = &mut json {
        map.insert(
            "recoveryId".to_owned(),
            Value::String(deleted.recovery_id.clone()),
        );
        map.insert(
            "deletedDate".to_owned(),
            output::time_json(deleted.deleted_date),
        );
        map.insert(
            "scheduledPurgeDate".to_owned(),
            output::time_json(deleted.scheduled_purge_date),
        );
    }
    json
}

/// A deleted key as `az keyvault key show-deleted` prints it.
pub fn deleted_key_json(deleted: &DeletedKey) -> Value {
    let default = Key::default();
    let key = deleted.key.as_ref().unwrap_or(&default);
    let mut json = with_deletion(key_json(key), deleted);
    // Name it: the recovery id is the only other place it appears.
    if let Value::Object(map) = &mut json {
        map.insert("name".to_owned(), Value::String(key.name.clone()));
    }
    json
}

/// A deleted key as `az keyvault key list-deleted` prints each item.
pub fn deleted_key_item_json(deleted: &DeletedKey) -> Value {
    let default = Key::default();
    with_deletion(
        key_item_json(deleted.key.as_ref().unwrap_or(&default)),
        deleted,
    )
}

/// One key as a table.
pub fn show_table(key: &Key) -> Table {
    let json = key_json(key);
    let attr = |k: &str| cell(&json["attributes"][k]);
    let ops = key
        .key
        .as_ref()
        .map(|jwk| jwk.key_ops.join(" "))
        .unwrap_or_default();
    Table {
        headers: vec![
            "Name",
            "Version",
            "Kty",
            "KeyOps",
            "Enabled",
            "NotBefore",
            "Expires",
        ],
        rows: vec![vec![
            key.name.clone(),
            key.version.clone(),
            cell(&json["key"]["kty"]),
            ops,
            attr("enabled"),
            attr("notBefore"),
            attr("expires"),
        ]],
    }
}

/// Keys (or the versions of one key) as a table.
pub fn list_table(keys: &[Key], versions: bool) -> Table {
    let first = if versions { "Version" } else { "Name" };
    Table {
        headers: vec![first, "Enabled", "NotBefore", "Expires", "Updated"],
        rows: keys
            .iter()
            .map(|key| {
                let json = attributes_json(key.attributes.as_ref());
                let id = if versions { &key.version } else { &key.name };
                vec![
                    id.clone(),
                    cell(&json["enabled"]),
                    cell(&json["notBefore"]),
                    cell(&json["expires"]),
                    cell(&json["updated"]),
                ]
            })
            .collect(),
    }
}

/// Deleted keys as a table: name, recovery id, dates and recovery level.
pub fn deleted_table(deleted: &[DeletedKey]) -> Table {
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
                let json = deleted_key_item_json(item);
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

/// A rotation policy in Azure's REST shape, as `rotation-policy set` reads it, plus its id
/// and times.
pub fn policy_json(policy: &KeyRotationPolicy) -> Value {
    let actions: Vec<Value> = policy
        .lifetime_actions
        .iter()
        .map(|action| {
            let mut trigger = Map::new();
            if !action.time_after_create.is_empty() {
                trigger.insert(
                    "timeAfterCreate".to_owned(),
                    Value::String(action.time_after_create.clone()),
                );
            }
            if !action.time_before_expiry.is_empty() {
                trigger.insert(
                    "timeBeforeExpiry".to_owned(),
                    Value::String(action.time_before_expiry.clone()),
                );
            }
            json!({"action": {"type": action.action}, "trigger": trigger})
        })
        .collect();
    json!({
        "attributes": {
            "created": output::time_json(policy.created),
            "expiryTime": non_empty(&policy.expiry_time),
            "updated": output::time_json(policy.updated),
        },
        "id": policy.id,
        "lifetimeActions": actions,
    })
}

/// A rotation policy as a table: one row per lifetime action, or one row without an action
/// for a policy that has none.
pub fn policy_table(policy: &KeyRotationPolicy) -> Table {
    let updated = cell(&output::time_json(policy.updated));
    let row = |action: &str, after: &str, before: &str| {
        vec![
            action.to_owned(),
            after.to_owned(),
            before.to_owned(),
            policy.expiry_time.clone(),
            updated.clone(),
        ]
    };
    let mut rows: Vec<Vec<String>> = policy
        .lifetime_actions
        .iter()
        .map(|a| row(&a.action, &a.time_after_create, &a.time_before_expiry))
        .collect();
    if rows.is_empty() {
        rows.push(row("", "", ""));
    }
    Table {
        headers: vec![
            "Action",
            "TimeAfterCreate",
            "TimeBeforeExpiry",
            "ExpiryTime",
            "Updated",
        ],
        rows,
    }
}

// The input shape of `rotation-policy set --value`. `id`, `created` and `updated` are
// accepted and ignored so that the output of `rotation-policy show` can be edited and fed
// back; any other unknown field is refused, since a misspelt trigger would otherwise be
// silently dropped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyInput {
    #[serde(default)]
    lifetime_actions: Vec<ActionInput>,
    #[serde(default)]
    attributes: Option<PolicyAttributesInput>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyAttributesInput {
    #[serde(default)]
    expiry_time: Option<String>,
    #[serde(default, rename = "created")]
    _created: Option<IgnoredAny>,
    #[serde(default, rename = "updated")]
    _updated: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionInput {
    trigger: TriggerInput,
    action: ActionTypeInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TriggerInput {
    #[serde(default)]
    time_after_create: Option<String>,
    #[serde(default)]
    time_before_expiry: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionTypeInput {
    #[serde(rename = "type")]
    kind: String,
}

/// A rotation policy read from `--value`: its lifetime actions and expiry time (empty for
/// none).
#[derive(Debug, PartialEq, Eq)]
pub struct PolicyValue {
    pub lifetime_actions: Vec<LifetimeAction>,
    pub expiry_time: String,
}

/// Parses a rotation policy in Azure's JSON shape:
/// `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],
/// "attributes":{"expiryTime":"P2Y"}}`. Durations and triggers are checked here, so that a
/// mistake is named by its place in the document; the rules between actions (at most one of
/// each type, minimum intervals) are the server's.
pub fn parse_policy(text: &str) -> Result<PolicyValue, CliError> {
    let bad = |message: String| CliError::bad_parameter(format!("--value: {message}"));
    let input: PolicyInput = serde_json::from_str(text).map_err(|err| {
        bad(format!(
            "not a rotation policy in Azure's JSON shape: {err}"
        ))
    })?;
    let duration = |place: &str, text: Option<String>| -> Result<String, CliError> {
        let text = text.map(|t| t.trim().to_owned()).unwrap_or_default();
        if !text.is_empty() {
            IsoDuration::parse(&text).map_err(|err| bad(format!("{place}: {}", err.message)))?;
        }
        Ok(text)
    };
    let mut lifetime_actions = Vec::with_capacity(input.lifetime_actions.len());
    for (i, action) in input.lifetime_actions.into_iter().enumerate() {
        let place = format!("lifetimeActions[{i}]");
        // Azure's SDKs read the action type without regard to case.
        let kind = match action.action.kind.to_ascii_lowercase().as_str() {
            "rotate" => "Rotate".to_owned(),
            "notify" => "Notify".to_owned(),
            _ => {
                return Err(bad(format!(
                    "{place}.action.type must be Rotate or Notify, not {:?}",
                    action.action.kind
                )));
            }
        };
        let after = duration(
            &format!("{place}.trigger.timeAfterCreate"),
            action.trigger.time_after_create,
        )?;
        let before = duration(
            &format!("{place}.trigger.timeBeforeExpiry"),
            action.trigger.time_before_expiry,
        )?;
        if after.is_empty() == before.is_empty() {
            return Err(bad(format!(
                "{place}.trigger needs exactly one of timeAfterCreate and timeBeforeExpiry"
            )));
        }
        lifetime_actions.push(LifetimeAction {
            action: kind,
            time_after_create: after,
            time_before_expiry: before,
        });
    }
    let expiry_time = duration(
        "attributes.expiryTime",
        input.attributes.and_then(|a| a.expiry_time),
    )?;
    Ok(PolicyValue {
        lifetime_actions,
        expiry_time,
    })
}

/// The result of encrypt or wrapKey: the ciphertext or wrapped key and, for AES-GCM, the iv,
/// tag and aad to hand back to decrypt (base64; empty fields left out).
pub fn encrypted_json(algorithm: &str, result: &KeyOperationResult) -> Value {
    let mut map = Map::new();
    map.insert("algorithm".to_owned(), Value::String(algorithm.to_owned()));
    map.insert("kid".to_owned(), Value::String(result.kid.clone()));
    map.insert(
        "result".to_owned(),
        Value::String(STANDARD.encode(&result.value)),
    );
    for (name, bytes) in [
        ("iv", &result.iv),
        ("tag", &result.tag),
        ("aad", &result.aad),
    ] {
        if !bytes.is_empty() {
            map.insert(name.to_owned(), Value::String(STANDARD.encode(bytes)));
        }
    }
    Value::Object(map)
}

/// The result of decrypt or unwrapKey; `result` is already encoded as asked.
pub fn decrypted_json(algorithm: &str, kid: &str, result: &str) -> Value {
    json!({"algorithm": algorithm, "kid": kid, "result": result})
}

/// The result of sign.
pub fn signature_json(algorithm: &str, result: &KeyOperationResult) -> Value {
    json!({
        "algorithm": algorithm,
        "kid": result.kid,
        "signature": STANDARD.encode(&result.value),
    })
}

/// A JSON object's fields as a one-row table, in the order given.
pub fn fields_table(json: &Value, columns: &[(&'static str, &str)]) -> Table {
    let present: Vec<_> = columns
        .iter()
        .filter(|(_, key)| json.get(key).is_some())
        .collect();
    Table {
        headers: present.iter().map(|(header, _)| *header).collect(),
        rows: vec![present.iter().map(|(_, key)| cell(&json[*key])).collect()],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn rsa_key() -> Key {
        Key {
            vault: "kv1".to_owned(),
            name: "signing".to_owned(),
            version: "v1".to_owned(),
            key: Some(JsonWebKey {
                kid: "https://kv1.vault.local/keys/signing/v1".to_owned(),
                kty: "RSA".to_owned(),
                key_ops: vec!["sign".to_owned(), "verify".to_owned()],
                n: vec![0xfb, 0xff, 0x01],
                e: vec![1, 0, 1],
                // A server never sends a private part; if one did, it must not be shown.
                d: vec![0x42; 4],
                ..Default::default()
            }),
            attributes: Some(KeyAttributes {
                enabled: true,
                not_before: None,
                expires: Some(60),
                created: 0,
                updated: 0,
                recovery_level: "Recoverable+Purgeable".to_owned(),
                recoverable_days: 90,
                exportable: false,
            }),
            tags: [("env".to_owned(), "prod".to_owned())].into(),
            kid: "https://kv1.vault.local/keys/signing/v1".to_owned(),
        }
    }

    #[test]
    fn key_json_shape_has_public_parts_only() {
        assert_eq!(
            key_json(&rsa_key()),
            json!({
                "attributes": {
                    "created": "1970-01-01T00:00:00Z", "enabled": true,
                    "expires": "1970-01-01T00:01:00Z", "exportable": false,
                    "notBefore": null, "recoverableDays": 90,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "updated": "1970-01-01T00:00:00Z"
                },
                "key": {
                    "crv": null, "e": "AQAB", "keyOps": ["sign", "verify"],
                    "kid": "https://kv1.vault.local/keys/signing/v1", "kty": "RSA",
                    "n": "-_8B", "x": null, "y": null
                },
                "managed": null,
                "tags": {"env": "prod"}
            })
        );
        let table = output::format_table(&show_table(&rsa_key()));
        assert!(table.contains("sign verify"), "{table}");
    }

    #[test]
    fn list_items_and_deleted_keys() {
        let item = key_item_json(&rsa_key());
        assert_eq!(item["kid"], "https://kv1.vault.local/keys/signing/v1");
        assert_eq!(item["name"], "signing");
        assert!(item.get("key").is_none());
        let deleted = DeletedKey {
            key: Some(rsa_key()),
            recovery_id: "https://kv1.vault.local/deletedkeys/signing".to_owned(),
            deleted_date: 60,
            scheduled_purge_date: 7_776_060,
        };
        let json = deleted_key_json(&deleted);
        assert_eq!(json["name"], "signing");
        assert_eq!(json["key"]["kty"], "RSA");
        assert_eq!(json["scheduledPurgeDate"], "1970-04-01T00:01:00Z");
        let item = deleted_key_item_json(&deleted);
        assert_eq!(
            item["recoveryId"],
            "https://kv1.vault.local/deletedkeys/signing"
        );
        let table = output::format_table(&deleted_table(&[deleted]));
        assert!(table.contains("Recoverable+Purgeable"), "{table}");
        let table = output::format_table(&list_table(&[rsa_key()], true));
        assert!(table.starts_with("Version"), "{table}");
        assert!(table.contains("v1"), "{table}");
    }

    #[test]
    fn rotation_policies_parse_from_azure_json() {
        let policy = parse_policy(
            r#"{"lifetimeActions":[
                  {"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}},
                  {"trigger":{"timeBeforeExpiry":"P30D","timeAfterCreate":null},
                   "action":{"type":"notify"}}],
                "attributes":{"expiryTime":"P2Y"}}"#,
        )
        .unwrap();
        assert_eq!(
            policy,
            PolicyValue {
                lifetime_actions: vec![
                    LifetimeAction {
                        action: "Rotate".to_owned(),
                        time_after_create: "P90D".to_owned(),
                        time_before_expiry: String::new(),
                    },
                    LifetimeAction {
                        action: "Notify".to_owned(),
                        time_after_create: String::new(),
                        time_before_expiry: "P30D".to_owned(),
                    },
                ],
                expiry_time: "P2Y".to_owned(),
            }
        );
        let empty = parse_policy("{}").unwrap();
        assert!(empty.lifetime_actions.is_empty() && empty.expiry_time.is_empty());
    }

    #[test]
    fn shown_policies_parse_back() {
        let policy = KeyRotationPolicy {
            id: "https://kv1.vault.local/keys/k/rotationpolicy".to_owned(),
            lifetime_actions: vec![LifetimeAction {
                action: "Rotate".to_owned(),
                time_after_create: "P90D".to_owned(),
                time_before_expiry: String::new(),
            }],
            expiry_time: String::new(),
            created: 60,
            updated: 120,
        };
        let json = policy_json(&policy);
        assert_eq!(
            json["lifetimeActions"],
            json!([{"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}}])
        );
        assert_eq!(json["attributes"]["expiryTime"], Value::Null);
        let back = parse_policy(&json.to_string()).unwrap();
        assert_eq!(back.lifetime_actions, policy.lifetime_actions);
        assert_eq!(back.expiry_time, "");
        let table = output::format_table(&policy_table(&policy));
        assert!(table.contains("Rotate  P90D"), "{table}");
        let none = KeyRotationPolicy {
            lifetime_actions: Vec::new(),
            ..policy
        };
        let table = output::format_table(&policy_table(&none));
        assert!(table.ends_with("1970-01-01T00:02:00Z"), "{table}");
    }

    #[test]
    fn bad_rotation_policies_are_named_precisely() {
        let cases = [
            ("not json", "not a rotation policy"),
            (r#"{"lifetimeAction":[]}"#, "lifetimeAction"),
            (
                r#"{"lifetimeActions":[{"trigger":{},"action":{"type":"Rotate"}}]}"#,
                "lifetimeActions[0].trigger needs exactly one",
            ),
            (
                r#"{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P1D",
                    "timeBeforeExpiry":"P2D"},"action":{"type":"Rotate"}}]}"#,
                "exactly one",
            ),
            (
                r#"{"lifetimeActions":[{"trigger":{"timeAfterCreate":"90 days"},
                    "action":{"type":"Rotate"}}]}"#,
                "lifetimeActions[0].trigger.timeAfterCreate: Invalid duration",
            ),
            (
                r#"{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},
                    "action":{"type":"Delete"}}]}"#,
                "must be Rotate or Notify",
            ),
            (
                r#"{"attributes":{"expiryTime":"PT1H"}}"#,
                "attributes.expiryTime",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_policy(text).unwrap_err().to_string();
            assert!(err.starts_with("(BadParameter) --value: "), "{err}");
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn operation_results_are_base64_and_leave_out_empty_fields() {
        let result = KeyOperationResult {
            kid: "kid1".to_owned(),
            value: vec![0xff, 0xfe],
            iv: vec![1; 12],
            tag: vec![2; 16],
            aad: Vec::new(),
        };
        let json = encrypted_json("A256GCM", &result);
        assert_eq!(json["result"], "//4=");
        assert_eq!(json["iv"], "AQEBAQEBAQEBAQEB");
        assert!(json.get("aad").is_none());
        let table = fields_table(
            &json,
            &[("Kid", "kid"), ("Result", "result"), ("Aad", "aad")],
        );
        assert_eq!(table.headers, vec!["Kid", "Result"]);
        assert_eq!(signature_json("RS256", &result)["signature"], "//4=");
        assert_eq!(decrypted_json("RSA-OAEP", "k", "hi")["result"], "hi");
    }
}
