//! Byte and string containers for secret material.

use std::fmt;

use zeroize::Zeroize;

// The wipes are non-generic functions of this crate on purpose: zeroize's generic code would
// otherwise be instantiated, unoptimised, in whichever crate drops the value, and wiping a
// 25 KB value that way costs more than decrypting it.
#[inline(never)]
fn wipe_bytes(bytes: &mut Vec<u8>) {
    bytes.zeroize();
}

#[inline(never)]
fn wipe_string(text: &mut String) {
    text.zeroize();
}

/// Secret bytes (a value, a key): zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe_bytes(&mut self.0);
    }
}

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
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
pub struct SecretString(String);

impl Drop for SecretString {
    fn drop(&mut self) {
        wipe_string(&mut self.0);
    }
}

impl SecretString {
    pub fn new(text: String) -> Self {
        Self(text)
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
    pub fn into_inner(mut self) -> String {
        std::mem::take(&mut self.0)
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
