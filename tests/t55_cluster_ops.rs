//! Operating a cluster: learners and bounded-stale reads, membership changes and their
//! guards, whole-cluster snapshot save and restore.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use coffer_client::proto::{CreateVaultRequest, JoinPeerRequest};
use coffer_client::{ClientError, CofferClient};
use coffer_testkit::{TestCluster, ops};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

async fn create_vault(client: &CofferClient, name: &str) {
    ops::create_vault(client, name).await.unwrap();
}

async fn set(client: &CofferClient, name: &str, value: &str) {
    ops::set_secret(client, "kv1", name, value).await.unwrap();
}

async fn get(client: &CofferClient, name: &str) -> Result<String, ClientError> {
    ops::secret_value(client, "kv1", name)
        .await
        .map(|v| v.unwrap_or_default())
}

/// Waits until `check` holds for the peers `client` reports.
async fn wait_for_peers(
    cluster: &TestCluster,
    client: &CofferClient,
    what: &str,
    check: impl Fn(&[coffer_client::proto::Peer]) -> bool,
) -> Vec<coffer_client::proto::Peer> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(peers) = client.list_peers().await
            && check(&peers)
        {
            return peers;
        }
        if Instant::now() > until {
            let logs: Vec<String> = cluster
                .ids()
                .iter()
                .map(|id| format!("--- node {id} ---\n{}", cluster.log(*id)))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_serves_bounded_stale_reads_and_refuses_data_older_than_the_bound() {
    let cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &["--learners", "1"])
        .await
        .unwrap();
    let voters: Vec<u64> = cluster
        .nodes
        .iter()
        .filter(|n| !n.learner)
        .map(|n| n.id)
        .collect();
    let learner = cluster.nodes.iter().find(|n| n.learner).unwrap().id;
    let client = cluster.client(&voters).await.unwrap();
    let peers = wait_for_peers(&cluster, &client, "the learner to join", |p| p.len() == 4).await;
    let entry = peers.iter().find(|p| p.id == learner).unwrap();
    assert!(!entry.voter, "{peers:?}");
    assert_eq!(peers.iter().filter(|p| p.voter).count(), 3);

    create_vault(&client, "kv1").await;
    set(&client, "a", "one").await;
    let at_learner = cluster
        .client(&[learner])
        .await
        .unwrap()
        .with_failover_deadline(Duration::from_secs(3));
    // Linearizable through the learner: it asks the leader for the read index.
    assert_eq!(get(&at_learner, "a").await.unwrap(), "one");
    let stale_ok = at_learner
        .clone()
        .with_max_staleness(Duration::from_secs(60));
    assert_eq!(get(&stale_ok, "a").await.unwrap(), "one");

    cluster.mesh.isolate(learner);
    set(&client, "a", "two").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Within a generous bound, the learner's older copy is what was asked for.
    assert_eq!(get(&stale_ok, "a").await.unwrap(), "one");
    // Beyond a tight bound, and for a linearizable read, it refuses rather than serve it.
    let tight = at_learner
        .clone()
        .with_max_staleness(Duration::from_millis(500));
    assert_eq!(
        get(&tight, "a").await.unwrap_err().code(),
        "ServiceUnavailable"
    );
    assert_eq!(
        get(&at_learner, "a").await.unwrap_err().code(),
        "ServiceUnavailable"
    );

    cluster.mesh.heal();
    let healed = at_learner.with_failover_deadline(Duration::from_secs(20));
    assert_eq!(get(&healed, "a").await.unwrap(), "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_are_guarded_by_region_spread_and_quorum() {
    let mut cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &["--learners", "1"])
        .await
        .unwrap();
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    wait_for_peers(&cluster, &client, "the learner to join", |p| p.len() == 4).await;
    let spec = cluster.spec(4).clone();
    assert_eq!(spec.region, "eastus");

    // Removing the learner, then adding it back through the operator API.
    let peers = client.remove_peer(4, false).await.unwrap();
    assert_eq!(peers.len(), 3);
    let peers = client
        .join_peer(JoinPeerRequest {
            id: 4,
            address: spec.cluster.to_string(),
            region: spec.region.clone(),
            learner: false,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(peers.iter().filter(|p| p.voter).count(), 4, "{peers:?}");

    // Voters 1 (eastus), 2 (westus), 3 (centralus), 4 (eastus): without 2, eastus would hold
    // two of three voters.
    let refused = client.remove_peer(2, false).await.unwrap_err();
    assert_eq!(refused.code(), "BadParameter");
    assert!(
        refused
            .to_string()
            .contains("region eastus would hold 2 of 3"),
        "{refused}"
    );

    client.transfer_leader(4).await.unwrap();
    let peers = client.list_peers().await.unwrap();
    assert!(peers.iter().any(|p| p.id == 4 && p.leader), "{peers:?}");

    // With node 3 down, removing node 1 leaves voters 2, 3, 4 of which two answer: allowed.
    // Removing node 2 as well would leave 3 and 4 with only 4 answering: refused, since the
    // change could never commit and the group would be stuck until 3 returned.
    cluster.kill(3);
    // The leader counts a voter as answering if it acknowledged one of the last few heartbeats.
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.remove_peer(1, true).await.unwrap();
    let refused = client.remove_peer(2, true).await.unwrap_err();
    assert!(
        refused.to_string().contains("not answering: 3"),
        "{refused}"
    );
    let peers = client.list_peers().await.unwrap();
    eprintln!("{peers:?}");
    if let Err(e) = client
        .create_vault(CreateVaultRequest {
            name: "kv1".into(),
            location: "eastus".into(),
            ..Default::default()
        })
        .await
    {
        let logs: Vec<String> = [2u64, 4]
            .iter()
            .map(|id| format!("--- node {id} ---\n{}", cluster.log(*id)))
            .collect();
        panic!(
            "the cluster does not take writes after the changes: {e}\n{}",
            logs.join("\n")
        );
    }
    set(&client, "a", "still-writable").await;
    assert_eq!(get(&client, "a").await.unwrap(), "still-writable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_snapshot_restores_into_a_new_cluster_with_the_same_root_key_only() {
    let cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let client = cluster.client(&cluster.ids()).await.unwrap();
    create_vault(&client, "kv1").await;
    set(&client, "a", "first").await;
    set(&client, "a", "second").await;
    set(&client, "b", "bee").await;

    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("cl.snap");
    std::fs::write(&snap, client.save_snapshot().await.unwrap()).unwrap();

    // A new node with the same root key takes the snapshot through the CLI.
    let data = work.path().join("same-key");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(cluster.dir().join("root.key"), data.join("root.key")).unwrap();
    let target = common::DevServer::start(&data);
    let out = target.json(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        "--in",
        snap.to_str().unwrap(),
    ]);
    assert_eq!(out["vaults"], 1);
    assert_eq!(
        target
            .ok(&[
                "secret", "show", "--vault", "kv1", "--name", "a", "--query", "value"
            ])
            .trim(),
        "second"
    );
    assert_eq!(
        target
            .ok(&[
                "secret", "show", "--vault", "kv1", "--name", "b", "--query", "value"
            ])
            .trim(),
        "bee"
    );
    let versions = target.json(&["secret", "list-versions", "--vault", "kv1", "--name", "a"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    // Not twice: the target now holds vaults.
    let again = target.fails(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        "--in",
        snap.to_str().unwrap(),
    ]);
    assert!(again.contains("already holds vaults"), "{again}");

    // A node with another root key refuses before writing anything.
    let other = common::DevServer::start(&work.path().join("other-key"));
    let refused = other.fails(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        "--in",
        snap.to_str().unwrap(),
    ]);
    assert!(refused.contains("another root key"), "{refused}");
    assert!(
        other
            .json(&["vault", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A damaged snapshot is refused.
    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 3;
    bytes.truncate(last);
    let cut = work.path().join("cut.snap");
    std::fs::write(&cut, bytes).unwrap();
    let refused = other.fails(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        "--in",
        cut.to_str().unwrap(),
    ]);
    assert!(refused.contains("damaged"), "{refused}");
}

/// A write through a follower seals with the follower's copy of the vault (no read-index round
/// trip). When that copy is of a vault deleted and created again since, the state machine
/// refuses the value, and the write is sealed again for the current vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sealed_for_a_stale_vault_copy_is_sealed_again_for_the_current_vault() {
    let cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    create_vault(&client, "kv1").await;
    let leader = cluster.leader(&all, Duration::from_secs(10)).await.unwrap();
    let follower = *all.iter().find(|id| **id != leader).unwrap();
    let at_leader = cluster.client(&[leader]).await.unwrap();
    let at_follower = cluster.client(&[follower]).await.unwrap();
    set(&at_follower, "a", "old").await;

    // The follower stops receiving the log (it can still reach the leader), keeps its copy of
    // the first kv1, and the vault is deleted, purged and created again.
    cluster
        .mesh
        .link(leader, follower)
        .set_mode(coffer_testkit::Mode::Blackhole);
    at_leader.delete_vault("kv1").await.unwrap();
    at_leader.purge_deleted_vault("kv1").await.unwrap();
    create_vault(&at_leader, "kv1").await;
    let writer =
        tokio::spawn(async move { ops::set_secret(&at_follower, "kv1", "a", "new").await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.mesh.heal();
    writer.await.unwrap().unwrap();
    assert_eq!(get(&at_leader, "a").await.unwrap(), "new");
    let versions = at_leader.list_secret_versions("kv1", "a").await.unwrap();
    assert_eq!(
        versions.len(),
        1,
        "only the write into the new vault exists"
    );
}
