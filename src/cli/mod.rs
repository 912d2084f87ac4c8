//! The client half of the binary: `coffer vault ...` and `coffer secret ...`.
//!
//! Each command connects with [`ConnectOptions`] taken from the environment (`COFFER_ADDR`,
//! `COFFER_TOKEN`, `COFFER_CA_CERT`, the first two overridable by `--addr` and `--ca-cert`),
//! makes its calls through `coffer-client`, and prints the result in the JSON shape `az keyvault`
//! uses or as an aligned table. The token is read from the environment only and never printed.

mod args;
mod operator;
mod output;
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
    /// Connects to the node. The token comes only from `COFFER_TOKEN`: a flag would leave it in
    /// shell history and in every process listing.
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
