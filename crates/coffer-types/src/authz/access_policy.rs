//! Vault access policies: the older of Azure Key Vault's two permission models, in which a
//! vault lists, per principal, the operations it may perform on each kind of object.

use serde::{Deserialize, Serialize};

use crate::error::{Error, quote_user_text};

/// A vault holds at most this many access policies, as Azure's do.
pub const MAX_ACCESS_POLICIES: usize = 1024;

/// The permission that grants every operation of its kind.
pub const ALL: &str = "all";

/// The kinds of object an access policy grants permissions on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionKind {
    Keys,
    Secrets,
    Certificates,
    Storage,
}

const KEY_PERMISSIONS: &[&str] = &[
    "get",
    "list",
    "update",
    "create",
    "import",
    "delete",
    "recover",
    "backup",
    "restore",
    "decrypt",
    "encrypt",
    "unwrapKey",
    "wrapKey",
    "verify",
    "sign",
    "purge",
    "release",
    "rotate",
    "getrotationpolicy",
    "setrotationpolicy",
];

const SECRET_PERMISSIONS: &[&str] = &[
    "get", "list", "set", "delete", "recover", "backup", "restore", "purge",
];

const CERTIFICATE_PERMISSIONS: &[&str] = &[
    "get",
    "list",
    "delete",
    "create",
    "import",
    "update",
    "managecontacts",
    "getissuers",
    "listissuers",
    "setissuers",
    "deleteissuers",
    "manageissuers",
    "recover",
    "purge",
    "backup",
    "restore",
];

const STORAGE_PERMISSIONS: &[&str] = &[
    "get",
    "list",
    "update",
    "delete",
    "recover",
    "backup",
    "restore",
    "set",
    "regeneratekey",
    "getsas",
    "listsas",
    "deletesas",
    "setsas",
    "purge",
];

/// The certificate permissions `manageissuers` stands for: Azure's REST reference names them
/// as `certificates/manageissuers/getissuers` and so on.
const ISSUER_PERMISSIONS: &[&str] = &["getissuers", "listissuers", "setissuers", "deleteissuers"];

impl PermissionKind {
    /// The name Azure's JSON and messages use: `keys`, `secrets`, `certificates`, `storage`.
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionKind::Keys => "keys",
            PermissionKind::Secrets => "secrets",
            PermissionKind::Certificates => "certificates",
            PermissionKind::Storage => "storage",
        }
    }

    /// The permission names of this kind in Azure's spelling, `all` excepted.
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            PermissionKind::Keys => KEY_PERMISSIONS,
            PermissionKind::Secrets => SECRET_PERMISSIONS,
            PermissionKind::Certificates => CERTIFICATE_PERMISSIONS,
            PermissionKind::Storage => STORAGE_PERMISSIONS,
        }
    }

    /// The canonical spelling of a permission of this kind (`all` included), matched without
    /// regard to ASCII case; `None` if there is no such permission.
    pub fn canonical(self, permission: &str) -> Option<&'static str> {
        if permission.eq_ignore_ascii_case(ALL) {
            return Some(ALL);
        }
        self.permissions()
            .iter()
            .copied()
            .find(|p| p.eq_ignore_ascii_case(permission))
    }
}

/// The permissions of one access policy, per kind of object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyPermissions {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub storage: Vec<String>,
}

impl AccessPolicyPermissions {
    pub fn of(&self, kind: PermissionKind) -> &[String] {
        match kind {
            PermissionKind::Keys => &self.keys,
            PermissionKind::Secrets => &self.secrets,
            PermissionKind::Certificates => &self.certificates,
            PermissionKind::Storage => &self.storage,
        }
    }

    fn of_mut(&mut self, kind: PermissionKind) -> &mut Vec<String> {
        match kind {
            PermissionKind::Keys => &mut self.keys,
            PermissionKind::Secrets => &mut self.secrets,
            PermissionKind::Certificates => &mut self.certificates,
            PermissionKind::Storage => &mut self.storage,
        }
    }
}

/// One entry of a vault's `accessPolicies`, in Azure's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyEntry {
    pub tenant_id: String,
    pub object_id: String,
    /// Azure's compound identity: the policy applies to `object_id` only when it acts through
    /// this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    pub permissions: AccessPolicyPermissions,
}

const KINDS: [PermissionKind; 4] = [
    PermissionKind::Keys,
    PermissionKind::Secrets,
    PermissionKind::Certificates,
    PermissionKind::Storage,
];

impl AccessPolicyEntry {
    /// Checks the entry and normalises it in place: every permission must be a known name of
    /// its kind or `all` (in any ASCII case), and is rewritten in Azure's canonical spelling,
    /// duplicates removed in order of first appearance. Ids must be 1 to 128 printable ASCII
    /// characters without whitespace (GUIDs fit).
    pub fn validate(&mut self) -> Result<(), Error> {
        check_id("tenantId", &self.tenant_id)?;
        check_id("objectId", &self.object_id)?;
        if let Some(app) = &self.application_id {
            check_id("applicationId", app)?;
        }
        for kind in KINDS {
            let list = self.permissions.of_mut(kind);
            let mut normalised: Vec<String> = Vec::with_capacity(list.len().min(32));
            for given in list.iter() {
                let canonical = kind.canonical(given).ok_or_else(|| {
                    Error::bad_parameter(format!(
                        "The access policy permission {} is not a valid {} permission. Valid \
                         permissions are: {}, {ALL}.",
                        quote_user_text(given),
                        kind.as_str(),
                        kind.permissions().join(", ")
                    ))
                })?;
                if !normalised.iter().any(|p| p == canonical) {
                    normalised.push(canonical.to_owned());
                }
            }
            *list = normalised;
        }
        Ok(())
    }

