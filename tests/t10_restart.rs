//! Data survives a restart, clean or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::DevServer;

fn write_some(server: &DevServer) {
    server.ok(&[
        "vault",
        "create",
        "--name",
        "persist-kv",
        "--location",
        "eastus",
    ]);
    for i in 0..5 {
        server.ok(&[
            "secret",
            "set",
            "--vault",
            "persist-kv",
            "--name",
            &format!("s{i}"),
            "--value",
            &format!("value-{i}"),
        ]);
    }
}

fn check_all(server: &DevServer) {
    for i in 0..5 {
        let got = server.ok(&[
            "secret",
            "show",
            "--vault",
            "persist-kv",
            "--name",
            &format!("s{i}"),
            "--query",
            "value",
        ]);
        assert_eq!(got.trim(), format!("value-{i}"));
    }
}

#[test]
fn acknowledged_writes_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = DevServer::start(&data);
    write_some(&server);
    server.crash();

    let server = DevServer::start(&data);
    check_all(&server);
    // The admin token from the first start still works, and new writes succeed.
    server.ok(&[
        "secret",
        "set",
        "--vault",
        "persist-kv",
        "--name",
        "after",
        "--value",
        "x",
    ]);
}

#[test]
fn data_survives_a_clean_restart_and_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    // Snapshots every 3 entries, so the log before the last snapshot is purged and the
    // restart works from the state machine, the snapshot file and a log tail.
    let mut server = DevServer::start_with(&data, &["--snapshot-every", "3"]);
    write_some(&server);
    server.stop();
    let snapshots: Vec<_> = std::fs::read_dir(data.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "one current snapshot file: {snapshots:?}"
    );

    let server = DevServer::start_with(&data, &["--snapshot-every", "3"]);
    check_all(&server);
    let versions = server.json(&["secret", "list", "--vault", "persist-kv"]);
    assert_eq!(versions.as_array().unwrap().len(), 5);
}
