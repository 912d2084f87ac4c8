//! How tenants, principals and credentials print: camelCase JSON named after the flags
//! (`clientId`, `objectId`), and tables with one row per object.

use coffer_client::AddedCredential;
use coffer_client::proto::{CredentialInfo, Principal, Tenant};
use serde_json::{Value, json};

use super::output::{self, Table, cell};

pub fn tenant_json(tenant: &Tenant) -> Value {
    json!({
        "id": tenant.id,
        "displayName": tenant.display_name,
        "created": output::time_json(tenant.created),
    })
}

pub fn tenant_table(tenants: &[Tenant]) -> Table {
    Table {
        headers: vec!["Id", "DisplayName", "Created"],
        rows: tenants
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.display_name.clone(),
                    cell(&output::time_json(t.created)),
                ]
            })
            .collect(),
    }
}

fn credential_json(credential: &CredentialInfo) -> Value {
    json!({
        "type": credential.kind,
        "id": credential.id,
        "description": credential.description,
        "expires": output::opt_time_json(credential.expires),
    })
}

/// An empty client id (users and groups have none) prints as `null`.
fn optional(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

pub fn principal_json(principal: &Principal) -> Value {
    json!({
        "objectId": principal.object_id,
        "tenant": principal.tenant,
        "type": principal.kind,
        "displayName": principal.display_name,
        "clientId": optional(&principal.client_id),
        "credentials": principal.credentials.iter().map(credential_json).collect::<Vec<_>>(),
        "memberOf": principal.member_of,
        "created": output::time_json(principal.created),
        "updated": output::time_json(principal.updated),
    })
}

pub fn principal_table(principals: &[Principal]) -> Table {
    Table {
        headers: vec![
            "ObjectId",
            "Type",
            "DisplayName",
            "ClientId",
            "Tenant",
            "Credentials",
        ],
        rows: principals
            .iter()
            .map(|p| {
                vec![
                    p.object_id.clone(),
                    p.kind.clone(),
                    p.display_name.clone(),
                    p.client_id.clone(),
                    p.tenant.clone(),
                    p.credentials.len().to_string(),
                ]
            })
            .collect(),
    }
}

/// The credentials of one principal, for `credential remove` and `principal show` tables.
pub fn credential_table(principal: &Principal) -> Table {
    Table {
        headers: vec!["Type", "Id", "Description", "Expires"],
        rows: principal
            .credentials
            .iter()
            .map(|c| {
                vec![
                    c.kind.clone(),
                    c.id.clone(),
                    c.description.clone(),
                    cell(&output::opt_time_json(c.expires)),
                ]
            })
            .collect(),
    }
}

/// What `credential add` prints. A generated secret is shown here, once, as `password` (the
/// name `az ad sp credential reset` uses); the server keeps only its hash.
pub fn added_json(added: &AddedCredential, kind: &str) -> Value {
    let principal = &added.principal;
    let mut json = json!({
        "objectId": principal.object_id,
        "clientId": optional(&principal.client_id),
        "tenant": principal.tenant,
        "credentialId": added.credential_id,
        "type": kind,
    });
    if let (Some(secret), Some(map)) = (&added.secret, json.as_object_mut()) {
        map.insert("password".into(), Value::String(secret.expose().to_owned()));
    }
    json
}

pub fn added_table(json: &Value) -> Table {
    let mut headers = vec!["ClientId", "CredentialId", "Type"];
    let mut row = vec![
        cell(&json["clientId"]),
        cell(&json["credentialId"]),
        cell(&json["type"]),
    ];
    if let Some(password) = json.get("password") {
        headers.push("Password");
        row.push(cell(password));
    }
    Table {
        headers,
        rows: vec![row],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use coffer_client::Token;

    fn principal() -> Principal {
        Principal {
            object_id: "oid-1".into(),
            tenant: "contoso".into(),
            kind: "ServicePrincipal".into(),
            display_name: "app one".into(),
            client_id: "cid-1".into(),
            credentials: vec![CredentialInfo {
                kind: "secret".into(),
                id: "cred-1".into(),
                description: "Zq8…".into(),
                expires: Some(1_896_091_200),
            }],
            member_of: vec!["group-1".into()],
            created: 0,
            updated: 60,
        }
    }

    #[test]
    fn principal_json_shape() {
        assert_eq!(
            principal_json(&principal()),
            json!({
                "objectId": "oid-1", "tenant": "contoso", "type": "ServicePrincipal",
                "displayName": "app one", "clientId": "cid-1",
                "credentials": [{"type": "secret", "id": "cred-1", "description": "Zq8…",
                                 "expires": "2030-01-31T12:00:00Z"}],
                "memberOf": ["group-1"],
                "created": "1970-01-01T00:00:00Z", "updated": "1970-01-01T00:01:00Z"
            })
        );
        let user = Principal {
            client_id: String::new(),
            ..principal()
        };
        assert_eq!(principal_json(&user)["clientId"], Value::Null);
    }

    #[test]
    fn a_generated_secret_is_shown_once_as_password() {
        let added = AddedCredential {
            principal: principal(),
            credential_id: "cred-2".into(),
            secret: Some(Token::new("generated-value".into())),
        };
        let json = added_json(&added, "secret");
        assert_eq!(json["password"], "generated-value");
        assert_eq!(json["credentialId"], "cred-2");
        let table = output::format_table(&added_table(&json));
        assert!(table.contains("Password") && table.contains("generated-value"));

        let certificate = AddedCredential {
            secret: None,
            ..added
        };
        let json = added_json(&certificate, "certificate");
        assert!(json.get("password").is_none());
        assert!(!output::format_table(&added_table(&json)).contains("Password"));
    }
}
