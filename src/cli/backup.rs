//! Files the CLI writes backups and exported keys to: mode 0600 from the start, never left
//! half-written, and never replacing an existing file unless `--force`.
//!
//! The data goes to a temporary file beside the destination, which is moved into place only
//! once complete and synced. A backup that fails half-way (a vault backup streams for as long
//! as the vault is large) thus leaves nothing at the destination, rather than a truncated file
//! that looks like a backup; and an existing file is replaced in one rename, never truncated
//! first.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coffer_client::ClientError;
use tempfile::NamedTempFile;

use super::CliError;

/// The error of a streamed backup or restore: a failure of the local side names the file.
pub fn streaming_error(path: &Path, err: ClientError) -> CliError {
    match err {
        ClientError::Io {
            context, source, ..
        } => CliError::file(path, format!("{context}: {source}")),
        other => other.into(),
    }
}

/// A private file being written; [`PrivateOutput::commit`] moves it into place. Dropped
/// without a commit, it is removed.
pub struct PrivateOutput {
    path: PathBuf,
    temp: NamedTempFile,
    force: bool,
}

impl PrivateOutput {
    /// Starts writing `path`. Without `force`, refuses a path that exists (checked again,
    /// atomically, when committing). Call before connecting, so that a wrong path costs no
    /// backup.
    pub fn create(path: &Path, force: bool) -> Result<Self, CliError> {
        // symlink_metadata: a dangling link is still a name that would be replaced.
        match path.symlink_metadata() {
            Ok(meta) if meta.is_dir() => {
                return Err(CliError::file(path, "is a directory"));
            }
            Ok(_) if !force => {
                return Err(CliError::file(
                    path,
                    "already exists; use --force to replace it",
                ));
            }
            _ => {}
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".coffer-")
            .suffix(".partial")
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|err| {
                CliError::file(path, format!("cannot create a file beside it: {err}"))
            })?;
        Ok(Self {
            path: path.to_owned(),
            temp,
            force,
        })
    }

    /// The file to write to.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// A handle for async writes: the same open file.
    pub fn tokio_file(&self) -> Result<tokio::fs::File, CliError> {
        let file = self
            .file()
            .try_clone()
            .map_err(|err| CliError::file(&self.path, err))?;
        Ok(tokio::fs::File::from_std(file))
    }

    /// Writes all of `data`, then commits.
    pub fn write(self, data: &[u8]) -> Result<(), CliError> {
        let mut file = self.file();
        file.write_all(data)
            .map_err(|err| CliError::file(&self.path, err))?;
        self.commit()
    }

    /// Syncs the data and moves the file to its destination.
    pub fn commit(self) -> Result<(), CliError> {
        let Self { path, temp, force } = self;
        temp.as_file()
            .sync_all()
            .map_err(|err| CliError::file(&path, err))?;
        let persisted = if force {
            temp.persist(&path)
        } else {
            // Fails if the name was taken since `create`: never replaces a file silently.
            temp.persist_noclobber(&path)
        };
        persisted.map_err(|err| match err.error.kind() {
            std::io::ErrorKind::AlreadyExists => {
                CliError::file(&path, "already exists; use --force to replace it")
            }
            _ => CliError::file(&path, err.error),
        })?;
        // Make the rename itself durable. Best effort: the data is already synced, and some
        // file systems refuse to sync a directory.
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn write_private(path: &Path, data: &[u8], force: bool) -> Result<(), CliError> {
        PrivateOutput::create(path, force)?.write(data)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.backup");
        write_private(&path, b"blob", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"blob");
        assert_eq!(mode(&path), 0o600);
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_to_replace_a_file_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.backup");
        std::fs::write(&path, b"old").unwrap();
        let err = write_private(&path, b"new", false).unwrap_err();
        assert!(err.to_string().starts_with("(FileError) "), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn force_replaces_a_file_and_makes_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.backup");
        std::fs::write(&path, b"old, longer than new").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_file_created_meanwhile_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.backup");
        let out = PrivateOutput::create(&path, false).unwrap();
        out.file().write_all(b"new").unwrap();
        std::fs::write(&path, b"theirs").unwrap();
        let err = out.commit().unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.backup");
        let out = PrivateOutput::create(&path, false).unwrap();
        out.file().write_all(b"half a backup").unwrap();
        drop(out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_is_refused_even_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let err = PrivateOutput::create(dir.path(), true).err().unwrap();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
