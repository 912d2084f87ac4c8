//! `coffer identity tenant|principal|credential|group|signing-key ...`: the directory the token
//! endpoint issues tokens from, shaped after `az ad`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use coffer_client::proto::{
    AddCredentialRequest, CreatePrincipalRequest, FederatedCredential, NewSecret,
    add_credential_request::Credential,
};
use serde_json::{Value, json};

use super::args::parse_time;
use super::identity_view::{
    added_json, added_table, credential_table, principal_json, principal_table, tenant_json,
    tenant_table,
};
use super::output::{self, Table};
use super::{CliError, GlobalArgs};

/// `coffer identity ...`.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: IdentityCommand,
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Tenants: the directories principals belong to.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users, groups, service principals and managed identities.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// A service principal's client secrets, certificates and federated credentials.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Group membership.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The key access tokens are signed with.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id: lowercase letters, digits and hyphens.
        #[arg(long)]
        id: String,
        /// Display name [default: the id].
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List tenants.
    List,
}

/// `--type` of `principal create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrincipalType {
    User,
    Group,
    ServicePrincipal,
    ManagedIdentity,
}

impl PrincipalType {
    /// The name the API uses.
    fn wire(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
            Self::ServicePrincipal => "ServicePrincipal",
            Self::ManagedIdentity => "ManagedIdentity",
        }
    }

    fn has_client_id(self) -> bool {
        matches!(self, Self::ServicePrincipal | Self::ManagedIdentity)
    }
}

