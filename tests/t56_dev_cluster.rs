//! `coffer dev cluster` as a user runs it, node certificates from `coffer operator cert`, and
//! the mutual-TLS gate: a node whose certificate another CA signed is never admitted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_coffer");

/// Runs the CLI with the exports of `dir/dev.env`.
fn cli(dir: &Path, args: &[&str]) -> Output {
    let env = std::fs::read_to_string(dir.join("dev.env")).unwrap();
    let mut command = Command::new(BIN);
    for line in env.lines() {
        if let Some((key, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('='))
            && key != "PATH"
        {
            command.env(key, value);
        }
    }
    command.args(args).output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args);
    assert!(
        out.status.success(),
        "coffer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Alive and not a zombie waiting to be reaped.
fn pid_alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

#[test]
fn dev_cluster_starts_serves_fails_over_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cl");
    let mut child = Command::new(BIN)
        .args([
            "dev",
            "cluster",
            "--nodes",
            "3",
            "--regions",
            "eastus,westus,centralus",
            "--learners",
            "1",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("dev cluster of 4 nodes is up"), "{first}");

    let env = std::fs::read_to_string(data.join("dev.env")).unwrap();
    let addrs = env
        .lines()
        .find(|l| l.starts_with("export COFFER_ADDR="))
        .unwrap();
    assert_eq!(addrs.matches("https://").count(), 4, "{addrs}");
    assert_eq!(
        std::fs::metadata(data.join("dev.env"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let peers: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["operator", "raft", "list-peers", "--output", "json"],
    ))
    .unwrap();
    // The learner joins through node 1 shortly after start.
    let until = Instant::now() + Duration::from_secs(20);
    let mut peers = peers;
    while peers.as_array().unwrap().len() < 4 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        peers = serde_json::from_str(&ok(
            &data,
            &["operator", "raft", "list-peers", "--output", "json"],
        ))
        .unwrap();
    }
    let peers = peers.as_array().unwrap();
    assert_eq!(peers.len(), 4, "{peers:?}");
    assert_eq!(
        peers.iter().filter(|p| p["suffrage"] == "learner").count(),
        1
    );
    assert_eq!(peers.iter().filter(|p| p["leader"] == true).count(), 1);
    let regions: Vec<&str> = peers
        .iter()
        .map(|p| p["region"].as_str().unwrap())
        .collect();
    assert!(regions.contains(&"westus"), "{regions:?}");

    ok(
        &data,
        &["vault", "create", "--name", "kv1", "--location", "eastus"],
    );
    // Kill the first node in COFFER_ADDR: the CLI fails over to the next.
    let pid1 = std::fs::read_to_string(data.join("node1").join("coffer.pid")).unwrap();
    Command::new("kill")
        .args(["-9", pid1.trim()])
        .status()
        .unwrap();
    ok(
        &data,
        &[
            "secret", "set", "--vault", "kv1", "--name", "a", "--value", "v",
        ],
    );
    assert_eq!(
        ok(
            &data,
            &[
                "secret", "show", "--vault", "kv1", "--name", "a", "--query", "value"
            ]
        )
        .trim(),
        "v"
    );

    // An on-demand Raft snapshot lands in that node's snapshot directory.
    let taken: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["operator", "raft", "snapshot", "take", "--output", "json"],
    ))
    .unwrap();
    let node = taken["node"].as_u64().unwrap();
    assert!(taken["index"].as_u64().unwrap() >= 3, "{taken}");
    let snaps = std::fs::read_dir(
        data.join(format!("node{node}"))
            .join("data")
            .join("snapshots"),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "snap")
    })
    .count();
    assert_eq!(snaps, 1);

    let pids: Vec<String> = [2, 3, 4]
        .iter()
        .map(|i| std::fs::read_to_string(data.join(format!("node{i}")).join("coffer.pid")).unwrap())
        .collect();
    let stop = Command::new(BIN)
        .args(["dev", "cluster", "stop", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    for pid in &pids {
        assert!(!pid_alive(pid), "node {pid} still runs after stop");
    }
    // The foreground command notices that its nodes are gone and exits by itself.
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < until,
            "coffer dev cluster did not exit after stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_with_a_certificate_from_another_ca_is_never_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cl");
    let prepared = Command::new(BIN)
        .args([
            "dev",
            "cluster",
            "--prepare",
            "--nodes",
            "1",
            "--regions",
            "eastus",
            "--learners",
            "1",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(prepared.status.success());

    // Node 2 trusts the real cluster CA (so it can verify node 1) but presents a certificate
    // from a CA of its own, minted with the operator command: only node 1's check of client
    // certificates stands between it and the cluster.
    let rogue = dir.path().join("rogue");
    std::fs::create_dir_all(&rogue).unwrap();
    let issued = Command::new(BIN)
        .args([
            "operator",
            "cert",
            "issue-node",
            "--new-ca",
            "--id",
            "2",
            "--name",
            "127.0.0.1",
        ])
        .arg("--ca-cert")
        .arg(rogue.join("ca.pem"))
        .arg("--ca-key")
        .arg(rogue.join("ca.key"))
        .arg("--cert-out")
        .arg(rogue.join("node.pem"))
        .arg("--key-out")
        .arg(rogue.join("node.key"))
        .output()
        .unwrap();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    for key in ["ca.key", "node.key"] {
        let mode = std::fs::metadata(rogue.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let config_path = data.join("node2").join("coffer.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let node2 = data.join("node2");
    let config = config
        .replace(
            &node2
                .join("node.pem")
                .canonicalize()
                .unwrap()
                .display()
                .to_string(),
            &rogue.join("node.pem").display().to_string(),
        )
        .replace(
            &node2
                .join("node.key")
                .canonicalize()
                .unwrap()
                .display()
                .to_string(),
            &rogue.join("node.key").display().to_string(),
        );
    assert!(config.contains(&rogue.display().to_string()));
    std::fs::write(&config_path, config).unwrap();

    let start = |id: u64| {
        Command::new(BIN)
            .arg("server")
            .arg("--config")
            .arg(data.join(format!("node{id}")).join("coffer.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(data.join(format!("node{id}.log"))).unwrap(),
            ))
            .spawn()
            .unwrap()
    };
    let mut node1 = start(1);
    let mut node2 = start(2);
    // Node 2 keeps asking to join; give it several attempts.
    let until = Instant::now() + Duration::from_secs(8);
    let mut peers = serde_json::Value::Null;
    while Instant::now() < until {
        let out = cli(
            &data,
            &[
                "operator",
                "raft",
                "list-peers",
                "--output",
                "json",
                "--addr",
            ]
            .iter()
            .copied()
            .chain([format!("https://{}", node1_client(&data)).as_str()])
            .collect::<Vec<_>>(),
        );
        if out.status.success() {
            peers = serde_json::from_slice(&out.stdout).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = node1.kill();
    let _ = node2.kill();
    let _ = node1.wait();
    let _ = node2.wait();
    let peers = peers.as_array().expect("node 1 answered list-peers");
    assert_eq!(
        peers.len(),
        1,
        "a node with a foreign certificate was admitted: {peers:?}"
    );
    let log = std::fs::read_to_string(data.join("node2.log")).unwrap();
    assert!(log.contains("join request failed"), "{log}");
}

fn node1_client(data: &Path) -> String {
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("cluster.json")).unwrap()).unwrap();
    layout[0]["client"].as_str().unwrap().to_owned()
}
