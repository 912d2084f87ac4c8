//! The foundation's user journey, through the real CLI against a real dev server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{DevServer, version_of};

#[test]
fn vault_and_secret_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("dev1"));
    let v = "ecotracker-kv";

    let created = server.json(&["vault", "create", "--name", v, "--location", "eastus"]);
    assert_eq!(created["name"], v);
    assert_eq!(created["location"], "eastus");
    assert_eq!(created["retentionDays"], 90);

    server.ok(&[
        "secret",
        "set",
        "--vault",
        v,
        "--name",
        "sqldb-password",
        "--value",
        "S3cret!",
        "--content-type",
        "text/plain",
        "--expires",
        "2027-01-01T00:00:00Z",
        "--tags",
        "env=prod",
    ]);
    assert_eq!(
        server
            .ok(&[
                "secret",
                "show",
                "--vault",
                v,
                "--name",
                "sqldb-password",
                "--query",
                "value"
            ])
            .trim(),
        "S3cret!"
    );

    let first = server.json(&["secret", "show", "--vault", v, "--name", "sqldb-password"]);
    assert_eq!(first["contentType"], "text/plain");
    assert_eq!(first["tags"]["env"], "prod");
    assert_eq!(first["attributes"]["enabled"], true);
    assert!(
        first["attributes"]["expires"]
            .as_str()
            .unwrap()
            .starts_with("2027-01-01T00:00:00")
    );
    assert_eq!(
        first["attributes"]["recoveryLevel"],
        "Recoverable+Purgeable"
    );
    let first_version = version_of(first["id"].as_str().unwrap());
    assert_eq!(first_version.len(), 32);

    // A new version from a file.
    let file = dir.path().join("new.txt");
    std::fs::write(&file, "rotated-value-2").unwrap();
    server.ok(&[
        "secret",
        "set",
        "--vault",
        v,
        "--name",
        "sqldb-password",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        server
            .ok(&[
                "secret",
                "show",
                "--vault",
                v,
                "--name",
                "sqldb-password",
                "--query",
                "value"
            ])
            .trim(),
        "rotated-value-2"
    );

    let versions = server.json(&[
        "secret",
        "list-versions",
        "--vault",
        v,
        "--name",
        "sqldb-password",
    ]);
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert!(
        versions.iter().all(|item| item.get("value").is_none()),
        "lists carry no values"
    );
    let ids: Vec<String> = versions
        .iter()
        .map(|item| version_of(item["id"].as_str().unwrap()))
        .collect();
    assert!(ids.contains(&first_version));

    // The first version is still readable by id.
    let old = server.ok(&[
        "secret",
        "show",
        "--vault",
        v,
        "--name",
        "sqldb-password",
        "--version",
        &first_version,
        "--query",
        "value",
    ]);
    assert_eq!(old.trim(), "S3cret!");

    // Disable the latest version: reads are refused with Forbidden/SecretDisabled.
    server.ok(&[
        "secret",
        "set-attributes",
        "--vault",
        v,
        "--name",
        "sqldb-password",
        "--enabled",
        "false",
    ]);
    let refused = server.fails(&["secret", "show", "--vault", v, "--name", "sqldb-password"]);
    assert!(
        refused.contains("Forbidden") || refused.contains("SecretDisabled"),
        "{refused}"
    );
    assert!(refused.contains("disabled"), "{refused}");
    // The older version is unaffected.
    server.ok(&[
        "secret",
        "show",
        "--vault",
        v,
        "--name",
        "sqldb-password",
        "--version",
        &first_version,
    ]);

    // Listing shows names and attributes, never values.
    server.ok(&[
        "secret",
        "set",
        "--vault",
        v,
        "--name",
        "api-key",
        "--value",
        "another-value-xyz",
    ]);
    let table = server.ok(&["secret", "list", "--vault", v]);
    assert!(
        table.contains("sqldb-password") && table.contains("api-key"),
        "{table}"
    );
    for value in ["S3cret!", "rotated-value-2", "another-value-xyz"] {
        assert!(!table.contains(value), "list shows a value: {table}");
    }
    let listed = server.json(&["secret", "list", "--vault", v]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("another-value-xyz"));

    // Vault list / show / update / delete.
    server.ok(&[
        "vault",
        "create",
        "--name",
        "second-kv",
        "--location",
        "westus",
        "--retention-days",
        "7",
    ]);
    let vaults = server.json(&["vault", "list"]);
    let names: Vec<&str> = vaults
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![v, "second-kv"]);
    let shown = server.json(&["vault", "show", "--name", "second-kv"]);
    assert_eq!(shown["retentionDays"], 7);
    let updated = server.json(&[
        "vault",
        "update",
        "--name",
        "second-kv",
        "--tags",
        "team=payments",
        "--purge-protection",
        "true",
    ]);
    assert_eq!(updated["tags"]["team"], "payments");
    assert_eq!(updated["purgeProtection"], true);
    let off = server.fails(&[
        "vault",
        "update",
        "--name",
        "second-kv",
        "--purge-protection",
        "false",
    ]);
    assert!(off.contains("BadParameter"), "{off}");
    server.ok(&["vault", "delete", "--name", "second-kv"]);
    let gone = server.fails(&["vault", "show", "--name", "second-kv"]);
    assert!(gone.contains("VaultNotFound"), "{gone}");
    let gone = server.fails(&["secret", "list", "--vault", "second-kv"]);
    assert!(gone.contains("VaultNotFound"), "{gone}");
    // The other vault is untouched.
    server.ok(&["secret", "show", "--vault", v, "--name", "api-key"]);
}

#[test]
fn names_are_case_insensitive_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("d"));
    server.ok(&[
        "vault",
        "create",
        "--name",
        "Case-KV",
        "--location",
        "eastus",
    ]);
    let dup = server.fails(&[
        "vault",
        "create",
        "--name",
        "case-kv",
        "--location",
        "eastus",
    ]);
    assert!(dup.contains("Conflict"), "{dup}");
    server.ok(&[
        "secret", "set", "--vault", "case-kv", "--name", "DbPass", "--value", "v1",
    ]);
    assert_eq!(
        server
            .ok(&[
                "secret", "show", "--vault", "CASE-KV", "--name", "dbpass", "--query", "value"
            ])
            .trim(),
        "v1"
    );
    let missing = server.fails(&["secret", "show", "--vault", "case-kv", "--name", "nope"]);
    assert!(missing.contains("SecretNotFound"), "{missing}");
    // Errors echo the name as the caller wrote it.
    let missing = server.fails(&[
        "secret",
        "set-attributes",
        "--vault",
        "case-kv",
        "--name",
        "NoSuchName",
        "--enabled",
        "false",
    ]);
    assert!(
        missing.contains("SecretNotFound") && missing.contains("NoSuchName"),
        "{missing}"
    );
    // Attributes update the same secret whatever the case of its name.
    server.ok(&[
        "secret",
        "set-attributes",
        "--vault",
        "case-kv",
        "--name",
        "DBPASS",
        "--content-type",
        "text/x",
    ]);
    let shown = server.json(&["secret", "show", "--vault", "case-kv", "--name", "DbPass"]);
    assert_eq!(shown["contentType"], "text/x");
}