#[derive(Debug, Subcommand)]
enum PrincipalCommand {
    /// Create a principal.
    Create {
        /// Tenant the principal belongs to.
        #[arg(long)]
        tenant: String,
        /// Kind of principal.
        #[arg(long = "type", value_enum)]
        kind: PrincipalType,
        /// Display name.
        #[arg(long)]
        display_name: String,
        /// Client id of a service principal or managed identity [default: a new UUID].
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Show a principal, by object id or client id.
    Show {
        #[arg(long)]
        id: String,
    },
    /// List principals.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a principal, its role assignments and (for a group) its memberships.
    Delete {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialCommand {
    /// Add a credential to a service principal. A generated client secret is printed this
    /// once; the server keeps only its hash.
    #[command(group(ArgGroup::new("kind").required(true).args(["secret", "cert", "federated"])))]
    Add {
        /// Object id or client id of the service principal.
        #[arg(long)]
        principal: String,
        /// Generate a client secret.
        #[arg(long)]
        secret: bool,
        /// With --secret: when the secret stops working (RFC 3339) [default: never].
        #[arg(long, value_name = "RFC3339")]
        expires: Option<String>,
        /// Register this certificate (PEM or DER); its key signs client assertions.
        #[arg(long, value_name = "PATH")]
        cert: Option<PathBuf>,
        /// Trust tokens from an external OIDC issuer (workload identity federation).
        #[arg(long)]
        federated: bool,
        /// With --federated: the credential's name (what removes it).
        #[arg(long)]
        name: Option<String>,
        /// With --federated: the issuer URL of the external tokens.
        #[arg(long)]
        issuer: Option<String>,
        /// With --federated: the subject (`sub`) the external tokens carry.
        #[arg(long)]
        subject: Option<String>,
        /// With --federated: audiences accepted [server default: api://AzureADTokenExchange].
        #[arg(long = "audience", value_name = "AUDIENCE")]
        audiences: Vec<String>,
    },
    /// Remove a credential.
    Remove {
        /// Object id or client id of the service principal.
        #[arg(long)]
        principal: String,
        /// The credential's id (secret, certificate) or name (federated).
        #[arg(long)]
        credential: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Add a principal to a group; prints the member with its groups.
    AddMember {
        /// Object id of the group.
        #[arg(long)]
        group: String,
        /// Object id or client id of the member.
        #[arg(long)]
        member: String,
    },
    /// Remove a principal from a group; prints the member with its groups.
    RemoveMember {
        #[arg(long)]
        group: String,
        #[arg(long)]
        member: String,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeyCommand {
    /// Put a new token signing key in charge; the previous one keeps verifying tokens for one
    /// token lifetime.
    Rotate,
}

pub async fn run(args: IdentityArgs) -> Result<(), CliError> {
    let IdentityArgs { global, command } = args;
    match command {
        IdentityCommand::Tenant(command) => tenant(&global, command).await,
        IdentityCommand::Principal(command) => principal(&global, command).await,
        IdentityCommand::Credential(command) => credential(&global, command).await,
        IdentityCommand::Group(command) => group(&global, command).await,
        IdentityCommand::SigningKey(SigningKeyCommand::Rotate) => {
            let kid = global.connect().await?.rotate_signing_key().await?;
            output::print(&global, &json!({ "kid": kid }), || Table {
                headers: vec!["Kid"],
                rows: vec![vec![kid.clone()]],
            })
        }
    }
}

async fn tenant(global: &GlobalArgs, command: TenantCommand) -> Result<(), CliError> {
    match command {
        TenantCommand::Create { id, display_name } => {
            let display_name = display_name.unwrap_or_else(|| id.clone());
            let tenant = global
                .connect()
                .await?
                .create_tenant(&id, &display_name)
                .await?;
            output::print(global, &tenant_json(&tenant), || {
                tenant_table(std::slice::from_ref(&tenant))
            })
        }
        TenantCommand::List => {
            let tenants = global.connect().await?.list_tenants().await?;
            let json = Value::Array(tenants.iter().map(tenant_json).collect());
            output::print(global, &json, || tenant_table(&tenants))
        }
    }
}

async fn principal(global: &GlobalArgs, command: PrincipalCommand) -> Result<(), CliError> {
    match command {
        PrincipalCommand::Create {
            tenant,
            kind,
            display_name,
            client_id,
        } => {
            if client_id.is_some() && !kind.has_client_id() {
                return Err(CliError::bad_parameter(
                    "--client-id applies to service principals and managed identities only",
                ));
            }
            let request = CreatePrincipalRequest {
                tenant,
                kind: kind.wire().to_owned(),
                display_name,
                client_id: client_id.unwrap_or_default(),
            };
            let principal = global.connect().await?.create_principal(request).await?;
            print_principal(global, &principal)
        }
        PrincipalCommand::Show { id } => {
            let principal = global.connect().await?.get_principal(&id).await?;
            print_principal(global, &principal)
        }
        PrincipalCommand::List { tenant } => {
            let principals = global
                .connect()
                .await?
                .list_principals(tenant.as_deref())
                .await?;
            let json = Value::Array(principals.iter().map(principal_json).collect());
            output::print(global, &json, || principal_table(&principals))
        }
        PrincipalCommand::Delete { id } => {
            global.connect().await?.delete_principal(&id).await?;
            Ok(())
        }
    }
}

fn print_principal(
    global: &GlobalArgs,
    principal: &coffer_client::proto::Principal,
) -> Result<(), CliError> {
    output::print(global, &principal_json(principal), || {
        principal_table(std::slice::from_ref(principal))
    })
}

/// The credential `credential add` asks for, checked and read before connecting.
fn new_credential(
    secret: bool,
    expires: Option<&str>,
    cert: Option<&PathBuf>,
    federated: Option<FederatedCredential>,
) -> Result<(Credential, &'static str), CliError> {
    match (secret, cert, federated) {
        (true, None, None) => Ok((
            Credential::Secret(NewSecret {
                expires: parse_time("--expires", expires)?,
            }),
            "secret",
        )),
        (false, Some(path), None) => Ok((
            Credential::Certificate(read_certificate(path)?),
            "certificate",
        )),
        (false, None, Some(federated)) => Ok((Credential::Federated(federated), "federated")),
        // clap's "kind" group allows exactly one.
        _ => Err(CliError::bad_parameter(
            "give one of --secret, --cert or --federated",
        )),
    }
}

/// A certificate file as the server takes it (PEM or DER). PEM is checked here, so that a key
/// file given by mistake is refused before it leaves the machine.
fn read_certificate(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    let bytes = std::fs::read(path).map_err(|err| CliError::file(path, err))?;
    let is_pem = bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if is_pem {
        if String::from_utf8_lossy(&bytes).contains("PRIVATE KEY") {
            return Err(CliError::bad_parameter(format!(
                "--cert {}: the file holds a private key; give the certificate alone",
                path.display()
            )));
        }
        coffer_crypto::jwt::certificates_from_pem(&bytes)
            .map_err(|err| CliError::bad_parameter(format!("--cert {}: {err}", path.display())))?;
    }
    Ok(bytes)
}

fn federated_credential(
    name: Option<String>,
    issuer: Option<String>,
    subject: Option<String>,
    audiences: Vec<String>,
) -> Result<FederatedCredential, CliError> {
    let need = |value: Option<String>, flag: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CliError::bad_parameter(format!("--federated needs {flag}")))
    };
    Ok(FederatedCredential {
        name: need(name, "--name")?,
        issuer: need(issuer, "--issuer")?,
        subject: need(subject, "--subject")?,
        audiences,
    })
}

async fn credential(global: &GlobalArgs, command: CredentialCommand) -> Result<(), CliError> {
    match command {
        CredentialCommand::Add {
            principal,
            secret,
            expires,
            cert,
            federated,
            name,
            issuer,
            subject,
            audiences,
        } => {
            // Checked here rather than with clap's `requires`, which a boolean flag's default
            // value would satisfy.
            if expires.is_some() && !secret {
                return Err(CliError::bad_parameter(
                    "--expires applies to --secret only",
                ));
            }
            let federated_flags =
                name.is_some() || issuer.is_some() || subject.is_some() || !audiences.is_empty();
            if federated_flags && !federated {
                return Err(CliError::bad_parameter(
                    "--name, --issuer, --subject and --audience apply to --federated only",
                ));
            }
            let federated = federated
                .then(|| federated_credential(name, issuer, subject, audiences))
                .transpose()?;
            let (credential, kind) =
                new_credential(secret, expires.as_deref(), cert.as_ref(), federated)?;
            let request = AddCredentialRequest {
                principal,
                credential: Some(credential),
            };
            let added = global.connect().await?.add_credential(request).await?;
            if added.secret.is_some() {
                eprintln!(
                    "warning: the output includes a client secret. It is shown this once and \
                     cannot be read back; keep it out of code and source control."
                );
            }
            let json = added_json(&added, kind);
            output::print(global, &json, || added_table(&json))
        }
        CredentialCommand::Remove {
            principal,
            credential,
        } => {
            let principal = global
                .connect()
                .await?
                .remove_credential(&principal, &credential)
                .await?;
            output::print(global, &principal_json(&principal), || {
                credential_table(&principal)
            })
        }
    }
}

async fn group(global: &GlobalArgs, command: GroupCommand) -> Result<(), CliError> {
    let (group, member, member_of) = match command {
        GroupCommand::AddMember { group, member } => (group, member, true),
        GroupCommand::RemoveMember { group, member } => (group, member, false),
    };
    let member = global
        .connect()
        .await?
        .set_group_membership(&group, &member, member_of)
        .await?;
    print_principal(global, &member)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn principal_types_use_the_api_names() {
        assert_eq!(PrincipalType::ServicePrincipal.wire(), "ServicePrincipal");
        assert_eq!(PrincipalType::ManagedIdentity.wire(), "ManagedIdentity");
        assert!(!PrincipalType::Group.has_client_id());
        assert!(PrincipalType::ServicePrincipal.has_client_id());
    }

    #[test]
    fn federated_credentials_need_name_issuer_and_subject() {
        let ok = federated_credential(
            Some("gh".into()),
            Some("https://token.actions.githubusercontent.com".into()),
            Some("repo:o/r:ref:refs/heads/main".into()),
            vec![],
        )
        .unwrap();
        assert_eq!(ok.name, "gh");
        let err = federated_credential(Some("gh".into()), None, Some("s".into()), vec![])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "(BadParameter) --federated needs --issuer");
    }

    #[test]
    fn secrets_take_an_rfc3339_expiry() {
        let (credential, kind) =
            new_credential(true, Some("2030-01-31T12:00:00Z"), None, None).unwrap();
        assert_eq!(kind, "secret");
        assert_eq!(
            credential,
            Credential::Secret(NewSecret {
                expires: Some(1_896_091_200)
            })
        );
        assert!(new_credential(true, Some("tomorrow"), None, None).is_err());
    }

    #[test]
    fn certificate_files_are_checked_and_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, key) = coffer_crypto::pki::ClusterCa::generate().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, ca.cert_pem()).unwrap();
        assert_eq!(read_certificate(&cert).unwrap(), ca.cert_pem().as_bytes());
        let both = dir.path().join("both.pem");
        std::fs::write(&both, format!("{}{}", ca.cert_pem(), key.expose())).unwrap();
        let err = read_certificate(&both).unwrap_err().to_string();
        assert!(err.contains("private key"), "{err}");
        assert!(!err.contains("BEGIN"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
        assert!(read_certificate(&garbage).is_err());
        let missing = dir.path().join("missing.pem");
        assert!(
            read_certificate(&missing)
                .unwrap_err()
                .to_string()
                .starts_with("(FileError)")
        );
    }
}
