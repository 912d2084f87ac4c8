use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use coffer_types::Version;

use crate::CryptoError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// A fresh object version id (128 random bits, 32 hex digits).
pub fn new_version() -> Result<Version, CryptoError> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(Version::from_random(bytes))
}
