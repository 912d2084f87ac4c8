//! Identity and authorization through the real CLI against a real dev server: an administrator
//! (the bootstrap token) creates a tenant and a service principal with a secret and a
//! certificate, grants it "Key Vault Secrets Officer" on one vault; the principal then works on
//! that vault and is refused on another, authenticating with `COFFER_CLIENT_SECRET`, with a
//! `coffer login --secret-file` token, and with a `coffer login --cert --key` token. Access
//! policies round-trip on a vault switched from RBAC to access policies.
//!
//! The dev server's dev.env also exports an admin service principal (`COFFER_TENANT`,
//! `COFFER_CLIENT_ID`, `COFFER_CLIENT_SECRET`); every command here sets or removes those
//! variables and `COFFER_TOKEN` itself, so what authenticates is always the identity named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{DevServer, failed_once, succeeded};
use serde_json::Value;

/// Who a command runs as.
enum Caller<'a> {
    /// The dev server's bootstrap admin token (`COFFER_TOKEN`).
    Admin,
    /// A service principal's client secret in the environment, no `COFFER_TOKEN`.
    Secret {
        tenant: &'a str,
        client_id: &'a str,
        secret: &'a str,
    },
    /// No credential in the environment: only a token saved by `coffer login` can work.
    Nobody,
}

struct Cli<'a> {
    server: &'a DevServer,
    /// `COFFER_CONFIG_DIR`: where `coffer login` saves its token. Never the user's own.
    config_dir: &'a Path,
}

impl Cli<'_> {
    fn run(&self, caller: &Caller<'_>, args: &[&str]) -> Output {
        let mut command = self.server.command(args);
        command
            .env("COFFER_CONFIG_DIR", self.config_dir)
            .env_remove("COFFER_TENANT")
            .env_remove("COFFER_CLIENT_ID")
            .env_remove("COFFER_CLIENT_SECRET");
        match caller {
            Caller::Admin => {}
            Caller::Secret {
                tenant,
                client_id,
                secret,
            } => {
                command
                    .env_remove("COFFER_TOKEN")
                    .env("COFFER_TENANT", tenant)
                    .env("COFFER_CLIENT_ID", client_id)
                    .env("COFFER_CLIENT_SECRET", secret);
            }
            Caller::Nobody => {
                command.env_remove("COFFER_TOKEN");
            }
        }
        command.output().expect("run coffer CLI")
    }

    /// Runs, asserts success, returns stdout.
    fn ok(&self, caller: &Caller<'_>, args: &[&str]) -> String {
        succeeded(args, self.run(caller, args))
    }

    fn json(&self, caller: &Caller<'_>, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(caller, &full)).expect("JSON output")
    }

    /// Runs, asserts failure with one error line, returns that line.
    fn fails(&self, caller: &Caller<'_>, args: &[&str]) -> String {
        failed_once(args, self.run(caller, args))
    }
}

