//! `coffer`: one binary that is both a Coffer node (`coffer server`) and its command-line client
//! (`coffer vault ...`, `coffer secret ...`, shaped after `az keyvault`).
//!
//! Errors end the process with one line on stderr, `error: (Code) message`, and exit status 1;
//! command-line usage errors keep clap's own message and status.
#![forbid(unsafe_code)]

mod cli;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Coffer: a self-hosted vault for secrets with Azure Key Vault semantics.
#[derive(Debug, Parser)]
#[command(name = "coffer", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup and moved once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Coffer node.
    Server(server::ServerArgs),
    /// Development conveniences: a local multi-node cluster.
    Dev(server::dev_cluster::DevArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args).await.map_err(|err| format!("{err:#}")),
        Command::Dev(args) => server::dev_cluster::run(args)
            .await
            .map_err(|err| format!("{err:#}")),
        Command::Client(command) => cli::run(command).await.map_err(|err| err.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn debug_of_parsed_arguments_hides_a_secret_value() {
        let cli = Cli::try_parse_from([
            "coffer",
            "secret",
            "set",
            "--vault",
            "kv",
            "--name",
            "n",
            "--value",
            "hunter2-cli",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(shown.contains("SecretArg(<redacted>)"), "{shown}");
        assert!(!shown.contains("hunter2-cli"), "{shown}");
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_command_lines_parse() {
        let lines: &[&[&str]] = &[
            &[
                "coffer",
                "vault",
                "create",
                "--name",
                "kv",
                "--location",
                "home",
            ],
            &[
                "coffer",
                "vault",
                "create",
                "-n",
                "kv",
                "-l",
                "home",
                "--sku",
                "premium",
                "--retention-days",
                "7",
                "--purge-protection",
                "--tags",
                "a=1",
                "b=2",
            ],
            &["coffer", "vault", "show", "--name", "kv", "-o", "json"],
            &["coffer", "vault", "list", "--query", "0.name"],
            &[
                "coffer",
                "vault",
                "update",
                "--name",
                "kv",
                "--purge-protection",
                "true",
            ],
            &["coffer", "vault", "update", "--name", "kv", "--tags"],
            &["coffer", "vault", "delete", "--name", "kv"],
            &[
                "coffer", "secret", "set", "--vault", "kv", "--name", "s", "--value", "v",
            ],
            &[
                "coffer",
                "secret",
                "set",
                "--vault-name",
                "kv",
                "-n",
                "s",
                "--file",
                "f",
                "--encoding",
                "base64",
                "--enabled",
                "false",
                "--expires",
                "2030-01-31T12:00:00Z",
                "--content-type",
                "text/plain",
            ],
            &[
                "coffer",
                "secret",
                "show",
                "--vault",
                "kv",
                "--name",
                "s",
                "--version",
                "x",
            ],
            &[
                "coffer", "secret", "list", "--vault", "kv", "--output", "json",
            ],
            &[
                "coffer",
                "secret",
                "list-versions",
                "--vault",
                "kv",
                "--name",
                "s",
            ],
            &[
                "coffer",
                "secret",
                "set-attributes",
                "--vault",
                "kv",
                "--name",
                "s",
                "--enabled",
                "true",
                "--tags",
                "x=y",
                "--query",
                "attributes.enabled",
            ],
        ];
        for line in lines {
            if let Err(err) = Cli::try_parse_from(*line) {
                panic!("{line:?} did not parse: {err}");
            }
        }
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn identity_command_lines_parse() {
        let lines = [
            "coffer login --tenant t --client-id c --secret-file f",
            "coffer login --tenant t --client-id c --cert c.pem --key k.pem --addr https://h:1",
            "coffer logout",
            "coffer identity tenant create --id contoso --display-name Contoso",
            "coffer identity tenant list -o json",
            "coffer identity principal create --tenant t --type service-principal --display-name a --client-id c",
            "coffer identity principal create --tenant t --type managed-identity --display-name a",
            "coffer identity principal create --tenant t --type user --display-name a",
            "coffer identity principal create --tenant t --type group --display-name a",
            "coffer identity principal show --id x",
            "coffer identity principal list",
            "coffer identity principal list --tenant t",
            "coffer identity principal delete --id x",
            "coffer identity credential add --principal p --secret",
            "coffer identity credential add --principal p --secret --expires 2030-01-31T12:00:00Z --query password",
            "coffer identity credential add --principal p --cert c.pem",
            "coffer identity credential add --principal p --federated --name n --issuer https://i --subject s --audience a1 --audience a2",
            "coffer identity credential remove --principal p --credential c",
            "coffer identity group add-member --group g --member m",
            "coffer identity group remove-member --group g --member m",
            "coffer identity signing-key rotate",
            "coffer role definition list",
            "coffer role definition create --file role.json",
            "coffer role definition delete --id r",
            "coffer role assignment create --assignee a --role Reader --scope /vaults/kv",
            "coffer role assignment delete --id x",
            "coffer role assignment list",
            "coffer role assignment list --scope / --assignee a",
            "coffer policy set --vault kv --object-id o --secret-permissions get list",
            "coffer policy set --name kv --object-id o --key-permissions get --certificate-permissions list --storage-permissions get",
            "coffer policy set --vault kv --object-id o --secret-permissions",
            "coffer policy delete --vault kv --object-id o",
            "coffer policy list --vault kv -o json",
        ];
        for line in lines {
            if let Err(err) = Cli::try_parse_from(words(line)) {
                panic!("{line:?} did not parse: {err}");
            }
        }
    }

    #[test]
    fn identity_misuse_is_a_usage_error() {
        let bad = [
            // No credential, both credentials, a certificate without its key.
            "coffer login --tenant t --client-id c",
            "coffer login --tenant t --client-id c --secret-file f --cert c --key k",
            "coffer login --tenant t --client-id c --cert c.pem",
            "coffer login --tenant t --client-id c --key k.pem",
            // Secrets never come from flags.
            "coffer login --tenant t --client-id c --client-secret s",
            "coffer identity principal create --tenant t --type robot --display-name a",
            "coffer identity credential add --principal p",
            "coffer identity credential add --principal p --secret --cert c.pem",
            "coffer role assignment create --assignee a --role Reader",
            "coffer policy set --vault kv --object-id o",
        ];
        for line in bad {
            assert!(Cli::try_parse_from(words(line)).is_err(), "{line:?} parsed");
        }
    }

    #[test]
    fn misuse_is_a_usage_error() {
        let bad: &[&[&str]] = &[
            // Neither --value nor --file.
            &["coffer", "secret", "set", "--vault", "kv", "--name", "s"],
            // Both.
            &[
                "coffer", "secret", "set", "--vault", "kv", "--name", "s", "--value", "v",
                "--file", "f",
            ],
            // --encoding only applies to --file.
            &[
                "coffer",
                "secret",
                "set",
                "--vault",
                "kv",
                "--name",
                "s",
                "--value",
                "v",
                "--encoding",
                "base64",
            ],
            &[
                "coffer",
                "vault",
                "create",
                "--name",
                "kv",
                "--location",
                "l",
                "--sku",
                "gold",
            ],
            &[
                "coffer", "secret", "list", "--vault", "kv", "--output", "yaml",
            ],
            // There is no token flag: the token comes from COFFER_TOKEN only.
            &["coffer", "secret", "list", "--vault", "kv", "--token", "t"],
        ];
        for line in bad {
            assert!(Cli::try_parse_from(*line).is_err(), "{line:?} parsed");
        }
    }
}
