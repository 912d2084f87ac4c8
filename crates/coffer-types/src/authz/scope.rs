//! Where a role assignment applies: the whole cluster, one vault, or one object in a vault.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, quote_user_text};
use crate::names::{ObjectKind, ObjectName, VaultName};

/// A scope: `/`, `/vaults/{vault}` or `/vaults/{vault}/{secrets|keys|certificates}/{name}`.
///
/// Names are case-insensitive, as Azure's are, so a scope holds only their case-folded keys:
/// two spellings of one scope are equal, hash alike, and display in one canonical lowercase
/// form. The fields are private so that no unvalidated name can get in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Level);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Level {
    Cluster,
    Vault(String),
    Object(String, ObjectKind, String),
}

impl Scope {
    /// `/`: every vault and everything else in the cluster.
    pub fn cluster() -> Self {
        Self(Level::Cluster)
    }

    /// `/vaults/{vault}`; the name must be a valid vault name.
    pub fn vault(vault: &str) -> Result<Self, Error> {
        Ok(Self(Level::Vault(VaultName::parse(vault)?.key())))
    }

    /// `/vaults/{vault}/{kind}s/{name}`; both names must be valid.
    pub fn object(vault: &str, kind: ObjectKind, name: &str) -> Result<Self, Error> {
        Ok(Self(Level::Object(
            VaultName::parse(vault)?.key(),
            kind,
            ObjectName::parse(name)?.key(),
        )))
    }

    /// Parses the textual form; the literal segments are case-insensitive too.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::bad_parameter(format!(
                "The scope {} is invalid. A scope is '/', '/vaults/{{vault}}' or \
                 '/vaults/{{vault}}/{{secrets|keys|certificates}}/{{name}}'.",
                quote_user_text(text)
            ))
        };
        if text == "/" {
            return Ok(Self::cluster());
        }
        let rest = text.strip_prefix('/').ok_or_else(invalid)?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() != 2 && segments.len() != 4 {
            return Err(invalid());
        }
        if !segments[0].eq_ignore_ascii_case("vaults") || segments.iter().any(|s| s.is_empty()) {
            return Err(invalid());
        }
        if segments.len() == 2 {
            return Self::vault(segments[1]);
        }
        let kind = kind_of_segment(segments[2]).ok_or_else(invalid)?;
        Self::object(segments[1], kind, segments[3])
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Level::Cluster)
    }

    /// The (case-folded) vault this scope is in, or `None` for the cluster scope.
    pub fn vault_name(&self) -> Option<&str> {
        match &self.0 {
            Level::Cluster => None,
            Level::Vault(v) | Level::Object(v, _, _) => Some(v),
        }
    }

    /// The object this scope names, if it names one (its name case-folded).
    pub fn object_name(&self) -> Option<(ObjectKind, &str)> {
        match &self.0 {
            Level::Object(_, kind, name) => Some((*kind, name)),
            _ => None,
        }
    }

    /// Whether an assignment at `self` applies at `other`: a scope contains itself and every
    /// scope below it.
    pub fn contains(&self, other: &Scope) -> bool {
        match (&self.0, &other.0) {
            (Level::Cluster, _) => true,
            (Level::Vault(v), Level::Vault(w)) | (Level::Vault(v), Level::Object(w, _, _)) => {
                v == w
            }
            (Level::Object(..), Level::Object(..)) => self == other,
            _ => false,
        }
    }

    /// The scope directly above this one, `None` for the cluster.
    pub fn parent(&self) -> Option<Scope> {
        match &self.0 {
            Level::Cluster => None,
            Level::Vault(_) => Some(Self::cluster()),
            Level::Object(v, _, _) => Some(Self(Level::Vault(v.clone()))),
        }
    }
}

fn kind_of_segment(segment: &str) -> Option<ObjectKind> {
    [ObjectKind::Secret, ObjectKind::Key, ObjectKind::Certificate]
        .into_iter()
        .find(|kind| segment.eq_ignore_ascii_case(collection(*kind)))
}

