//! The token `coffer login` saves, `$COFFER_CONFIG_DIR/token.json` (by default
//! `$HOME/.config/coffer/token.json`), and that later commands use when the environment gives no
//! credential.
//!
//! The file is created with mode 0600 through a temporary file and a rename, so a reader never
//! sees half a file and no other user ever can read it; a file that group or others may read is
//! refused, as SSH refuses such a key. A saved token is only sent to the nodes it was obtained
//! from: sending it to another address would hand a credential to whoever answers there.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::tls::split_addrs;
use crate::{ClientError, Token};

/// Environment variable naming the directory of `token.json`.
pub const ENV_CONFIG_DIR: &str = "COFFER_CONFIG_DIR";
const TOKEN_FILE: &str = "token.json";
/// A token this close to its expiry is not used: a command started with it could see it expire
/// half-way.
pub const EXPIRY_MARGIN_SECONDS: i64 = 60;
/// The file is a few hundred bytes; anything much larger is not a saved login.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A token saved by `coffer login`.
#[derive(Clone)]
pub struct SavedLogin {
    /// The node addresses the token was obtained from (comma-separated, as given).
    pub addr: String,
    pub tenant: String,
    pub client_id: String,
    pub access_token: Token,
    /// Unix seconds.
    pub expires_on: i64,
}

impl fmt::Debug for SavedLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedLogin")
            .field("addr", &self.addr)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("access_token", &self.access_token)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

fn file_error(path: &Path, what: impl fmt::Display) -> ClientError {
    ClientError::InvalidConfiguration {
        message: format!("{}: {what}", path.display()),
    }
}

impl SavedLogin {
    /// `$COFFER_CONFIG_DIR/token.json`, or `$HOME/.config/coffer/token.json`.
    pub fn default_path() -> Result<PathBuf, ClientError> {
        Self::path_from(|var| std::env::var_os(var).filter(|v| !v.is_empty()))
    }

    fn path_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, ClientError> {
        if let Some(dir) = env(ENV_CONFIG_DIR) {
            return Ok(PathBuf::from(dir).join(TOKEN_FILE));
        }
        match env("HOME") {
            Some(home) => Ok(PathBuf::from(home)
                .join(".config")
                .join("coffer")
                .join(TOKEN_FILE)),
            None => Err(ClientError::MissingEnv { var: "HOME" }),
        }
    }

    /// Reads the file at `path`; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, ClientError> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(file_error(path, err)),
        };
        check_private(path, &meta)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(file_error(path, "is too large to be a saved login"));
        }
        let text = Zeroizing::new(std::fs::read(path).map_err(|err| file_error(path, err))?);
        Self::from_json(&text)
            .map(Some)
            .ok_or_else(|| file_error(path, "is not a saved login; run `coffer login` again"))
    }

    fn from_json(bytes: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            addr: text("addr")?,
            tenant: text("tenant")?,
            client_id: text("client_id")?,
            access_token: Token::new(text("access_token")?),
            expires_on: value.get("expires_on").and_then(Value::as_i64)?,
        })
    }

    /// Writes the file at `path` (mode 0600, its directory created 0700 if missing), replacing
    /// any previous one atomically.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        create_private_dir(dir)?;
        let text = Zeroizing::new(
            json!({
                "addr": self.addr,
                "tenant": self.tenant,
                "client_id": self.client_id,
                "access_token": self.access_token.expose(),
                "expires_on": self.expires_on,
            })
            .to_string(),
        );
        let tmp = dir.join(format!(".{TOKEN_FILE}.{}.tmp", std::process::id()));
        // Left over by a run of the same pid that died before its rename.
        let _ = std::fs::remove_file(&tmp);
        let written =
            write_new_private(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(file_error(path, err));
        }
        Ok(())
    }

    /// Deletes the file at `path`; `false` if there was none.
    pub fn remove(path: &Path) -> Result<bool, ClientError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(file_error(path, err)),
        }
    }

    /// Whether the token is still good for a command started at `now` (Unix seconds).
    pub fn is_fresh(&self, now: i64) -> bool {
        self.expires_on.saturating_sub(EXPIRY_MARGIN_SECONDS) > now
    }

    /// Whether `addr` (a comma-separated node list) names a node the token was obtained from.
    pub fn serves(&self, addr: &str) -> bool {
        let saved = split_addrs(&self.addr);
        split_addrs(addr)
            .iter()
            .any(|a| saved.iter().any(|s| same_node(s, a)))
    }
}

