//! `coffer key create|import|show|list|list-versions|set-attributes|rotate|rotation-policy`,
//! the operations `encrypt|decrypt|wrap|unwrap|sign|verify`, and the lifecycle
//! `delete|list-deleted|show-deleted|recover|purge|backup|restore`, shaped after
//! `az keyvault key`.
//!
//! Byte values on the command line are base64 (standard or URL-safe alphabet, padding
//! optional); results are printed in standard base64, as `az` does. Names (key types, curves,
//! operations, algorithms) are checked against Azure's lists before connecting. Plaintexts and
//! imported private parts are held in zeroizing buffers here, and never appear in errors.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand, ValueEnum};
use coffer_client::proto::{
    CreateKeyRequest, DeletedKey, ImportKeyRequest, Key, KeyOperationRequest, KeyOpsList,
    SignRequest, Tags, UpdateKeyRequest, UpdateKeyRotationPolicyRequest, VerifyRequest,
};
use coffer_types::keys::{
    CurveName, EncryptionAlgorithm, KeyOperation, KeyType, SignatureAlgorithm,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::args::{SecretArg, parse_tags, parse_time};
use super::backup::PrivateOutput;
use super::key_input::{
    decode_base64, decode_secret_base64, encode_result, policy_text, read_jwk_file,
};
use super::key_view::{self as view, key_item_json, key_json};
use super::output;
use super::{CliError, GlobalArgs};

/// `coffer key ...`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: KeyCommand,
}

/// `--vault` and `--name`.
#[derive(Debug, Args)]
struct KeyName {
    /// Vault name.
    #[arg(long, visible_alias = "vault-name")]
    vault: String,
    /// Key name.
    #[arg(long, short = 'n')]
    name: String,
}

/// `--vault`, `--name` and `--version`.
#[derive(Debug, Args)]
struct KeyVersion {
    #[command(flatten)]
    key: KeyName,
    /// Version [default: latest].
    #[arg(long, short = 'v')]
    version: Option<String>,
}

/// Attributes and tags of `create` and `import`.
#[derive(Debug, Args)]
struct NewKeyArgs {
    /// Permitted operations, space-separated [default: all the key type supports].
    #[arg(long, num_args = 1.., value_parser = names(KeyOperation::ALL, KeyOperation::as_str))]
    ops: Vec<String>,
    /// Whether the key can be used.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    enabled: Option<bool>,
    /// Not usable before this RFC 3339 time (e.g. 2030-01-31T12:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    not_before: Option<String>,
    /// Not usable after this RFC 3339 time.
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
    /// Tags, space-separated key=value pairs.
    #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

/// How a plaintext is given (encrypt) or printed (decrypt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(super) enum DataType {
    /// Base64 bytes.
    #[default]
    Base64,
    /// UTF-8 text.
    Plaintext,
}

/// `--algorithm` and `--value` of encrypt, decrypt, wrap and unwrap.
#[derive(Debug, Args)]
struct CryptArgs {
    #[command(flatten)]
    key: KeyVersion,
    /// Algorithm.
    #[arg(long, short = 'a', value_parser = names(EncryptionAlgorithm::ALL, EncryptionAlgorithm::as_str))]
    algorithm: String,
    /// The value, base64 (encrypt also takes text with --data-type plaintext).
    #[arg(long)]
    value: SecretArg,
    /// Additional authenticated data for AES-GCM, base64.
    #[arg(long, value_name = "BASE64")]
    aad: Option<String>,
}

/// `--iv` and `--tag` that an AES-GCM decryption takes back.
#[derive(Debug, Args)]
struct GcmArgs {
    /// The iv that encrypt returned, base64.
    #[arg(long, value_name = "BASE64")]
    iv: Option<String>,
    /// The authentication tag that encrypt returned, base64.
    #[arg(long, value_name = "BASE64")]
    tag: Option<String>,
}