/// The path segment of a kind's collection, as in Azure's URLs.
fn collection(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Secret => "secrets",
        ObjectKind::Key => "keys",
        ObjectKind::Certificate => "certificates",
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Level::Cluster => f.write_str("/"),
            Level::Vault(v) => write!(f, "/vaults/{v}"),
            Level::Object(v, kind, name) => write!(f, "/vaults/{v}/{}/{name}", collection(*kind)),
        }
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn scopes_parse_fold_and_display_canonically() {
        assert_eq!(Scope::parse("/").unwrap(), Scope::cluster());
        let v = Scope::parse("/vaults/UPPER").unwrap();
        assert_eq!(v, Scope::vault("upper").unwrap());
        assert_eq!(v.to_string(), "/vaults/upper");
        assert_eq!(v.vault_name(), Some("upper"));
        let o = Scope::parse("/VAULTS/Kv1/Secrets/Db-Pass").unwrap();
        assert_eq!(o.to_string(), "/vaults/kv1/secrets/db-pass");
        assert_eq!(o.object_name(), Some((ObjectKind::Secret, "db-pass")));
        assert_eq!(
            Scope::parse("/vaults/kv1/keys/k1").unwrap(),
            Scope::object("KV1", ObjectKind::Key, "K1").unwrap()
        );
        assert_eq!(
            Scope::parse("/vaults/kv1/certificates/c")
                .unwrap()
                .to_string(),
            "/vaults/kv1/certificates/c"
        );
        assert_eq!(Scope::cluster().vault_name(), None);
        assert!(Scope::cluster().is_cluster());
    }

    #[test]
    fn scopes_contain_themselves_and_what_is_below() {
        let cluster = Scope::cluster();
        let kv = Scope::parse("/vaults/kv1").unwrap();
        let kv2 = Scope::parse("/vaults/kv12").unwrap();
        let a = Scope::parse("/vaults/kv1/secrets/a").unwrap();
        let a_key = Scope::parse("/vaults/kv1/keys/a").unwrap();
        assert!(cluster.contains(&cluster) && cluster.contains(&kv) && cluster.contains(&a));
        assert!(kv.contains(&kv) && kv.contains(&a) && kv.contains(&a_key));
        assert!(!kv2.contains(&a));
        assert!(!kv.contains(&cluster) && !kv.contains(&kv2));
        assert!(a.contains(&Scope::parse("/vaults/KV1/secrets/A").unwrap()));
        assert!(!a.contains(&kv) && !a.contains(&a_key));
        assert_eq!(a.parent(), Some(kv.clone()));
        assert_eq!(kv.parent(), Some(cluster.clone()));
        assert_eq!(cluster.parent(), None);
    }

    #[test]
    fn junk_scopes_are_refused() {
        for bad in [
            "",
            "//",
            "vaults/kv",
            "/vaults",
            "/vaults/",
            "/vaults/kv1/",
            "/vaults/kv",
            "/vaults/kv1/secrets",
            "/vaults/kv1/secrets/",
            "/vaults/kv1/blobs/a",
            "/vaults/kv1/secrets/a/b",
            "/vaults/kv1/secrets/a/",
            "/vaults/k_v",
            "/vaults/kv1/secrets/a.b",
            "/subscriptions/x",
            "/vaults//secrets/a",
            " /",
        ] {
            let err = Scope::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadParameter, "{bad:?}");
        }
        let err = Scope::parse("/vaults/kv1/blobs/a").unwrap_err();
        assert!(
            err.message
                .contains("The scope /vaults/kv1/blobs/a is invalid")
        );
    }

    #[test]
    fn scopes_serialize_as_strings() {
        let s = Scope::parse("/vaults/KV1/keys/K").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"/vaults/kv1/keys/k\"");
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Scope>("\"/nope\"").is_err());
        assert_eq!("/".parse::<Scope>().unwrap(), Scope::cluster());
    }
}
