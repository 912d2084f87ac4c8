//! `coffer operator geography-key list|export|import`: the keys that seal secret and vault
//! backups. A backup restores in any cluster that holds its geography's key, so moving backups
//! between clusters means exporting the key from one and importing it into the other.
//!
//! The exported key is wrapped under a passphrase. The passphrase comes from a file only its
//! owner can read (`--passphrase-file`) or from `COFFER_GEOGRAPHY_KEY_PASSPHRASE`, never from
//! a flag value, which would show in process listings and shell history.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use coffer_client::Token;
use coffer_client::proto::GeographyKey;
use serde_json::{Value, json};

use super::backup::PrivateOutput;
use super::output::{self, Table, cell};
use super::{CliError, GlobalArgs};

/// Environment variable holding the passphrase, when no `--passphrase-file` is given.
pub const ENV_PASSPHRASE: &str = "COFFER_GEOGRAPHY_KEY_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub enum GeographyKeyCommand {
    /// List the geography backup keys this cluster holds.
    List,
    /// Export the active key of this cluster's geography, wrapped under a passphrase.
    Export {
        /// File to write the wrapped key to (created with mode 0600).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
        /// File holding the passphrase, one line of at least 16 characters, readable by its
        /// owner only [default: $COFFER_GEOGRAPHY_KEY_PASSPHRASE].
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
    },
    /// Import a key exported from a cluster of the same geography, so its backups open here.
    Import {
        /// File holding the wrapped key (made by `geography-key export`).
        #[arg(long = "in", value_name = "PATH")]
        input: PathBuf,
        /// Also seal this cluster's new backups with the imported key, so they open in the
        /// cluster it came from.
        #[arg(long)]
        activate: bool,
        /// File holding the passphrase the key was exported with, readable by its owner only
        /// [default: $COFFER_GEOGRAPHY_KEY_PASSPHRASE].
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
    },
}

pub async fn run(global: &GlobalArgs, command: GeographyKeyCommand) -> Result<(), CliError> {
    match command {
        GeographyKeyCommand::List => {
            let keys = global.connect().await?.list_geography_keys().await?;
            let json = Value::Array(keys.iter().map(key_json).collect());
            output::print(global, &json, || keys_table(&keys, None))
        }
        GeographyKeyCommand::Export {
            out,
            force,
            passphrase_file,
        } => {
            // Everything local is checked before connecting.
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let file = PrivateOutput::create(&out, force)?;
            let exported = global
                .connect()
                .await?
                .export_geography_key(&passphrase)
                .await?;
            let mut text = exported.wrapped.expose().as_bytes().to_vec();
            text.push(b'\n');
            file.write(&text)?;
            let path = out.display().to_string();
            let mut json = key_json(&exported.key);
            if let Value::Object(map) = &mut json {
                map.insert("file".to_owned(), Value::String(path.clone()));
            }
            output::print(global, &json, || {
                keys_table(std::slice::from_ref(&exported.key), Some(&path))
            })
        }
        GeographyKeyCommand::Import {
            input,
            activate,
            passphrase_file,
        } => {
            let wrapped = read_wrapped(&input)?;
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let key = global
                .connect()
                .await?
                .import_geography_key(&wrapped, &passphrase, activate)
                .await?;
            output::print(global, &key_json(&key), || {
                keys_table(std::slice::from_ref(&key), None)
            })
        }
    }
}

/// The passphrase from `--passphrase-file`, else from the environment.
fn read_passphrase(file: Option<&Path>) -> Result<Token, CliError> {
    let env = match std::env::var(ENV_PASSPHRASE) {
        Ok(value) => Some(Token::new(value)),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(CliError::bad_parameter(format!(
                "{ENV_PASSPHRASE} is not valid UTF-8"
            )));
        }
    };
    passphrase_from(file, env)
}

/// The first of: the file, if one is given (a flag names the caller's intent, so it wins over
/// the environment); the environment's value, if set and not empty.
fn passphrase_from(file: Option<&Path>, env: Option<Token>) -> Result<Token, CliError> {
    if let Some(path) = file {
        return passphrase_file(path);
    }
    match env {
        Some(passphrase) if !passphrase.expose().is_empty() => Ok(passphrase),
        _ => Err(CliError::Local {
            code: "MissingConfiguration",
            message: format!("give --passphrase-file or set {ENV_PASSPHRASE}"),
        }),
    }
}

