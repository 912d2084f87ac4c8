//! The official Rust Azure Key Vault crates (`azure_security_keyvault_secrets`,
//! `azure_security_keyvault_keys`, `azure_identity`) against a real dev node over its REST API:
//! TLS verified against the node's CA, the challenge resource verified, the vault addressed by
//! host. The scenarios are the program in tests/rust-sdk (a crate of its own, outside the
//! workspace, so the Azure crates stay out of Coffer's dependency graph); scripts/verify builds
//! it, and this test builds it again (a no-op then) to find it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::{DevServer, assert_steps, sdk_steps};

/// Builds tests/rust-sdk (locked) and returns its executable.
fn check_program() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rust-sdk/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--message-format=json",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "building tests/rust-sdk failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the rust-sdk-check executable")
}

/// Runs one scenario against `vault` and returns the steps it reported.
fn sdk(
    program: &PathBuf,
    server: &DevServer,
    vault: &str,
    scenario: &str,
    extra: &[(&str, &str)],
) -> Vec<String> {
    let mut cmd = server.sdk_command(program, vault);
    cmd.arg(scenario)
        .env("COFFER_CONNECT", &server.addr)
        .env("COFFER_AUTHORITY", format!("https://{}", server.addr))
        .envs(extra.iter().copied());
    sdk_steps(cmd, scenario)
}

#[test]
fn the_rust_sdks_work_unchanged() {
    let program = check_program();
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("node"));
    for vault in ["rs-secrets", "rs-keys", "rs-errors", "rs-busy"] {
        server.ok(&["vault", "create", "--name", vault, "--location", "eastus"]);
    }

    let steps = sdk(&program, &server, "rs-secrets", "secrets", &[]);
    assert_steps(
        &steps,
        &[
            "set two versions",
            "get latest",
            "get by version",
            "list follows nextLink past 25",
            "maxresults pages",
            "list versions",
            "update properties",
            "a disabled version is forbidden",
            "soft delete",
            "list deleted",
            "a deleted name cannot be set",
            "recover",
            "purged is gone",
            "backup and restore",
        ],
    );

    let steps = sdk(&program, &server, "rs-keys", "keys", &[]);
    assert_steps(
        &steps,
        &[
            "create rsa and ec",
            "get key",
            "list keys",
            "rotate",
            "list key versions",
            "encrypt/decrypt",
            "wrap/unwrap",
            "sign/verify rs256",
            "sign/verify es256",
            "import",
            "rotation policy",
            "random bytes",
            "backup and restore key",
            "delete key",
            "list deleted keys",
            "recover key",
            "purged key is gone",
        ],
    );
    // The Rust client has no local cryptography: every operation reached the node.
    let operations: std::collections::BTreeSet<String> = server
        .audit_lines()
        .iter()
        .filter(|r| r["vault"] == "rs-keys" && r["resultCode"] == "OK")
        .filter_map(|r| r["operationName"].as_str().map(str::to_owned))
        .collect();
    for op in [
        "KeyEncrypt",
        "KeyDecrypt",
        "KeyWrap",
        "KeyUnwrap",
        "KeySign",
        "KeyVerify",
    ] {
        assert!(operations.contains(op), "{op} not audited: {operations:?}");
    }

    let steps = sdk(&program, &server, "rs-errors", "errors", &[]);
    assert_steps(
        &steps,
        &["an invalid name", "a missing secret", "a missing key"],
    );

    // ManagedIdentityCredential through the node's managed-identity endpoint; the dev
    // managed identity is a Key Vault Secrets User.
    server.ok(&[
        "secret",
        "set",
        "--vault",
        "rs-errors",
        "--name",
        "shared",
        "--value",
        "for readers",
    ]);
    let endpoint = server.env_value("IDENTITY_ENDPOINT");
    let header = server.env_value("IDENTITY_HEADER");
    let steps = sdk(
        &program,
        &server,
        "rs-errors",
        "read",
        &[
            ("COFFER_CREDENTIAL", "managed-identity"),
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", &header),
            ("COFFER_SECRET_NAME", "shared"),
            ("COFFER_EXPECTED", "for readers"),
        ],
    );
    assert_steps(&steps, &["read", "a reader may not write"]);

    // The SDK's retry policy waits out 429s: every call succeeds at 4/s with a burst of 4.
    server.ok(&[
        "secret", "set", "--vault", "rs-busy", "--name", "hot", "--value", "v",
    ]);
    server.ok(&[
        "vault", "throttle", "set", "--name", "rs-busy", "--class", "secrets", "--rate", "4",
        "--burst", "4",
    ]);
    let started = Instant::now();
    let steps = sdk(
        &program,
        &server,
        "rs-busy",
        "throttled",
        &[("COFFER_SECRET_NAME", "hot"), ("COFFER_CALLS", "20")],
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        steps.iter().any(|s| s.starts_with("ok throttled calls=20")),
        "{steps:?}"
    );
    let throttled = server
        .audit_lines()
        .iter()
        .filter(|r| r["vault"] == "rs-busy" && r["resultCode"] == "Throttled")
        .count();
    assert!(throttled >= 1, "no 429 was ever sent");
    assert!(
        elapsed >= (20.0 - 4.0) / 4.0 * 0.8,
        "20 calls took {elapsed:.2} s"
    );
}
