//! The client half of the binary: `coffer vault ...`, `coffer secret ...`, `coffer key ...`,
//! `coffer rng`, `coffer login`, `coffer identity ...`, `coffer role ...`, `coffer policy ...`,
//! `coffer operator ...`.
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
mod backup;
mod bench;
mod deleted_view;
mod geography;
mod identity;
mod identity_view;
mod key;
mod key_input;
mod key_view;
mod login;
mod network_rule;
mod operator;
mod output;
mod policy;
mod rng;
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
    /// Manage keys in a vault and use them: encrypt, decrypt, wrap, unwrap, sign, verify.
    Key(key::KeyArgs),
    /// Random bytes from the node's random number generator.
    Rng(rng::RngArgs),
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
    /// Operate the cluster: membership, snapshots, node certificates, geography backup keys.
    Operator(operator::OperatorArgs),
    /// Manage a vault's firewall rules: IP addresses and ranges, virtual networks.
    NetworkRule(network_rule::NetworkRuleArgs),
    /// Open-loop load against a vault: offered, accepted and throttled rates and latency.
    Bench(bench::BenchArgs),
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
    /// Local IP address to connect from, on a host with several (vault firewalls judge the
    /// client by it) [default: $COFFER_SOURCE_ADDRESS].
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "IP")]
    source_address: Option<std::net::IpAddr>,
}

impl GlobalArgs {
    /// Connects to the node. Credentials come only from the environment or the saved login: a
    /// flag would leave them in shell history and in every process listing.
    async fn connect(&self) -> Result<CofferClient, CliError> {
        let mut options = ConnectOptions::from_env_with(self.addr.clone(), self.ca_cert.clone())?;
        if self.source_address.is_some() {
            options.source_address = self.source_address;
        }
        Ok(CofferClient::connect(options).await?)
    }
}

