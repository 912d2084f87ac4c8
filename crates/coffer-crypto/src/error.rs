use std::path::PathBuf;

/// Failures of cryptographic operations and key files. Messages never include key bytes or
/// plaintext.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext is malformed, was altered, or was sealed for another context or key.
    #[error("sealed data could not be opened: it is damaged or belongs elsewhere")]
    Unseal,
    #[error("sealing failed")]
    Seal,
    #[error("the system random number generator failed")]
    Random,
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("certificate generation failed: {0}")]
    Pki(String),
    /// A backup blob or an exported geography key is malformed or was refused; the message
    /// says why and never holds key bytes or plaintext.
    #[error("backup: {0}")]
    Backup(String),
    /// A key or key operation request that cannot be honoured (bad JWK, wrong algorithm for the key,
    /// wrong digest length, bad ciphertext). The message is for the caller and never holds key bytes
    /// or plaintext.
    #[error("{0}")]
    Key(String),
}
