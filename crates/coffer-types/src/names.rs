//! Validated names and version ids.
//!
//! Azure Key Vault names are case-insensitive: they are stored as given (for display) and
//! compared and keyed by their lowercase form ([`VaultName::key`], [`ObjectName::key`]).

use std::fmt;

use crate::error::Error;

/// A vault name: 3-24 of `[0-9a-zA-Z-]`, starting with a letter, ending with a letter or digit,
/// without consecutive hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultName(String);

impl VaultName {
    pub fn parse(name: &str) -> Result<Self, Error> {
        let bytes = name.as_bytes();
        let valid = (3..=24).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes[0].is_ascii_alphabetic()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && !name.contains("--");
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::bad_parameter(format!(
                "The vault name {} is invalid. A vault's name must be between 3-24 alphanumeric \
                 characters. The name must begin with a letter, end with a letter or digit, and \
                 not contain consecutive hyphens.",
                crate::error::quote_user_text(name)
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form names are compared and stored under.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for VaultName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of object a vault holds. Part of the sealing context, so a value sealed as one
/// kind can never be unsealed as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Secret,
    Key,
    Certificate,
}

impl ObjectKind {
    /// The kind as a message starts it: "Secret", "Key", "Certificate".
    pub fn display(self) -> &'static str {
        match self {
            ObjectKind::Secret => "Secret",
            ObjectKind::Key => "Key",
            ObjectKind::Certificate => "Certificate",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Key => "key",
            ObjectKind::Certificate => "certificate",
        }
    }
}

/// An object (secret, key, certificate) name: 1-127 of `[0-9a-zA-Z-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName(String);

impl ObjectName {
    pub fn parse(name: &str) -> Result<Self, Error> {
        let valid = (1..=127).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::invalid_name(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object version: 32 lowercase hex digits (upper case accepted on input and folded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    pub fn parse(version: &str) -> Result<Self, Error> {
        if version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(version.to_ascii_lowercase()))
        } else {
            Err(Error::bad_parameter(format!(
                "The version {} is invalid: a version is 32 hexadecimal digits.",
                crate::error::quote_user_text(version)
            )))
        }
    }

    /// A version from 16 random bytes (the caller supplies them: this crate does no I/O).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn vault_names_follow_azure_rules() {
        for ok in ["abc", "ecotracker-kv", "A1-b2", &"a".repeat(24)] {
            assert!(VaultName::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "ab",
            &"a".repeat(25),
            "1abc",
            "abc-",
            "a--b",
            "a_b",
            "../x",
            "café",
            "a b",
        ] {
            let err = VaultName::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadParameter, "{bad}");
        }
    }

    #[test]
    fn object_names_follow_azure_rules() {
        for ok in ["a", "-", "0start", "sqldb-password", &"x".repeat(127)] {
            assert!(ObjectName::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in ["", &"x".repeat(128), "a_b", "../x", "ünï", "a.b", "a/b"] {
            let err = ObjectName::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadParameter, "{bad}");
            assert!(err.message.contains("invalid name"));
        }
    }

    #[test]
    fn names_compare_case_insensitively_by_key() {
        let a = ObjectName::parse("DbPass").unwrap();
        let b = ObjectName::parse("dbpass").unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.as_str(), "DbPass");
    }

    #[test]
    fn versions_are_32_hex() {
        let v = Version::from_random([0xab; 16]);
        assert_eq!(v.as_str().len(), 32);
        assert_eq!(Version::parse(&v.as_str().to_uppercase()).unwrap(), v);
        assert!(Version::parse("xyz").is_err());
        assert!(Version::parse(&"g".repeat(32)).is_err());
    }
}
