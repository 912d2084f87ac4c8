//! Pieces of Azure's JSON shared by secrets and keys: attributes, tags, base64url and the
//! deleted-object fields.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_types::records::DeletedObjectRecord;
use coffer_types::{Error, Tags, VaultRecord};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `attributes` of a request. Read-only fields (`created`, `recoveryLevel`, …) that clients
/// echo back are ignored, as Azure ignores them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AttributesIn {
    pub enabled: Option<bool>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
}

/// `tags` of a request: an object of strings (null or absent: none given).
pub(crate) type TagsIn = Option<BTreeMap<String, String>>;

pub(crate) fn tags_in(tags: TagsIn) -> Option<Vec<(String, String)>> {
    tags.map(|t| t.into_iter().collect())
}

pub(crate) fn tags_out(tags: &Tags) -> Value {
    Value::Object(
        tags.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Binary data as Azure sends it: base64url without padding. Padding and the standard
/// alphabet are accepted too; the message names the property, never the data.
pub(crate) fn decode(property: &str, text: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(coffer_crypto::jwt::base64url_unpadded(text).as_bytes())
        .map_err(|_| Error::bad_parameter(format!("The property '{property}' is not base64url.")))
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The attributes every object version answers with.
pub(crate) fn attributes_out(
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
    created: i64,
    updated: i64,
    vault: &VaultRecord,
) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("enabled".into(), enabled.into());
    if let Some(nbf) = not_before {
        attributes.insert("nbf".into(), nbf.into());
    }
    if let Some(exp) = expires {
        attributes.insert("exp".into(), exp.into());
    }
    attributes.insert("created".into(), created.into());
    attributes.insert("updated".into(), updated.into());
    attributes.insert("recoveryLevel".into(), vault.recovery_level().into());
    attributes.insert("recoverableDays".into(), vault.recoverable_days().into());
    attributes
}

/// Adds a deleted object's `recoveryId`, `deletedDate` and `scheduledPurgeDate` to `body`.
pub(crate) fn add_deleted(
    body: &mut Value,
    origin: &str,
    collection: &str,
    deleted: &DeletedObjectRecord,
) {
    body["recoveryId"] = json!(format!("{origin}/{collection}/{}", deleted.name));
    body["deletedDate"] = json!(deleted.deleted_date);
    body["scheduledPurgeDate"] = json!(deleted.scheduled_purge_date);
}

/// `{"value": …}` bodies: backups and restores.
#[derive(Debug, Deserialize)]
pub(crate) struct ValueIn {
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_read_in_every_form_and_errors_quote_nothing() {
        assert_eq!(decode("value", "MTIzNA").unwrap(), b"1234");
        assert_eq!(decode("value", "MTIzNA==").unwrap(), b"1234");
        assert_eq!(
            decode("value", "-_8").unwrap(),
            decode("value", "+/8").unwrap()
        );
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        let e = decode("value", "not*base64").unwrap_err();
        assert_eq!(e.code, coffer_types::ErrorCode::BadParameter);
        assert!(!e.message.contains("not*base64"), "{}", e.message);
    }
}