fn write_private(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

#[test]
fn service_principals_authenticate_and_are_authorized_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("dev"));
    let config_dir = dir.path().join("config");
    let cli = Cli {
        server: &server,
        config_dir: &config_dir,
    };
    let admin = Caller::Admin;

    // The directory: a tenant and a service principal with a generated secret.
    let tenant = cli.json(&admin, &["identity", "tenant", "create", "--id", "contoso"]);
    assert_eq!(tenant["id"], "contoso");
    let tenants = cli.json(&admin, &["identity", "tenant", "list"]);
    assert!(
        tenants
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "contoso"),
        "{tenants}"
    );
    let app = cli.json(
        &admin,
        &[
            "identity",
            "principal",
            "create",
            "--tenant",
            "contoso",
            "--type",
            "service-principal",
            "--display-name",
            "ecotracker-app",
        ],
    );
    assert_eq!(app["type"], "ServicePrincipal");
    let object_id = text(&app, "objectId").to_owned();
    let client_id = text(&app, "clientId").to_owned();
    let out = cli.run(
        &admin,
        &[
            "identity",
            "credential",
            "add",
            "--principal",
            &object_id,
            "--secret",
            "--output",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown this once"));
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = text(&added, "password").to_owned();
    assert!(secret.len() >= 32, "a generated secret is long");
    // The secret is shown once: never again, not in the principal.
    let shown = cli.ok(
        &admin,
        &["identity", "principal", "show", "--id", &client_id],
    );
    assert!(shown.contains(&object_id));
    assert!(!shown.contains(&secret), "{shown}");

    // Two vaults; the principal may use secrets in the first only.
    for vault in ["kv-officer", "kv-other"] {
        cli.ok(
            &admin,
            &["vault", "create", "--name", vault, "--location", "home"],
        );
    }
    cli.ok(
        &admin,
        &[
            "secret", "set", "--vault", "kv-other", "--name", "theirs", "--value", "x",
        ],
    );
    let assignment = cli.json(
        &admin,
        &[
            "role",
            "assignment",
            "create",
            "--assignee",
            &object_id,
            "--role",
            "Key Vault Secrets Officer",
            "--scope",
            "/vaults/kv-officer",
        ],
    );
    assert_eq!(
        assignment["roleDefinitionName"],
        "Key Vault Secrets Officer"
    );
    assert_eq!(assignment["scope"], "/vaults/kv-officer");
    let listed = cli.json(
        &admin,
        &["role", "assignment", "list", "--assignee", &client_id],
    );
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // As the principal, with its client secret in the environment.
    let app_secret = Caller::Secret {
        tenant: "contoso",
        client_id: &client_id,
        secret: &secret,
    };
    cli.ok(
        &app_secret,
        &[
            "secret",
            "set",
            "--vault",
            "kv-officer",
            "--name",
            "db",
            "--value",
            "S3cret!",
        ],
    );
    let value = cli.ok(
        &app_secret,
        &[
            "secret",
            "show",
            "--vault",
            "kv-officer",
            "--name",
            "db",
            "--query",
            "value",
        ],
    );
    assert_eq!(value.trim(), "S3cret!");
    let refused = cli.fails(
        &app_secret,
        &[
            "secret", "set", "--vault", "kv-other", "--name", "db", "--value", "v",
        ],
    );
    assert!(refused.starts_with("error: (Forbidden) "), "{refused}");
    let refused = cli.fails(
        &app_secret,
        &["secret", "show", "--vault", "kv-other", "--name", "theirs"],
    );
    assert!(refused.starts_with("error: (Forbidden) "), "{refused}");
    // Not an administrator: the directory is off limits too.
    let refused = cli.fails(&app_secret, &["identity", "tenant", "list"]);
    assert!(refused.starts_with("error: (Forbidden) "), "{refused}");
    // A wrong secret is the token endpoint's refusal, and is not echoed.
    let wrong = Caller::Secret {
        tenant: "contoso",
        client_id: &client_id,
        secret: "not-the-s3cret",
    };
    let refused = cli.fails(&wrong, &["secret", "list", "--vault", "kv-officer"]);
    assert!(refused.starts_with("error: (invalid_client) "), "{refused}");
    assert!(!refused.contains("not-the-s3cret"), "{refused}");

    // `coffer login --secret-file`: later commands need no credential in the environment.
    let nobody = Caller::Nobody;
    let refused = cli.fails(&nobody, &["secret", "list", "--vault", "kv-officer"]);
    assert!(
        refused.starts_with("error: (MissingConfiguration) ") && refused.contains("COFFER_TOKEN"),
        "{refused}"
    );
    let secret_file = dir.path().join("app.secret");
    write_private(&secret_file, &format!("{secret}\n"));
    let login = cli.json(
        &nobody,
        &[
            "login",
            "--tenant",
            "contoso",
            "--client-id",
            &client_id,
            "--secret-file",
            secret_file.to_str().unwrap(),
        ],
    );
    assert_eq!(login["clientId"], client_id.as_str());
    assert_eq!(login["objectId"], object_id.as_str());
    assert_eq!(login["tenant"], "contoso");
    assert!(login["expiresOn"].is_string(), "{login}");
    let token_file = config_dir.join("token.json");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    let access_token = text(&saved, "access_token").to_owned();
    assert!(
        !login.to_string().contains(&access_token),
        "login never prints the token"
    );
    assert!(
        !std::fs::read_to_string(&token_file)
            .unwrap()
            .contains(&secret)
    );
    let value = cli.ok(
        &nobody,
        &[
            "secret",
            "show",
            "--vault",
            "kv-officer",
            "--name",
            "db",
            "--query",
            "value",
        ],
    );
    assert_eq!(value.trim(), "S3cret!");
    let refused = cli.fails(
        &nobody,
        &["secret", "show", "--vault", "kv-other", "--name", "theirs"],
    );
    assert!(refused.starts_with("error: (Forbidden) "), "{refused}");
    // COFFER_TOKEN still comes first: the admin sees the other vault while a login is saved.
    cli.ok(
        &admin,
        &["secret", "show", "--vault", "kv-other", "--name", "theirs"],
    );
    cli.ok(&nobody, &["logout"]);
    assert!(!token_file.exists());
    cli.ok(&nobody, &["logout"]);
    let refused = cli.fails(&nobody, &["secret", "list", "--vault", "kv-officer"]);
    assert!(refused.contains("COFFER_TOKEN"), "{refused}");

    // `coffer login --cert --key`: a registered certificate's key signs the client assertion.
    let cert = dir.path().join("app.pem");
    let key = dir.path().join("app.key");
    let issued = cli.run(
        &nobody,
        &[
            "operator",
            "cert",
            "issue-node",
            "--new-ca",
            "--ca-cert",
            dir.path().join("ca.pem").to_str().unwrap(),
            "--ca-key",
            dir.path().join("ca.key").to_str().unwrap(),
            "--id",
            "1",
            "--name",
            "ecotracker-app",
            "--cert-out",
            cert.to_str().unwrap(),
            "--key-out",
            key.to_str().unwrap(),
        ],
    );
    assert!(issued.status.success(), "{issued:?}");
    let cert_login = [
        "login",
        "--tenant",
        "contoso",
        "--client-id",
        &client_id,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    // Not registered yet: the endpoint refuses the assertion.
    let refused = cli.fails(&nobody, &cert_login);
    assert!(refused.starts_with("error: (invalid_client) "), "{refused}");
    let added = cli.json(
        &admin,
        &[
            "identity",
            "credential",
            "add",
            "--principal",
            &client_id,
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    assert_eq!(added["type"], "certificate");
    assert!(added.get("password").is_none());
    cli.ok(&nobody, &cert_login);
    let value = cli.ok(
        &nobody,
        &[
            "secret",
            "show",
            "--vault",
            "kv-officer",
            "--name",
            "db",
            "--query",
            "value",
        ],
    );
    assert_eq!(value.trim(), "S3cret!");
    // Removing the certificate stops further logins with it.
    cli.ok(
        &admin,
        &[
            "identity",
            "credential",
            "remove",
            "--principal",
            &object_id,
            "--credential",
            text(&added, "credentialId"),
        ],
    );
    let refused = cli.fails(&nobody, &cert_login);
    assert!(refused.starts_with("error: (invalid_client) "), "{refused}");
    cli.ok(&nobody, &["logout"]);

    // Access policies, on a vault switched away from RBAC.
    cli.ok(
        &admin,
        &[
            "vault",
            "create",
            "--name",
            "kv-policies",
            "--location",
            "home",
        ],
    );
    let vault = cli.json(
        &admin,
        &[
            "vault",
            "update",
            "--name",
            "kv-policies",
            "--enable-rbac-authorization",
            "false",
        ],
    );
    assert_eq!(vault["enableRbacAuthorization"], false);
    let set_secret = [
        "secret",
        "set",
        "--vault",
        "kv-policies",
        "--name",
        "p",
        "--value",
        "v",
    ];
    let refused = cli.fails(&app_secret, &set_secret);
    assert!(refused.starts_with("error: (Forbidden) "), "{refused}");
    // By client id: the policy is keyed by the object id it resolves to.
    let policy = cli.json(
        &admin,
        &[
            "policy",
            "set",
            "--vault",
            "kv-policies",
            "--object-id",
            &client_id,
            "--secret-permissions",
            "get",
            "list",
            "set",
        ],
    );
    assert_eq!(policy["objectId"], object_id.as_str());
    assert_eq!(policy["tenantId"], "contoso");
    assert_eq!(
        policy["permissions"]["secrets"],
        serde_json::json!(["get", "list", "set"])
    );
    cli.ok(&app_secret, &set_secret);
    // A second set changes only the kinds it names.
    cli.ok(
        &admin,
        &[
            "policy",
            "set",
            "--vault",
            "kv-policies",
            "--object-id",
            &object_id,
            "--key-permissions",
            "get",
        ],
    );
    let policies = cli.json(&admin, &["policy", "list", "--vault", "kv-policies"]);
    let policies = policies.as_array().unwrap();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert_eq!(policies[0]["objectId"], object_id.as_str());
    assert_eq!(
        policies[0]["permissions"]["secrets"],
        serde_json::json!(["get", "list", "set"])
    );
    assert_eq!(
        policies[0]["permissions"]["keys"],
        serde_json::json!(["get"])
    );
    cli.ok(
        &admin,
        &[
            "policy",
            "delete",
            "--vault",
            "kv-policies",
            "--object-id",
            &object_id,
        ],
    );
    let policies = cli.json(&admin, &["policy", "list", "--vault", "kv-policies"]);
    assert_eq!(policies, serde_json::json!([]));
    let refused = cli.fails(&app_secret, &set_secret);
    assert!(refused.starts_with("error: (Forbidden) "), "{refused}");
}
