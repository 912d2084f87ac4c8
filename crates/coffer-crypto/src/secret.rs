//! Byte and string containers for secret material.

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes (a value, a key): zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A secret string (a secret value, a token): zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the text out, for handing to a wire type. The caller owns its zeroization from
    /// here on.
    pub fn into_inner(self) -> String {
        let mut inner = self.0;
        std::mem::take(&mut *inner)
    }
}

impl From<String> for SecretString {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_secret() {
        let b = SecretBytes::new(b"hunter2-bytes".to_vec());
        let s = SecretString::new("hunter2-string".into());
        assert!(!format!("{b:?}").contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(format!("{b:?}").contains("13 bytes"));
        assert_eq!(s.clone().into_inner(), "hunter2-string");
    }
}