/// Reads a passphrase file: one line, readable by its owner only. Errors never quote its
/// contents.
fn passphrase_file(path: &Path) -> Result<Token, CliError> {
    let bytes = coffer_crypto::read_private_file(path).map_err(|err| CliError::Local {
        code: "FileError",
        message: format!("--passphrase-file: {err}"),
    })?;
    let bad = |what: &str| {
        CliError::bad_parameter(format!("--passphrase-file {}: {what}", path.display()))
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("the file is not UTF-8 text"))?;
    // `echo passphrase > file` adds a newline that is not part of the passphrase.
    let passphrase = text.trim_end_matches(['\r', '\n']);
    if passphrase.is_empty() {
        return Err(bad("the file is empty"));
    }
    if passphrase.contains(['\r', '\n']) {
        return Err(bad("the file holds more than one line"));
    }
    Ok(Token::new(passphrase.to_owned()))
}

/// Reads the wrapped key that `export` wrote.
fn read_wrapped(path: &Path) -> Result<Token, CliError> {
    let text = std::fs::read_to_string(path).map_err(|err| CliError::file(path, err))?;
    // Held as a `Token` to keep it out of Debug output: the passphrase protects it, but only
    // as well as the passphrase resists guessing.
    let wrapped = Token::new(text.trim().to_owned());
    if wrapped.expose().is_empty() {
        return Err(CliError::bad_parameter(format!(
            "--in {}: the file is empty",
            path.display()
        )));
    }
    Ok(wrapped)
}

fn key_json(key: &GeographyKey) -> Value {
    json!({
        "id": key.id,
        "geography": key.geography,
        "added": output::time_json(key.added),
        "imported": key.imported,
        "active": key.active,
    })
}

/// Keys as a table; with a `file` column after an export.
fn keys_table(keys: &[GeographyKey], file: Option<&str>) -> Table {
    let mut headers = vec!["Id", "Geography", "Added", "Imported", "Active"];
    if file.is_some() {
        headers.push("File");
    }
    Table {
        headers,
        rows: keys
            .iter()
            .map(|key| {
                let mut row = vec![
                    key.id.clone(),
                    key.geography.clone(),
                    cell(&output::time_json(key.added)),
                    key.imported.to_string(),
                    key.active.to_string(),
                ];
                row.extend(file.map(str::to_owned));
                row
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const FROM_FILE: &str = "correct horse battery staple";
    const FROM_ENV: &str = "another long passphrase";

    fn private_file(dir: &Path, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join("passphrase");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn env(value: &str) -> Option<Token> {
        Some(Token::new(value.to_owned()))
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(dir.path(), &format!("{FROM_FILE}\n"), 0o600);
        let passphrase = passphrase_from(Some(&path), env(FROM_ENV)).unwrap();
        assert_eq!(passphrase.expose(), FROM_FILE);
    }

    #[test]
    fn the_environment_is_used_without_a_file() {
        let passphrase = passphrase_from(None, env(FROM_ENV)).unwrap();
        assert_eq!(passphrase.expose(), FROM_ENV);
    }

    #[test]
    fn no_source_or_an_empty_variable_is_missing_configuration() {
        for source in [None, env("")] {
            let err = passphrase_from(None, source).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("(MissingConfiguration) "), "{text}");
            assert!(text.contains(ENV_PASSPHRASE), "{text}");
        }
    }

    #[test]
    fn a_file_others_can_read_is_refused_even_with_the_variable_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = private_file(dir.path(), FROM_FILE, 0o644);
        let err = passphrase_from(Some(&path), env(FROM_ENV)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("(FileError) "), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
        assert!(!text.contains(FROM_FILE), "{text}");
    }

    #[test]
    fn bad_passphrase_files_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        for contents in ["", "\n", "first line\nsecond line secret-ish\n"] {
            let path = private_file(dir.path(), contents, 0o600);
            let err = passphrase_from(Some(&path), None).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("(BadParameter) --passphrase-file "),
                "{text}"
            );
            assert!(!text.contains("secret-ish"), "{text}");
        }
    }

    #[test]
    fn the_wrapped_key_is_read_without_surrounding_whitespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, "  {\"v\":1}\n").unwrap();
        assert_eq!(read_wrapped(&path).unwrap().expose(), "{\"v\":1}");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_wrapped(&path).is_err());
    }

    #[test]
    fn key_json_shape() {
        let key = GeographyKey {
            id: "gk-1".to_owned(),
            geography: "europe".to_owned(),
            added: 60,
            imported: true,
            active: false,
        };
        assert_eq!(
            key_json(&key),
            json!({
                "id": "gk-1", "geography": "europe", "added": "1970-01-01T00:01:00Z",
                "imported": true, "active": false
            })
        );
        let table = output::format_table(&keys_table(&[key], Some("out.key")));
        assert!(table.lines().next().unwrap().ends_with("File"), "{table}");
        assert!(table.contains("out.key"), "{table}");
    }
}
