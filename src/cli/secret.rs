//! `coffer secret set|show|list|list-versions|set-attributes`, and the lifecycle:
//! `delete|list-deleted|show-deleted|recover|purge|backup|restore`.

use std::path::PathBuf;

use base64::Engine as _;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use coffer_client::proto::{
    DeletedSecret, GetSecretRequest, Secret, SetSecretRequest, Tags, UpdateSecretRequest,
};
use serde_json::Value;
use zeroize::Zeroizing;

use super::args::{parse_tags, parse_time};
use super::backup::PrivateOutput;
use super::deleted_view::{deleted_secret_json, deleted_secrets_table};
use super::output;
use super::secret_view::{list_table, secret_json, show_table};
use super::{CliError, GlobalArgs};

/// `coffer secret ...`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: SecretCommand,
}

/// `--encoding` of `secret set --file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Encoding {
    /// Store the file's text as is; it must be valid UTF-8.
    #[value(name = "utf-8")]
    Utf8,
    /// Store the base64 of the file's bytes (for binary files).
    Base64,
}

impl Encoding {
    /// The `file-encoding` tag value `az` writes, which `az secret download` reads back.
    fn tag(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Base64 => "base64",
        }
    }
}

/// Flags shared by `set` and `set-attributes`.
#[derive(Debug, Args)]
struct AttributeArgs {
    /// Content type (e.g. a MIME type).
    #[arg(long)]
    content_type: Option<String>,
    /// Whether the secret can be read.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    enabled: Option<bool>,
    /// Not usable before this RFC 3339 time (e.g. 2030-01-31T12:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    not_before: Option<String>,
    /// Not usable after this RFC 3339 time.
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
    /// Tags, space-separated key=value pairs (on set-attributes: replace all; none clears).
    #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
    tags: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Create a secret, or a new version of it.
    #[command(group(ArgGroup::new("source").required(true).args(["value", "file"])))]
    Set {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
        /// The secret value (visible to `ps` while the command runs: prefer --file).
        #[arg(long)]
        value: Option<super::args::SecretArg>,
        /// Read the value from this file.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// How to store the file's contents [default: utf-8].
        #[arg(long, value_enum, conflicts_with = "value")]
        encoding: Option<Encoding>,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
    /// Show a secret with its value.
    Show {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
        /// Version [default: latest].
        #[arg(long, short = 'v')]
        version: Option<String>,
    },
    /// List the secrets of a vault (never their values).
    List {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
    },
    /// List the versions of a secret (never their values).
    ListVersions {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Update a secret version's attributes, content type or tags.
    SetAttributes {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
        /// Version [default: latest].
        #[arg(long, short = 'v')]
        version: Option<String>,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
    /// Delete a secret: every version moves to the deleted state, recoverable (`secret
    /// recover`) until its scheduled purge date.
    Delete {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// List the deleted secrets of a vault (never their values).
    ListDeleted {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Results asked for per page [server default]; every page is listed.
        #[arg(long, visible_alias = "maxresults", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        max_results: Option<u32>,
    },
    /// Show a deleted secret (never its value).
    ShowDeleted {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Recover a deleted secret with all its versions.
    Recover {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Delete a deleted secret for good (refused under purge protection).
    Purge {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Save a backup of a secret (every version, sealed with the geography backup key).
    Backup {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Secret name.
        #[arg(long, short = 'n')]
        name: String,
        /// File to write (created with mode 0600).
        #[arg(long, short = 'f', visible_alias = "file", value_name = "PATH")]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore a secret from a backup file (made by `secret backup`).
    Restore {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Backup file to read.
        #[arg(long = "in", short = 'f', visible_alias = "file", value_name = "PATH")]
        input: PathBuf,
    },
}

pub async fn run(args: SecretArgs) -> Result<(), CliError> {
    let SecretArgs { global, command } = args;
    match command {
        SecretCommand::Set {
            vault,
            name,
            value,
            file,
            encoding,
            attributes,
        } => {
            // Validate every flag (and read the file) before connecting.
            let mut tags = parse_tags(attributes.tags.as_deref().unwrap_or_default())?;
            let not_before = parse_time("--not-before", attributes.not_before.as_deref())?;
            let expires = parse_time("--expires", attributes.expires.as_deref())?;
            let value = match (value, file) {
                (Some(value), _) => value.0,
                (None, Some(path)) => {
                    let encoding = encoding.unwrap_or(Encoding::Utf8);
                    if tags.len() >= coffer_types::limits::MAX_TAGS
                        && !tags.contains_key("file-encoding")
                    {
                        return Err(CliError::bad_parameter(format!(
                            "--file adds the tag file-encoding, so at most {} other tags fit.",
                            coffer_types::limits::MAX_TAGS - 1
                        )));
                    }
                    // Recorded as az does, so that a download can undo the encoding.
                    tags.insert("file-encoding".to_owned(), encoding.tag().to_owned());
                    read_value_file(&path, encoding)?
                }
                // clap's required "source" group guarantees one of the two.
                (None, None) => {
                    return Err(CliError::bad_parameter("--value or --file is required"));
                }
            };
            let request = SetSecretRequest {
                vault,
                name,
                value,
                content_type: attributes.content_type.unwrap_or_default(),
                enabled: attributes.enabled,
                not_before,
                expires,
                tags,
            };
            let secret = global.connect().await?.set_secret(request).await?;
            // The value is not echoed in the table: it was just typed, and terminals get logged.
            output::print(&global, &secret_json(&secret, true), || {
                show_table(&secret, false)
            })
        }
        SecretCommand::Show {
            vault,
            name,
            version,
        } => {
            let request = GetSecretRequest {
                vault,
                name,
                version: version.unwrap_or_default(),
            };
            let secret = global.connect().await?.get_secret(request).await?;
            output::print(&global, &secret_json(&secret, true), || {
                show_table(&secret, true)
            })
        }
        SecretCommand::List { vault } => {
            let secrets = global.connect().await?.list_secrets(&vault).await?;
            print_list(&global, &secrets, false)
        }
        SecretCommand::ListVersions { vault, name } => {
            let secrets = global
                .connect()
                .await?
                .list_secret_versions(&vault, &name)
                .await?;
            print_list(&global, &secrets, true)
        }
        SecretCommand::SetAttributes {
            vault,
            name,
            version,
            attributes,
        } => {
            let tags = attributes
                .tags
                .map(|pairs| parse_tags(&pairs).map(|tags| Tags { tags }))
                .transpose()?;
            let request = UpdateSecretRequest {
                vault,
                name,
                version: version.unwrap_or_default(),
                enabled: attributes.enabled,
                not_before: parse_time("--not-before", attributes.not_before.as_deref())?,
                expires: parse_time("--expires", attributes.expires.as_deref())?,
                content_type: attributes.content_type,
                tags,
            };
            let secret = global.connect().await?.update_secret(request).await?;
            print_properties(&global, &secret)
        }
        SecretCommand::Delete { vault, name } => {
            let deleted = global.connect().await?.delete_secret(&vault, &name).await?;
            print_deleted(&global, &deleted)
        }
        SecretCommand::ListDeleted { vault, max_results } => {
            let deleted = global
                .connect()
                .await?
                .list_deleted_secrets(&vault, max_results)
                .await?;
            let json = Value::Array(deleted.iter().map(deleted_secret_json).collect());
            output::print(&global, &json, || deleted_secrets_table(&deleted))
        }
        SecretCommand::ShowDeleted { vault, name } => {
            let client = global.connect().await?;
            print_deleted(&global, &client.get_deleted_secret(&vault, &name).await?)
        }
        SecretCommand::Recover { vault, name } => {
            let client = global.connect().await?;
            let secret = client.recover_deleted_secret(&vault, &name).await?;
            print_properties(&global, &secret)
        }
        SecretCommand::Purge { vault, name } => {
            // Like `az keyvault secret purge`, success prints nothing.
            let client = global.connect().await?;
            client.purge_deleted_secret(&vault, &name).await?;
            Ok(())
        }
        SecretCommand::Backup {
            vault,
            name,
            out,
            force,
        } => {
            // Before connecting: an existing file is refused without asking for the backup.
            let file = PrivateOutput::create(&out, force)?;
            let blob = global.connect().await?.backup_secret(&vault, &name).await?;
            // Like `az keyvault secret backup`, success prints nothing.
            file.write(&blob)
        }
        SecretCommand::Restore { vault, input } => {
            let blob = std::fs::read(&input).map_err(|err| CliError::file(&input, err))?;
            let secret = global.connect().await?.restore_secret(&vault, blob).await?;
            print_properties(&global, &secret)
        }
    }
}

/// A secret's properties, never its value.
fn print_properties(global: &GlobalArgs, secret: &Secret) -> Result<(), CliError> {
    output::print(global, &secret_json(secret, false), || {
        show_table(secret, false)
    })
}

fn print_deleted(global: &GlobalArgs, deleted: &DeletedSecret) -> Result<(), CliError> {
    output::print(global, &deleted_secret_json(deleted), || {
        deleted_secrets_table(std::slice::from_ref(deleted))
    })
}

/// Reads `--file` and encodes it as the stored value.
fn read_value_file(path: &PathBuf, encoding: Encoding) -> Result<String, CliError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|err| CliError::Local {
        code: "BadParameter",
        message: format!("--file: cannot read {}: {err}", path.display()),
    })?);
    encode_value(&bytes, encoding)
        .map_err(|message| CliError::bad_parameter(format!("--file {}: {message}", path.display())))
}

fn encode_value(bytes: &[u8], encoding: Encoding) -> Result<String, &'static str> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "the file is not valid UTF-8; use --encoding base64 for binary files"),
        Encoding::Base64 => Ok(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

fn print_list(global: &GlobalArgs, secrets: &[Secret], versions: bool) -> Result<(), CliError> {
    let json = Value::Array(secrets.iter().map(|s| secret_json(s, false)).collect());
    output::print(global, &json, || list_table(secrets, versions))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn file_encodings() {
        assert_eq!(encode_value(b"hello", Encoding::Utf8).unwrap(), "hello");
        assert!(encode_value(&[0xff, 0xfe], Encoding::Utf8).is_err());
        assert_eq!(
            encode_value(&[0xff, 0xfe], Encoding::Base64).unwrap(),
            "//4="
        );
    }
}