/// `--algorithm` and `--digest` of sign and verify.
#[derive(Debug, Args)]
struct SignArgs {
    #[command(flatten)]
    key: KeyVersion,
    /// Algorithm.
    #[arg(long, short = 'a', value_parser = names(SignatureAlgorithm::ALL, SignatureAlgorithm::as_str))]
    algorithm: String,
    /// The digest to sign or verify, base64 (computed by the caller: 32 bytes for *256, 48
    /// for *384, 64 for *512).
    #[arg(long, value_name = "BASE64")]
    digest: String,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key, or a new version of it, generated in the vault.
    Create {
        #[command(flatten)]
        key: KeyName,
        /// Key type.
        #[arg(long, default_value = "RSA", value_parser = names(KeyType::ALL, KeyType::as_str))]
        kty: String,
        /// Key size in bits: RSA 2048 (default), 3072 or 4096; oct 128, 192 or 256 (default).
        #[arg(long)]
        size: Option<u32>,
        /// RSA public exponent [default: 65537].
        #[arg(long)]
        exponent: Option<u32>,
        /// Elliptic curve [default: P-256].
        #[arg(long, value_parser = names(CurveName::ALL, CurveName::as_str))]
        curve: Option<String>,
        #[command(flatten)]
        attributes: NewKeyArgs,
    },
    /// Import a key with its private parts from a JSON Web Key file.
    Import {
        #[command(flatten)]
        key: KeyName,
        /// JSON Web Key file (RFC 7517, base64url fields), readable by its owner only.
        #[arg(long, value_name = "PATH")]
        jwk_file: PathBuf,
        /// Import as an -HSM key type.
        #[arg(long)]
        hsm: bool,
        #[command(flatten)]
        attributes: NewKeyArgs,
    },
    /// Show a key's public parts and attributes.
    Show(KeyVersion),
    /// List the keys of a vault.
    List {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
    },
    /// List the versions of a key.
    ListVersions(KeyName),
    /// Update a key version's attributes, operations or tags.
    SetAttributes {
        #[command(flatten)]
        key: KeyVersion,
        /// Whether the key can be used.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        enabled: Option<bool>,
        /// Not usable before this RFC 3339 time.
        #[arg(long, value_name = "RFC3339")]
        not_before: Option<String>,
        /// Not usable after this RFC 3339 time.
        #[arg(long, value_name = "RFC3339")]
        expires: Option<String>,
        /// Replace the permitted operations.
        #[arg(long, num_args = 1.., value_parser = names(KeyOperation::ALL, KeyOperation::as_str))]
        ops: Option<Vec<String>>,
        /// Replace all tags, space-separated key=value pairs (none clears them).
        #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
        tags: Option<Vec<String>>,
    },
    /// Create a new version with the type, size or curve and operations of the latest.
    Rotate(KeyName),
    /// Show or set a key's rotation policy.
    #[command(subcommand)]
    RotationPolicy(PolicyCommand),
    /// Encrypt a value (RSA or AES-GCM).
    Encrypt {
        #[command(flatten)]
        crypt: CryptArgs,
        /// How --value is given.
        #[arg(long, value_enum, default_value_t)]
        data_type: DataType,
    },
    /// Decrypt a value.
    Decrypt {
        #[command(flatten)]
        crypt: CryptArgs,
        #[command(flatten)]
        gcm: GcmArgs,
        /// How the result is printed.
        #[arg(long, value_enum, default_value_t)]
        data_type: DataType,
    },
    /// Wrap (encrypt) a key.
    Wrap {
        #[command(flatten)]
        crypt: CryptArgs,
    },
    /// Unwrap (decrypt) a wrapped key.
    Unwrap {
        #[command(flatten)]
        crypt: CryptArgs,
        #[command(flatten)]
        gcm: GcmArgs,
    },
    /// Sign a digest.
    Sign(SignArgs),
    /// Verify a signature of a digest; prints isValid (an invalid signature is no error).
    Verify {
        #[command(flatten)]
        sign: SignArgs,
        /// The signature, base64.
        #[arg(long, value_name = "BASE64")]
        signature: String,
    },
    /// Delete a key: every version moves to the deleted state, recoverable (`key recover`)
    /// until its scheduled purge date.
    Delete(KeyName),
    /// List the deleted keys of a vault.
    ListDeleted {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Results asked for per page [server default]; every page is listed.
        #[arg(long, visible_alias = "maxresults", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        max_results: Option<u32>,
    },
    /// Show a deleted key.
    ShowDeleted(KeyName),
    /// Recover a deleted key with all its versions.
    Recover(KeyName),
    /// Delete a deleted key for good (refused under purge protection).
    Purge(KeyName),
    /// Save a backup of a key (every version, sealed with the geography backup key).
    Backup {
        #[command(flatten)]
        key: KeyName,
        /// File to write (created with mode 0600).
        #[arg(long, short = 'f', visible_alias = "out", value_name = "PATH")]
        file: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore a key from a backup file (made by `key backup`).
    Restore {
        /// Vault name.
        #[arg(long, visible_alias = "vault-name")]
        vault: String,
        /// Backup file to read.
        #[arg(long, short = 'f', visible_alias = "in", value_name = "PATH")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Show a key's rotation policy.
    Show(KeyName),
    /// Replace a key's rotation policy.
    #[command(visible_alias = "update")]
    Set {
        #[command(flatten)]
        key: KeyName,
        /// The policy as JSON, or a file holding it (`@` before a path is allowed), e.g.
        /// {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}
        #[arg(long, value_name = "JSON_OR_PATH")]
        value: String,
    },
}

/// A clap parser accepting exactly Azure's names from one of the coffer-types lists.
fn names<T: Copy>(all: &'static [T], name: fn(T) -> &'static str) -> PossibleValuesParser {
    PossibleValuesParser::new(all.iter().map(move |item| name(*item)))
}

pub async fn run(args: KeyArgs) -> Result<(), CliError> {
    let KeyArgs { global, command } = args;
    match command {
        KeyCommand::Create {
            key,
            kty,
            size,
            exponent,
            curve,
            attributes,
        } => {
            let request = CreateKeyRequest {
                vault: key.vault,
                name: key.name,
                kty,
                key_size: size.unwrap_or(0),
                public_exponent: exponent.unwrap_or(0),
                crv: curve.unwrap_or_default(),
                key_ops: attributes.ops,
                enabled: attributes.enabled,
                not_before: parse_time("--not-before", attributes.not_before.as_deref())?,
                expires: parse_time("--expires", attributes.expires.as_deref())?,
                tags: parse_tags(&attributes.tags)?,
            };
            let key = global.connect().await?.create_key(request).await?;
            print_key(&global, &key)
        }
        KeyCommand::Import {
            key,
            jwk_file,
            hsm,
            attributes,
        } => {
            // Flags first: a mistake there must not cost reading the private key.
            let not_before = parse_time("--not-before", attributes.not_before.as_deref())?;
            let expires = parse_time("--expires", attributes.expires.as_deref())?;
            let tags = parse_tags(&attributes.tags)?;
            let mut jwk = read_jwk_file(&jwk_file)?;
            if !attributes.ops.is_empty() {
                jwk.key_ops = attributes.ops;
            }
            let request = ImportKeyRequest {
                vault: key.vault,
                name: key.name,
                key: Some(jwk),
                hsm,
                enabled: attributes.enabled,
                not_before,
                expires,
                tags,
            };
            // The client overwrites the private parts in `request` once the call has ended.
            let key = global.connect().await?.import_key(request).await?;
            print_key(&global, &key)
        }
        KeyCommand::Show(KeyVersion { key, version }) => {
            let client = global.connect().await?;
            let key = client
                .get_key(&key.vault, &key.name, version.as_deref())
                .await?;
            print_key(&global, &key)
        }
        KeyCommand::List { vault } => {
            let keys = global.connect().await?.list_keys(&vault).await?;
            print_list(&global, &keys, false)
        }
        KeyCommand::ListVersions(key) => {
            let client = global.connect().await?;
            let keys = client.list_key_versions(&key.vault, &key.name).await?;
            print_list(&global, &keys, true)
        }
        KeyCommand::SetAttributes {
            key,
            enabled,
            not_before,
            expires,
            ops,
            tags,
        } => {
            let request = UpdateKeyRequest {
                vault: key.key.vault,
                name: key.key.name,
                version: key.version.unwrap_or_default(),
                enabled,
                not_before: parse_time("--not-before", not_before.as_deref())?,
                expires: parse_time("--expires", expires.as_deref())?,
                key_ops: ops.map(|key_ops| KeyOpsList { key_ops }),
                tags: tags
                    .map(|pairs| parse_tags(&pairs).map(|tags| Tags { tags }))
                    .transpose()?,
            };
            let key = global.connect().await?.update_key(request).await?;
            print_key(&global, &key)
        }
        KeyCommand::Rotate(key) => {
            let client = global.connect().await?;
            print_key(&global, &client.rotate_key(&key.vault, &key.name).await?)
        }
        KeyCommand::RotationPolicy(command) => run_policy(&global, command).await,
        KeyCommand::Encrypt { crypt, data_type } => {
            let (algorithm, request) = operation_request(crypt, None, data_type)?;
            let result = global.connect().await?.encrypt(request).await?;
            print_encrypted(&global, &algorithm, &result)
        }
        KeyCommand::Wrap { crypt } => {
            let (algorithm, request) = operation_request(crypt, None, DataType::Base64)?;
            let result = global.connect().await?.wrap_key(request).await?;
            print_encrypted(&global, &algorithm, &result)
        }
        KeyCommand::Decrypt {
            crypt,
            gcm,
            data_type,
        } => {
            let (algorithm, request) = operation_request(crypt, Some(gcm), DataType::Base64)?;
            let decrypted = global.connect().await?.decrypt(request).await?;
            let result = encode_result(&decrypted.value, data_type)?;
            print_decrypted(&global, &algorithm, &decrypted.kid, &result)
        }
        KeyCommand::Unwrap { crypt, gcm } => {
            let (algorithm, request) = operation_request(crypt, Some(gcm), DataType::Base64)?;
            let unwrapped = global.connect().await?.unwrap_key(request).await?;
            let result = encode_result(&unwrapped.value, DataType::Base64)?;
            print_decrypted(&global, &algorithm, &unwrapped.kid, &result)
        }
        KeyCommand::Sign(args) => {
            let request = SignRequest {
                digest: decode_base64("--digest", &args.digest)?,
                vault: args.key.key.vault,
                name: args.key.key.name,
                version: args.key.version.unwrap_or_default(),
                alg: args.algorithm.clone(),
            };
            let result = global.connect().await?.sign(request).await?;
            let json = view::signature_json(&args.algorithm, &result);
            output::print(&global, &json, || {
                view::fields_table(&json, &[("Kid", "kid"), ("Signature", "signature")])
            })
        }
        KeyCommand::Verify { sign, signature } => {
            let request = VerifyRequest {
                digest: decode_base64("--digest", &sign.digest)?,
                signature: decode_base64("--signature", &signature)?,
                vault: sign.key.key.vault,
                name: sign.key.key.name,
                version: sign.key.version.unwrap_or_default(),
                alg: sign.algorithm,
            };
            let valid = global.connect().await?.verify(request).await?;
            let json = json!({ "isValid": valid });
            output::print(&global, &json, || {
                view::fields_table(&json, &[("IsValid", "isValid")])
            })
        }
        KeyCommand::Delete(key) => {
            let client = global.connect().await?;
            print_deleted(&global, &client.delete_key(&key.vault, &key.name).await?)
        }
        KeyCommand::ListDeleted { vault, max_results } => {
            let client = global.connect().await?;
            let deleted = client.list_deleted_keys(&vault, max_results).await?;
            let json = Value::Array(deleted.iter().map(view::deleted_key_item_json).collect());
            output::print(&global, &json, || view::deleted_table(&deleted))
        }
        KeyCommand::ShowDeleted(key) => {
            let client = global.connect().await?;
            print_deleted(
                &global,
                &client.get_deleted_key(&key.vault, &key.name).await?,
            )
        }
        KeyCommand::Recover(key) => {
            let client = global.connect().await?;
            let key = client.recover_deleted_key(&key.vault, &key.name).await?;
            print_key(&global, &key)
        }
        KeyCommand::Purge(key) => {
            // Like `az keyvault key purge`, success prints nothing.
            let client = global.connect().await?;
            client.purge_deleted_key(&key.vault, &key.name).await?;
            Ok(())
        }
        KeyCommand::Backup { key, file, force } => {
            // Before connecting: an existing file is refused without asking for the backup.
            let out = PrivateOutput::create(&file, force)?;
            let client = global.connect().await?;
            let blob = client.backup_key(&key.vault, &key.name).await?;
            // Like `az keyvault key backup`, success prints nothing.
            out.write(&blob)
        }
        KeyCommand::Restore { vault, file } => {
            let blob = std::fs::read(&file).map_err(|err| CliError::file(&file, err))?;
            let key = global.connect().await?.restore_key(&vault, blob).await?;
            print_key(&global, &key)
        }
    }
}

async fn run_policy(global: &GlobalArgs, command: PolicyCommand) -> Result<(), CliError> {
    let policy = match command {
        PolicyCommand::Show(key) => {
            let client = global.connect().await?;
            client
                .get_key_rotation_policy(&key.vault, &key.name)
                .await?
        }
        PolicyCommand::Set { key, value } => {
            let parsed = view::parse_policy(&policy_text(&value)?)?;
            let request = UpdateKeyRotationPolicyRequest {
                vault: key.vault,
                name: key.name,
                lifetime_actions: parsed.lifetime_actions,
                expiry_time: parsed.expiry_time,
            };
            let client = global.connect().await?;
            client.update_key_rotation_policy(request).await?
        }
    };
    output::print(global, &view::policy_json(&policy), || {
        view::policy_table(&policy)
    })
}

/// The request of encrypt, decrypt, wrap or unwrap, and its algorithm. `data_type` says how
/// `--value` is given; `gcm` the iv and tag of a decryption.
fn operation_request(
    crypt: CryptArgs,
    gcm: Option<GcmArgs>,
    data_type: DataType,
) -> Result<(String, KeyOperationRequest), CliError> {
    let CryptArgs {
        key,
        algorithm,
        value,
        aad,
    } = crypt;
    let text = Zeroizing::new(value.0);
    let mut value = match data_type {
        DataType::Base64 => decode_secret_base64("--value", &text)?,
        DataType::Plaintext => Zeroizing::new(text.as_bytes().to_vec()),
    };
    let optional = |flag: &str, text: Option<&str>| {
        text.map(|t| decode_base64(flag, t))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let gcm = gcm.unwrap_or(GcmArgs {
        iv: None,
        tag: None,
    });
    let request = KeyOperationRequest {
        iv: optional("--iv", gcm.iv.as_deref())?,
        tag: optional("--tag", gcm.tag.as_deref())?,
        aad: optional("--aad", aad.as_deref())?,
        vault: key.key.vault,
        name: key.key.name,
        version: key.version.unwrap_or_default(),
        alg: algorithm.clone(),
        // Moved, not copied: the client overwrites the request's value after the call.
        value: std::mem::take(&mut *value),
    };
    Ok((algorithm, request))
}

fn print_key(global: &GlobalArgs, key: &Key) -> Result<(), CliError> {
    output::print(global, &key_json(key), || view::show_table(key))
}

fn print_list(global: &GlobalArgs, keys: &[Key], versions: bool) -> Result<(), CliError> {
    let json = Value::Array(keys.iter().map(key_item_json).collect());
    output::print(global, &json, || view::list_table(keys, versions))
}

fn print_deleted(global: &GlobalArgs, deleted: &DeletedKey) -> Result<(), CliError> {
    output::print(global, &view::deleted_key_json(deleted), || {
        view::deleted_table(std::slice::from_ref(deleted))
    })
}

fn print_encrypted(
    global: &GlobalArgs,
    algorithm: &str,
    result: &coffer_client::proto::KeyOperationResult,
) -> Result<(), CliError> {
    let json = view::encrypted_json(algorithm, result);
    output::print(global, &json, || {
        view::fields_table(
            &json,
            &[
                ("Kid", "kid"),
                ("Result", "result"),
                ("Iv", "iv"),
                ("Tag", "tag"),
                ("Aad", "aad"),
            ],
        )
    })
}

fn print_decrypted(
    global: &GlobalArgs,
    algorithm: &str,
    kid: &str,
    result: &str,
) -> Result<(), CliError> {
    let json = view::decrypted_json(algorithm, kid, result);
    output::print(global, &json, || {
        view::fields_table(&json, &[("Kid", "kid"), ("Result", "result")])
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn crypt(value: &str) -> CryptArgs {
        CryptArgs {
            key: KeyVersion {
                key: KeyName {
                    vault: "kv".to_owned(),
                    name: "k".to_owned(),
                },
                version: None,
            },
            algorithm: "A256GCM".to_owned(),
            value: SecretArg(value.to_owned()),
            aad: Some("YWFk".to_owned()),
        }
    }

    #[test]
    fn data_type_decides_how_the_value_is_read() {
        let (alg, request) = operation_request(crypt("aGk="), None, DataType::Base64).unwrap();
        assert_eq!(alg, "A256GCM");
        assert_eq!(request.value, b"hi");
        assert_eq!(request.aad, b"aad");
        assert!(request.iv.is_empty() && request.tag.is_empty());
        let (_, request) = operation_request(crypt("aGk="), None, DataType::Plaintext).unwrap();
        assert_eq!(request.value, b"aGk=");
        let gcm = GcmArgs {
            iv: Some("AAAA".to_owned()),
            tag: Some("not base64!".to_owned()),
        };
        let err = operation_request(crypt("aGk="), Some(gcm), DataType::Base64).unwrap_err();
        assert!(
            err.to_string().contains("--tag is not valid base64"),
            "{err}"
        );
    }

    /// `coffer key ...` as `main` mounts it.
    #[derive(Debug, clap::Parser)]
    #[command(name = "coffer")]
    enum Cli {
        Key(KeyArgs),
    }

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(line.split_whitespace())
    }

    #[test]
    fn command_lines_parse() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let lines = [
            "coffer key create --vault kv --name k",
            "coffer key create --vault-name kv -n k --kty EC-HSM --curve P-384 --ops sign verify",
            "coffer key create --vault kv -n k --kty oct --size 256 --enabled false --tags a=1 b=2",
            "coffer key create --vault kv -n k --size 3072 --exponent 3 --expires 2030-01-01T00:00:00Z",
            "coffer key import --vault kv -n k --jwk-file k.json --hsm --ops sign",
            "coffer key show --vault kv -n k",
            "coffer key show --vault kv -n k --version v1 -o json",
            "coffer key list --vault kv",
            "coffer key list-versions --vault kv -n k",
            "coffer key set-attributes --vault kv -n k --enabled false --ops verify --tags",
            "coffer key rotate --vault kv -n k",
            "coffer key rotation-policy show --vault kv -n k",
            "coffer key rotation-policy set --vault kv -n k --value @p.json",
            "coffer key rotation-policy update --vault kv -n k --value p.json",
            "coffer key encrypt --vault kv -n k -a RSA-OAEP-256 --value aGk=",
            "coffer key encrypt --vault kv -n k -a A256GCM --value hi --data-type plaintext --aad YQ",
            "coffer key decrypt --vault kv -n k -a A256GCM --value eA --iv aQ --tag dA --aad YQ",
            "coffer key decrypt --vault kv -n k -a RSA1_5 --value eA --data-type plaintext",
            "coffer key wrap --vault kv -n k -a A256KW --value AAAA",
            "coffer key unwrap --vault kv -n k --version v2 -a RSA-OAEP --value AAAA",
            "coffer key sign --vault kv -n k -a ES256K --digest AAAA",
            "coffer key verify --vault kv -n k -a PS512 --digest AAAA --signature AAAA",
            "coffer key delete --vault kv -n k",
            "coffer key list-deleted --vault kv --max-results 5",
            "coffer key show-deleted --vault kv -n k",
            "coffer key recover --vault kv -n k",
            "coffer key purge --vault kv -n k",
            "coffer key backup --vault kv -n k --file k.bak --force",
            "coffer key backup --vault kv -n k -f k.bak",
            "coffer key restore --vault kv --file k.bak",
        ];
        for line in lines {
            if let Err(err) = parse(line) {
                panic!("{line:?} did not parse: {err}");
            }
        }
    }

    #[test]
    fn misuse_is_a_usage_error() {
        let bad = [
            "coffer key create --vault kv -n k --kty rsa",
            "coffer key create --vault kv -n k --curve P-192",
            "coffer key create --vault kv -n k --ops encrypt fly",
            "coffer key import --vault kv -n k",
            "coffer key encrypt --vault kv -n k -a A128CBC --value AAAA",
            "coffer key encrypt --vault kv -n k -a RS256 --value AAAA",
            "coffer key sign --vault kv -n k -a RSA-OAEP --digest AAAA",
            "coffer key wrap --vault kv -n k -a A256KW --value AAAA --data-type plaintext",
            "coffer key encrypt --vault kv -n k -a A256GCM --value AAAA --iv AAAA",
            "coffer key verify --vault kv -n k -a RS256 --digest AAAA",
            "coffer key backup --vault kv -n k",
            "coffer key rotation-policy set --vault kv -n k",
            "coffer key set-attributes --vault kv -n k --ops",
        ];
        for line in bad {
            assert!(parse(line).is_err(), "{line:?} parsed");
        }
    }

    #[test]
    fn debug_of_parsed_arguments_hides_the_value() {
        let cli =
            parse("coffer key encrypt --vault kv -n k -a A256GCM --value hunter2-key").unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2-key"), "{shown}");
    }
}