    /// Whether the entry grants `permission` of `kind` (ASCII case ignored): `all` grants every
    /// permission of its kind, and `manageissuers` the four certificate-issuer permissions.
    pub fn grants(&self, kind: PermissionKind, permission: &str) -> bool {
        let issuer = kind == PermissionKind::Certificates
            && ISSUER_PERMISSIONS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(permission));
        self.permissions.of(kind).iter().any(|held| {
            held.eq_ignore_ascii_case(ALL)
                || held.eq_ignore_ascii_case(permission)
                || (issuer && held.eq_ignore_ascii_case("manageissuers"))
        })
    }

    /// Whether the entry is the one for this caller: the object id matches, and the application
    /// id too when the entry names one (ids compared without regard to ASCII case, as GUIDs).
    pub fn applies_to(&self, object_id: &str, application_id: Option<&str>) -> bool {
        self.object_id.eq_ignore_ascii_case(object_id)
            && match (&self.application_id, application_id) {
                (None, _) => true,
                (Some(required), Some(given)) => required.eq_ignore_ascii_case(given),
                (Some(_), None) => false,
            }
    }
}

fn check_id(field: &str, id: &str) -> Result<(), Error> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::bad_parameter(format!(
            "The access policy's {field} {} is invalid.",
            quote_user_text(id)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn entry(keys: &[&str], secrets: &[&str], certificates: &[&str]) -> AccessPolicyEntry {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        AccessPolicyEntry {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            object_id: "2a2a9e1b-2a9f-4b8d-9c4a-1a2b3c4d5e6f".into(),
            application_id: None,
            permissions: AccessPolicyPermissions {
                keys: owned(keys),
                secrets: owned(secrets),
                certificates: owned(certificates),
                storage: Vec::new(),
            },
        }
    }

    #[test]
    fn validation_normalises_case_and_duplicates() {
        let mut e = entry(
            &["WRAPKEY", "get", "Get", "GetRotationPolicy"],
            &["GET", "List", "ALL"],
            &["ManageIssuers"],
        );
        e.validate().unwrap();
        assert_eq!(e.permissions.keys, ["wrapKey", "get", "getrotationpolicy"]);
        assert_eq!(e.permissions.secrets, ["get", "list", "all"]);
        assert_eq!(e.permissions.certificates, ["manageissuers"]);
    }

    #[test]
    fn unknown_permissions_and_bad_ids_are_refused() {
        let mut e = entry(&[], &["get", "wrapKey"], &[]);
        let err = e.validate().unwrap_err();
        assert_eq!(err.code, ErrorCode::BadParameter);
        assert!(err.message.starts_with(
            "The access policy permission wrapKey is not a valid secrets permission."
        ));
        let mut e = entry(&["getsecret"], &[], &[]);
        assert!(e.validate().unwrap_err().message.contains("getsecret"));
        let mut e = entry(&[], &["get"], &[]);
        e.object_id = "a b".into();
        assert!(e.validate().unwrap_err().message.contains("objectId"));
        let mut e = entry(&[], &["get"], &[]);
        e.tenant_id = String::new();
        assert!(e.validate().is_err());
    }

    #[test]
    fn grants_by_name_all_and_manageissuers() {
        let e = entry(&["wrapKey"], &["Get"], &["manageissuers"]);
        assert!(e.grants(PermissionKind::Secrets, "get"));
        assert!(e.grants(PermissionKind::Secrets, "GET"));
        assert!(!e.grants(PermissionKind::Secrets, "list"));
        assert!(!e.grants(PermissionKind::Keys, "get"));
        assert!(e.grants(PermissionKind::Keys, "wrapkey"));
        assert!(!e.grants(PermissionKind::Keys, "unwrapKey"));
        assert!(e.grants(PermissionKind::Certificates, "setissuers"));
        assert!(!e.grants(PermissionKind::Certificates, "get"));
        let all = entry(&[], &["all"], &[]);
        assert!(all.grants(PermissionKind::Secrets, "purge"));
        assert!(!all.grants(PermissionKind::Keys, "get"));
    }

    #[test]
    fn applies_to_honours_the_compound_identity() {
        let mut e = entry(&[], &["get"], &[]);
        assert!(e.applies_to("2A2A9E1B-2A9F-4B8D-9C4A-1A2B3C4D5E6F", None));
        assert!(!e.applies_to("someone-else", None));
        e.application_id = Some("app".into());
        assert!(!e.applies_to(&e.object_id.clone(), None));
        assert!(e.applies_to(&e.object_id.clone(), Some("APP")));
        assert!(!e.applies_to(&e.object_id.clone(), Some("other")));
    }

    #[test]
    fn entries_use_azure_json_names() {
        let e = entry(&[], &["get"], &[]);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["tenantId"], "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert_eq!(json["permissions"]["secrets"][0], "get");
        assert!(json.get("applicationId").is_none());
        let back: AccessPolicyEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}
