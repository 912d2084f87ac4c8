//! The official Python Azure Key Vault clients (`azure-keyvault-secrets`, `azure-keyvault-keys`,
//! with `azure-identity`'s `ClientSecretCredential`) against a real dev node over its REST API,
//! unchanged: TLS verified against the node's CA, the challenge resource verified, the vault
//! addressed by host. The scenarios are in tests/python/keyvault_sdk.py; each step prints
//! "ok …" and the script fails on the first wrong answer.
//!
//! Needs the Python environment of `scripts/install-python-deps` (`.ci/run` creates it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::{DevServer, assert_steps, sdk_steps};

/// Runs one scenario of keyvault_sdk.py against `vault` and returns the steps it reported.
fn sdk(server: &DevServer, vault: &str, scenario: &str, extra: &[(&str, &str)]) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/keyvault_sdk.py");
    let mut cmd = server.sdk_command(common::python_interpreter(), vault);
    cmd.arg(script)
        .arg(scenario)
        .env("COFFER_AUTHORITY", &server.addr)
        .envs(extra.iter().copied());
    sdk_steps(cmd, scenario)
}

fn metric(server: &DevServer, prefix: &str) -> f64 {
    let (status, text) = server.https_get("/metrics");
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_python_sdks_work_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("node"));
    for vault in ["py-secrets", "py-keys", "py-errors", "py-denied"] {
        server.ok(&["vault", "create", "--name", vault, "--location", "eastus"]);
    }

    let steps = sdk(&server, "py-secrets", "secrets", &[]);
    assert_steps(
        &steps,
        &[
            "set two versions",
            "ids use the vault url",
            "get latest",
            "get by version",
            "list follows nextLink past 25",
            "max_page_size pages",
            "list versions",
            "update properties",
            "a disabled version is forbidden",
            "soft delete",
            "get deleted",
            "list deleted",
            "a deleted name cannot be set",
            "recover",
            "purged is gone",
            "backup and restore",
        ],
    );

    let steps = sdk(&server, "py-keys", "keys", &[]);
    assert_steps(
        &steps,
        &[
            "create rsa and ec",
            "get key",
            "list keys",
            "rotate",
            "list key versions",
            "update key",
            "encrypt/decrypt",
            "wrap/unwrap",
            "sign/verify rs256",
            "tampered signature fails",
            "sign/verify es256",
            "import",
            "rotation policy",
            "random bytes",
            "backup and restore key",
            "delete key",
            "get deleted key",
            "list deleted keys",
            "recover key",
            "purged key is gone",
        ],
    );

    let steps = sdk(&server, "py-errors", "errors", &[]);
    assert_steps(
        &steps,
        &[
            "an invalid name",
            "a missing secret",
            "a missing key",
            "a bad key size",
            "purging what is not deleted",
        ],
    );

    // Every api-version the SDKs know, each client pinned to one.
    let steps = sdk(&server, "py-errors", "versions", &[]);
    let secret_versions = [
        "2026-04-01",
        "2025-07-01",
        "7.6",
        "7.5",
        "7.4",
        "7.3",
        "7.2",
        "7.1",
        "7.0",
        "2016-10-01",
    ];
    let expected: Vec<String> = secret_versions
        .iter()
        .map(|v| format!("secrets api-version {v}"))
        .chain(
            secret_versions[1..]
                .iter()
                .map(|v| format!("keys api-version {v}")),
        )
        .collect();
    assert_steps(
        &steps,
        &expected.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    server.ok(&[
        "vault",
        "update",
        "--name",
        "py-denied",
        "--default-action",
        "Deny",
    ]);
    let steps = sdk(&server, "py-denied", "firewalled", &[]);
    assert_steps(
        &steps,
        &["firewall refuses", "inner code ForbiddenByFirewall"],
    );

    // A workload on the node with the dev managed identity (a Key Vault Secrets User): the
    // SDK's ManagedIdentityCredential through the node's managed-identity endpoint.
    server.ok(&[
        "secret",
        "set",
        "--vault",
        "py-errors",
        "--name",
        "shared",
        "--value",
        "for readers",
    ]);
    let endpoint = server.env_value("IDENTITY_ENDPOINT");
    let header = server.env_value("IDENTITY_HEADER");
    let steps = sdk(
        &server,
        "py-errors",
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

    // Every operation went through the REST API and was audited under its Azure name.
    let operations: std::collections::BTreeSet<String> = server
        .audit_lines()
        .iter()
        .filter_map(|r| r["operationName"].as_str().map(str::to_owned))
        .collect();
    for op in [
        "SecretSet",
        "SecretListVersions",
        "SecretRecover",
        "SecretPurge",
        "SecretRestore",
        "KeyDecrypt",
        "KeyUnwrap",
        "KeySign",
        "KeyRotationPolicySet",
        "VaultGetRandomBytes",
        "KeyRestore",
    ] {
        assert!(operations.contains(op), "{op} not audited: {operations:?}");
    }
}

#[test]
fn the_python_sdk_retry_policy_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("node"));
    server.ok(&[
        "vault",
        "create",
        "--name",
        "py-busy",
        "--location",
        "eastus",
    ]);
    server.ok(&[
        "secret",
        "set",
        "--vault-name",
        "py-busy",
        "--name",
        "hot",
        "--value",
        "v",
    ]);
    let (rate, burst, calls) = (4.0, 4.0, 20.0);
    server.ok(&[
        "vault", "throttle", "set", "--name", "py-busy", "--class", "secrets", "--rate", "4",
        "--burst", "4",
    ]);
    let started = Instant::now();
    let steps = sdk(
        &server,
        "py-busy",
        "throttled",
        &[("COFFER_SECRET_NAME", "hot"), ("COFFER_CALLS", "20")],
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        steps.iter().any(|s| s.starts_with("ok throttled calls=20")),
        "{steps:?}"
    );
    // Every call succeeded, yet the vault admits `rate` a second after its burst: the SDK met
    // 429s and waited them out as Retry-After asked.
    let throttled = metric(
        &server,
        "coffer_gateway_throttled_requests_total{vault=\"py-busy\"",
    );
    assert!(throttled >= 1.0, "no 429 was ever sent");
    let least = (calls - burst) / rate;
    assert!(
        elapsed >= least * 0.8,
        "{calls} calls took {elapsed:.2} s, less than the limit allows ({least:.2} s)"
    );
    let gets: Vec<serde_json::Value> = server
        .audit_lines()
        .into_iter()
        .filter(|r| r["operationName"] == "SecretGet" && r["vault"] == "py-busy")
        .collect();
    let refused = gets
        .iter()
        .filter(|r| r["resultCode"] == "Throttled")
        .count();
    assert_eq!(refused as f64, throttled);
    // The SDK waited as long as each 429's Retry-After asked (azure-core prefers it, in whole
    // seconds, to x-ms-retry-after-ms), not its own first backoff of 0.8 s: the median time
    // from a 429 to the next attempt, less the wait asked for, is small.
    let at = |r: &serde_json::Value| {
        time::OffsetDateTime::parse(
            r["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let mut excess: Vec<f64> = gets
        .windows(2)
        .filter(|w| w[0]["resultCode"] == "Throttled")
        .map(|w| {
            let gap = (at(&w[1]) - at(&w[0])).as_seconds_f64() * 1_000.0;
            let asked_ms = w[0]["retryAfterMs"]
                .as_u64()
                .expect("a 429 records its wait");
            gap - (asked_ms.div_ceil(1_000).max(1) * 1_000) as f64
        })
        .collect();
    excess.sort_by(f64::total_cmp);
    let median = excess[excess.len() / 2];
    assert!(
        (-50.0..400.0).contains(&median),
        "median wait beyond Retry-After: {median:.0} ms ({excess:?})"
    );
}

/// The README's Python example, as printed there, against a dev node (only the node's address
/// replaces 127.0.0.1:8443, and vault host names resolve to loopback).
#[test]
fn the_readme_python_example_runs() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = readme
        .split_once("### The Azure SDKs")
        .expect("README has the SDK section")
        .1;
    let example = section
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a python block")
        .0;
    assert!(example.lines().count() <= 12, "{example}");
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("node"));
    server.ok(&[
        "vault",
        "create",
        "--name",
        "ecotracker-kv",
        "--location",
        "eastus",
    ]);
    let program = format!(
        "import socket\n\
         real = socket.getaddrinfo\n\
         socket.getaddrinfo = lambda h, *a, **k: real('127.0.0.1' if isinstance(h, str) \
         and h.endswith('.vault.coffer.localhost') else h, *a, **k)\n{}",
        example.replace("127.0.0.1:8443", &server.addr)
    );
    let mut cmd = Command::new(common::python_interpreter());
    cmd.arg("-c").arg(program).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("COFFER_CA_CERT", &server.ca_cert);
    for key in [
        "COFFER_TENANT",
        "COFFER_CLIENT_ID",
        "COFFER_CLIENT_SECRET",
        "COFFER_DNS_SUFFIX",
    ] {
        cmd.env(key, server.env_value(key));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "S3cret!");
    let value = server.ok(&[
        "secret",
        "show",
        "--vault",
        "ecotracker-kv",
        "--name",
        "sqldb-password",
        "--query",
        "value",
    ]);
    assert_eq!(value.trim(), "S3cret!");
}
