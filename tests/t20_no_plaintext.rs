//! A secret value is sealed before it reaches the Raft log: no file under the data directory
//! (Raft log, SST, WAL, manifest, snapshot, audit log) nor the server's log holds it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::DevServer;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_plaintext_value_in_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    // Snapshot often, so snapshot files exist and are scanned too; log everything, openraft's
    // trace output included, so the server log is scanned at its most talkative.
    let mut server = DevServer::start_logged(&data, &["--snapshot-every", "4"], "trace");
    let marker = "ZEBRA-7c1e4f0d-PLAINTEXT-MARKER";
    server.ok(&[
        "vault",
        "create",
        "--name",
        "scan-kv",
        "--location",
        "eastus",
    ]);
    for i in 0..6 {
        server.ok(&[
            "secret",
            "set",
            "--vault",
            "scan-kv",
            "--name",
            &format!("scanned-secret-{i}"),
            "--value",
            &format!("{marker}-{i}"),
        ]);
    }
    let big = dir.path().join("big.txt");
    std::fs::write(&big, format!("{marker}-big-").repeat(700)).unwrap();
    server.ok(&[
        "secret",
        "set",
        "--vault",
        "scan-kv",
        "--name",
        "scanned-big",
        "--file",
        big.to_str().unwrap(),
    ]);
    // The values are really there, through the API.
    let got = server.ok(&[
        "secret",
        "show",
        "--vault",
        "scan-kv",
        "--name",
        "scanned-secret-3",
        "--query",
        "value",
    ]);
    assert_eq!(got.trim(), format!("{marker}-3"));
    // A clean stop flushes memtables, so SST files hold the data as well as the WAL.
    server.stop();

    let mut files = Vec::new();
    files_under(&data, &mut files);
    files.push(data.with_extension("server.log"));
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".sst")),
        "SST files expected: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".log")),
        "WAL expected: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("MANIFEST")),
        "manifest expected: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".snap")),
        "snapshot expected: {names:?}"
    );

    let b64 = base64::engine::general_purpose::STANDARD.encode(marker.as_bytes());
    let mut scanned_bytes = 0;
    let mut name_seen = false;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        scanned_bytes += bytes.len();
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "plaintext value found in {}",
            file.display()
        );
        assert!(
            !contains(&bytes, &b64.as_bytes()[..20]),
            "base64 of the value found in {}",
            file.display()
        );
        // Positive control: secret names are not encrypted, so the scan must see them.
        name_seen |= contains(&bytes, b"scanned-secret-3");
    }
    assert!(
        name_seen,
        "the scan found no secret name either: it is not reading the files"
    );
    assert!(scanned_bytes > 10_000, "scanned only {scanned_bytes} bytes");
}
