//! Files that hold key material: created 0600 and refused when group or world can read them,
//! as SSH and Garage do, so a misconfigured deployment fails loudly instead of leaking.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::CryptoError;

fn key_file_error(path: &Path, reason: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a private file, refusing it when its mode grants any access to group or others.
pub fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let meta = fs::metadata(path).map_err(|e| key_file_error(path, e.to_string()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(key_file_error(
            path,
            format!(
                "mode {:o} lets group or others read it; run chmod 600",
                mode & 0o777
            ),
        ));
    }
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| key_file_error(path, e.to_string()))
}

/// Creates a new file with mode 0600 and writes `contents`, failing if it already exists.
/// The data is synced before returning: a key that is lost after use would make everything
/// sealed with it unreadable.
pub fn create_private_file(path: &Path, contents: &[u8]) -> Result<(), CryptoError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| key_file_error(path, e.to_string()))?;
    file.write_all(contents)
        .map_err(|e| key_file_error(path, e.to_string()))?;
    file.sync_all()
        .map_err(|e| key_file_error(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_files_are_private_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        create_private_file(&path, b"abc").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(&*read_private_file(&path).unwrap(), b"abc");
        assert!(
            create_private_file(&path, b"again").is_err(),
            "must not overwrite"
        );
    }

    #[test]
    fn world_readable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, b"abc").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
