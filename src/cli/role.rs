//! `coffer role definition list|create|delete` and `coffer role assignment
//! create|delete|list`, shaped after `az role`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::output;
use super::role_view::{assignment_json, assignment_table, parse_role_file, role_json, role_table};
use super::{CliError, GlobalArgs};

/// `coffer role ...`.
#[derive(Debug, Args)]
pub struct RoleArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: RoleCommand,
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Role definitions: named sets of allowed actions.
    #[command(subcommand)]
    Definition(DefinitionCommand),
    /// Role assignments: a role granted to a principal at a scope.
    #[command(subcommand)]
    Assignment(AssignmentCommand),
}

#[derive(Debug, Subcommand)]
enum DefinitionCommand {
    /// List the built-in and custom roles.
    List,
    /// Create a custom role (or replace the one whose Id the file gives) from a JSON file in
    /// Azure's shape: Name, Description, Actions, NotActions, DataActions, NotDataActions,
    /// AssignableScopes.
    Create {
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
    /// Delete a custom role.
    Delete {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AssignmentCommand {
    /// Grant a role to a principal at a scope.
    Create {
        /// Object id or client id of the principal.
        #[arg(long)]
        assignee: String,
        /// Role name (e.g. "Key Vault Secrets Officer") or id.
        #[arg(long)]
        role: String,
        /// "/", "/vaults/{vault}" or "/vaults/{vault}/{secrets|keys|certificates}/{name}".
        #[arg(long)]
        scope: String,
    },
    /// Delete a role assignment.
    Delete {
        #[arg(long)]
        id: String,
    },
    /// List role assignments.
    List {
        /// Only those at this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Only those of this principal (object id or client id).
        #[arg(long)]
        assignee: Option<String>,
    },
}

pub async fn run(args: RoleArgs) -> Result<(), CliError> {
    let RoleArgs { global, command } = args;
    match command {
        RoleCommand::Definition(command) => definition(&global, command).await,
        RoleCommand::Assignment(command) => assignment(&global, command).await,
    }
}

async fn definition(global: &GlobalArgs, command: DefinitionCommand) -> Result<(), CliError> {
    match command {
        DefinitionCommand::List => {
            let roles = global.connect().await?.list_role_definitions().await?;
            let json = Value::Array(roles.iter().map(role_json).collect());
            output::print(global, &json, || role_table(&roles))
        }
        DefinitionCommand::Create { file } => {
            let text = std::fs::read_to_string(&file).map_err(|err| CliError::file(&file, err))?;
            let role = parse_role_file(&text).map_err(|message| {
                CliError::bad_parameter(format!("--file {}: {message}", file.display()))
            })?;
            let role = global.connect().await?.put_role_definition(role).await?;
            output::print(global, &role_json(&role), || {
                role_table(std::slice::from_ref(&role))
            })
        }
        DefinitionCommand::Delete { id } => {
            global.connect().await?.delete_role_definition(&id).await?;
            Ok(())
        }
    }
}

async fn assignment(global: &GlobalArgs, command: AssignmentCommand) -> Result<(), CliError> {
    match command {
        AssignmentCommand::Create {
            assignee,
            role,
            scope,
        } => {
            let assignment = global
                .connect()
                .await?
                .create_role_assignment(&assignee, &role, &scope)
                .await?;
            output::print(global, &assignment_json(&assignment), || {
                assignment_table(std::slice::from_ref(&assignment))
            })
        }
        AssignmentCommand::Delete { id } => {
            // Like `az role assignment delete`, success prints nothing.
            global.connect().await?.delete_role_assignment(&id).await?;
            Ok(())
        }
        AssignmentCommand::List { scope, assignee } => {
            let assignments = global
                .connect()
                .await?
                .list_role_assignments(scope.as_deref(), assignee.as_deref())
                .await?;
            let json = Value::Array(assignments.iter().map(assignment_json).collect());
            output::print(global, &json, || assignment_table(&assignments))
        }
    }
}