/// Runs one client command.
pub async fn run(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Vault(args) => vault::run(args).await,
        ClientCommand::Secret(args) => secret::run(args).await,
        ClientCommand::Key(args) => key::run(args).await,
        ClientCommand::Rng(args) => rng::run(args).await,
        ClientCommand::Login(args) => login::login(args).await,
        ClientCommand::Logout(args) => login::logout(args),
        ClientCommand::Identity(args) => identity::run(args).await,
        ClientCommand::Role(args) => role::run(args).await,
        ClientCommand::Policy(args) => policy::run(args).await,
        ClientCommand::Operator(args) => operator::run(args).await,
        ClientCommand::NetworkRule(args) => network_rule::run(args).await,
        ClientCommand::Bench(args) => bench::run(args).await,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::ClientCommand;

    /// The client half of `coffer`, as `main` mounts it.
    #[derive(Debug, Parser)]
    #[command(name = "coffer")]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn lifecycle_command_lines_parse() {
        let lines = [
            "coffer secret delete --vault kv --name s",
            "coffer secret delete --vault-name kv -n s -o json",
            "coffer secret list-deleted --vault kv",
            "coffer secret list-deleted --vault kv --max-results 5",
            "coffer secret list-deleted --vault kv --maxresults 25 --query 0.recoveryId",
            "coffer secret show-deleted --vault kv --name s",
            "coffer secret recover --vault kv --name s",
            "coffer secret purge --vault kv --name s",
            "coffer secret backup --vault kv --name s --out s.bak",
            "coffer secret backup --vault kv --name s --file s.bak --force",
            "coffer secret restore --vault kv --in s.bak",
            "coffer secret restore --vault kv -f s.bak",
            "coffer vault delete --name kv",
            "coffer vault list-deleted",
            "coffer vault list-deleted -o json",
            "coffer vault show-deleted --name kv",
            "coffer vault recover --name kv",
            "coffer vault purge --name kv",
            "coffer vault backup --name kv --out kv.bak",
            "coffer vault backup -n kv --out kv.bak --force",
            "coffer vault restore --in kv.bak --name kv2",
            "coffer vault restore --in kv.bak --name kv2 --location west",
            "coffer operator geography-key list",
            "coffer operator geography-key list -o json",
            "coffer operator geography-key export --out gk.json",
            "coffer operator geography-key export --out gk.json --passphrase-file p --force",
            "coffer operator geography-key import --in gk.json",
            "coffer operator geography-key import --in gk.json --passphrase-file p",
        ];
        for line in lines {
            if let Err(err) = parse(line) {
                panic!("{line:?} did not parse: {err}");
            }
        }
    }

    #[test]
    fn network_throttle_and_bench_command_lines_parse() {
        let lines = [
            "coffer network-rule add --vault kv --ip-address 203.0.113.0/24 --ip-address 2001:db8::/32",
            "coffer network-rule add --name kv --vnet-name corp --ignore-missing-vnet-service-endpoint",
            "coffer network-rule add -n kv --ip-address 198.51.100.7 --vnet-name corp",
            "coffer network-rule remove --vault kv --ip-address 203.0.113.0/24",
            "coffer network-rule remove --vault kv --vnet-name corp",
            "coffer network-rule list --vault kv -o json",
            "coffer vault update --name kv --default-action Deny --bypass None",
            "coffer vault update --name kv --public-network-access Disabled --tags env=prod",
            "coffer vault throttle show --name kv",
            "coffer vault throttle set --name kv --class secrets --rate 500",
            "coffer vault throttle set --name kv --class keys --rate 500 --burst 100 -o json",
            "coffer vault throttle reset --name kv --class secrets",
            "coffer bench --vault kv --op secret-get --rate 100 --duration 10s",
            "coffer bench --vault kv --op secret-set --rate 5 --duration 500ms --concurrency 1",
            "coffer bench --vault kv --op key-sign --rate 300 --duration 1m --concurrency 64 \
             --name k1 --warmup 5s --output json",
            "coffer secret show --vault kv --name s --source-address 127.0.0.2",
            "coffer vault show --name kv --source-address ::1",
        ];
        for line in lines {
            if let Err(err) = parse(line) {
                panic!("{line:?} did not parse: {err}");
            }
        }
    }

    #[test]
    fn network_throttle_and_bench_misuse_is_a_usage_error() {
        let bad = [
            // A rule to add or remove is required.
            "coffer network-rule add --vault kv",
            "coffer network-rule remove --vault kv",
            "coffer network-rule list",
            "coffer network-rule remove --vault kv --vnet-name corp --ignore-missing-vnet-service-endpoint",
            "coffer vault throttle set --name kv --class secrets",
            "coffer vault throttle set --name kv --class secrets --rate -1",
            "coffer vault throttle reset --name kv",
            "coffer bench --vault kv --op secret-get --duration 10s",
            "coffer bench --vault kv --op secret-get --rate 10",
            "coffer bench --vault kv --op delete-all --rate 10 --duration 1s",
            "coffer bench --vault kv --op secret-get --rate 10 --duration 10x",
            "coffer bench --vault kv --op secret-get --rate 10 --duration 5h",
            "coffer secret show --vault kv --name s --source-address somewhere",
        ];
        for line in bad {
            assert!(parse(line).is_err(), "{line:?} parsed");
        }
    }

    #[test]
    fn lifecycle_misuse_is_a_usage_error() {
        let bad = [
            "coffer secret delete --vault kv",
            "coffer secret list-deleted --vault kv --max-results 0",
            "coffer secret list-deleted --vault kv --max-results many",
            "coffer secret backup --vault kv --name s",
            "coffer secret restore --vault kv",
            "coffer vault backup --name kv",
            "coffer vault restore --in kv.bak",
            "coffer vault restore --name kv2",
            // A passphrase never comes from a flag value.
            "coffer operator geography-key export --out gk.json --passphrase hunter2hunter2hunter2",
            "coffer operator geography-key import --in gk.json --passphrase hunter2hunter2hunter2",
            "coffer operator geography-key export",
            "coffer operator geography-key import",
        ];
        for line in bad {
            assert!(parse(line).is_err(), "{line:?} parsed");
        }
    }
}