/// Addresses compare without a trailing slash and with the scheme and host case-insensitive.
fn same_node(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), ClientError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(file_error(
            path,
            format!(
                "mode {:o} lets group or others read the saved token; delete the file and \
                 run `coffer login` again",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), ClientError> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|err| file_error(dir, err))
}

fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn login() -> SavedLogin {
        SavedLogin {
            addr: "https://127.0.0.1:8443,https://127.0.0.1:8444".into(),
            tenant: "contoso".into(),
            client_id: "app-1".into(),
            access_token: Token::new("eyJ-saved-t0ken".into()),
            expires_on: 2_000_000_000,
        }
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("token.json");
        login().save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        let loaded = SavedLogin::load(&path).unwrap().unwrap();
        assert_eq!(loaded.addr, login().addr);
        assert_eq!(loaded.tenant, "contoso");
        assert_eq!(loaded.client_id, "app-1");
        assert_eq!(loaded.access_token.expose(), "eyJ-saved-t0ken");
        assert_eq!(loaded.expires_on, 2_000_000_000);
        // A second save replaces the first; no temporary file is left behind.
        let mut newer = login();
        newer.expires_on = 2_000_000_600;
        newer.save(&path).unwrap();
        assert_eq!(
            SavedLogin::load(&path).unwrap().unwrap().expires_on,
            2_000_000_600
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("token.json")]);
        assert!(SavedLogin::remove(&path).unwrap());
        assert!(!SavedLogin::remove(&path).unwrap());
        assert!(SavedLogin::load(&path).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        login().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SavedLogin::load(&path).unwrap_err();
        assert!(err.to_string().contains("644"), "{err}");
        assert!(!err.to_string().contains("t0ken"), "{err}");
    }

    #[test]
    fn garbage_is_not_a_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        write_new_private(&path, br#"{"addr":"https://a:1","access_token":"t"}"#).unwrap();
        let err = SavedLogin::load(&path).unwrap_err();
        assert_eq!(err.code(), "InvalidConfiguration");
        assert!(err.to_string().contains("coffer login"), "{err}");
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let login = login();
        assert!(login.is_fresh(2_000_000_000 - EXPIRY_MARGIN_SECONDS - 1));
        assert!(!login.is_fresh(2_000_000_000 - EXPIRY_MARGIN_SECONDS));
        assert!(!login.is_fresh(2_000_000_001));
    }

    #[test]
    fn a_token_serves_only_its_own_nodes() {
        let login = login();
        assert!(login.serves("https://127.0.0.1:8443"));
        assert!(login.serves("https://127.0.0.1:8444/"));
        assert!(login.serves("https://other:1, HTTPS://127.0.0.1:8444"));
        assert!(!login.serves("https://127.0.0.1:9999"));
        assert!(!login.serves("https://evil.example:8443"));
        assert!(!login.serves(""));
    }

    #[test]
    fn default_path_prefers_the_config_dir() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            SavedLogin::path_from(with(&[(ENV_CONFIG_DIR, "/cfg"), ("HOME", "/home/u")])).unwrap(),
            PathBuf::from("/cfg/token.json")
        );
        assert_eq!(
            SavedLogin::path_from(with(&[("HOME", "/home/u")])).unwrap(),
            PathBuf::from("/home/u/.config/coffer/token.json")
        );
        assert!(SavedLogin::path_from(with(&[])).is_err());
    }

    #[test]
    fn debug_never_prints_the_token() {
        let shown = format!("{:?} {:#?}", login(), login());
        assert!(!shown.contains("t0ken"), "{shown}");
        assert!(shown.contains("contoso"), "{shown}");
    }
}
