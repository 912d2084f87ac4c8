//! The client half of the binary: `coffer vault ...`, `coffer secret ...`, `coffer login`,
//! `coffer identity ...`, `coffer role ...`, `coffer policy ...`, `coffer operator ...`.
//!
//! Each command connects with [`ConnectOptions`] taken from the environment (`COFFER_ADDR` and
//! `COFFER_CA_CERT`, overridable by `--addr` and `--ca-cert`) and authenticates with the first
//! credential found: `COFFER_TOKEN`, the client secret of `COFFER_TENANT`, `COFFER_CLIENT_ID`
//! and `COFFER_CLIENT_SECRET`, or the token `coffer login` saved. It makes its calls through
//! `coffer-client`, and prints the result in the JSON shape `az` uses or as an aligned table.
//! Credentials are read from the environment and files only and are never printed, except a
//! newly generated client secret, which is shown once as `az` shows it.

mod args;
mod assertion;
mod identity;
mod identity_view;
mod login;
mod operator;
mod output;
mod policy;
mod role;
mod role_view;
mod secret;
mod secret_view;
mod vault;

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_client::{ClientError, CofferClient, ConnectOptions};

use output::OutputFormat;

/// The client commands, flattened into the top-level `coffer` command.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Manage vaults.
    Vault(vault::VaultArgs),
    /// Manage secrets in a vault.
    Secret(secret::SecretArgs),
    /// Sign in as a service principal; later commands use the saved token.
    Login(login::LoginArgs),
    /// Remove the token `coffer login` saved.
    Logout(login::LogoutArgs),
    /// Manage tenants, principals, credentials and groups.
    Identity(identity::IdentityArgs),
    /// Manage role definitions and role assignments (RBAC).
    Role(role::RoleArgs),
    /// Manage a vault's access policies (the model used when RBAC is off).
    Policy(policy::PolicyArgs),
    /// Operate the cluster: membership, snapshots, node certificates.
    Operator(operator::OperatorArgs),
}

/// Help heading that groups the flags every client command accepts.
const GLOBAL: &str = "Global Options";

/// Flags accepted by every client command, before or after the verb.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format.
    #[arg(long, short = 'o', global = true, help_heading = GLOBAL, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// Dotted path into the JSON result (e.g. `value`, `attributes.enabled`). A string result is
    /// printed raw, other results as JSON; --output is then ignored.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    query: Option<String>,
    /// Node address, https://host:port, or several separated by commas (calls fail over
    /// between them) [default: $COFFER_ADDR].
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "URL")]
    addr: Option<String>,
    /// PEM file of the CA that signed the node's certificate [default: $COFFER_CA_CERT].
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    ca_cert: Option<PathBuf>,
}

impl GlobalArgs {
    /// Connects to the node. Credentials come only from the environment or the saved login: a
    /// flag would leave them in shell history and in every process listing.
    async fn connect(&self) -> Result<CofferClient, CliError> {
        let options = ConnectOptions::from_env_with(self.addr.clone(), self.ca_cert.clone())?;
        Ok(CofferClient::connect(options).await?)
    }
}

/// Runs one client command.
pub async fn run(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Vault(args) => vault::run(args).await,
        ClientCommand::Secret(args) => secret::run(args).await,
        ClientCommand::Login(args) => login::login(args).await,
        ClientCommand::Logout(args) => login::logout(args),
        ClientCommand::Identity(args) => identity::run(args).await,
        ClientCommand::Role(args) => role::run(args).await,
        ClientCommand::Policy(args) => policy::run(args).await,
        ClientCommand::Operator(args) => operator::run(args).await,
    }
}

/// A failed client command. `Display` is one line, `(Code) message`, like `az`.
#[derive(Debug)]
pub enum CliError {
    /// The server or the connection failed.
    Client(ClientError),
    /// The command line or a local file was unusable.
    Local { code: &'static str, message: String },
}

impl CliError {
    /// A bad flag value; named after the code the server uses for the same mistake.
    fn bad_parameter(message: impl Into<String>) -> Self {
        Self::Local {
            code: "BadParameter",
            message: message.into(),
        }
    }

    /// A local file that cannot be read or written.
    fn file(path: &std::path::Path, err: impl fmt::Display) -> Self {
        Self::Local {
            code: "FileError",
            message: format!("{}: {err}", path.display()),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(err) => err.fmt(f),
            Self::Local { code, message } => write!(f, "({code}) {message}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        Self::Client(err)
    }
}
