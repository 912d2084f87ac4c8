//! Cluster fault tests: real `coffer server` processes on loopback, node-to-node traffic
//! through fault-injecting proxies (coffer-testkit), kill -9 and restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use coffer_client::proto::GetSecretRequest;
use coffer_client::{ClientError, CofferClient};
use coffer_testkit::{History, OpKind, Rng, TestCluster, ops, seed_from_env};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

async fn create_vault(client: &CofferClient, name: &str) {
    ops::create_vault(client, name).await.unwrap();
}

async fn set(
    client: &CofferClient,
    vault: &str,
    name: &str,
    value: &str,
) -> Result<(), ClientError> {
    ops::set_secret(client, vault, name, value).await
}

async fn get(
    client: &CofferClient,
    vault: &str,
    name: &str,
) -> Result<Option<String>, ClientError> {
    ops::secret_value(client, vault, name).await
}

/// Kills the leader of an `n`-node cluster: writes succeed again on the survivors, and the
/// restarted node rejoins and serves what it missed.
async fn leader_kill_and_rejoin(n: u64) {
    let mut cluster = TestCluster::start(bin(), n, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    create_vault(&client, "kv1").await;
    set(&client, "kv1", "a", "before").await.unwrap();
    let leader = cluster.leader(&all, Duration::from_secs(10)).await.unwrap();

    cluster.kill(leader);
    let started = Instant::now();
    set(&client, "kv1", "a", "after").await.unwrap();
    eprintln!(
        "write succeeded {:?} after the leader was killed",
        started.elapsed()
    );
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    let new_leader = cluster
        .leader(&survivors, Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(new_leader, leader);

    cluster.restart(leader).unwrap();
    // Asked of the restarted node alone: a linearizable read there must see the write it
    // missed while it was down.
    let only_restarted = cluster
        .client_of(leader, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        get(&only_restarted, "kv1", "a").await.unwrap().as_deref(),
        Some("after")
    );
    let peers = only_restarted.list_peers().await.unwrap();
    assert_eq!(peers.iter().filter(|p| p.voter).count() as u64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_leader_kill_and_the_restarted_node_rejoins() {
    leader_kill_and_rejoin(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_survive_a_leader_kill_and_the_restarted_node_rejoins() {
    leader_kill_and_rejoin(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_in_the_minority_refuses_and_the_majority_carries_on() {
    let cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    create_vault(&client, "kv1").await;
    set(&client, "kv1", "a", "one").await.unwrap();
    let leader = cluster.leader(&all, Duration::from_secs(10)).await.unwrap();
    let majority: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();

    cluster.mesh.partition(&[&[leader], &majority]);
    let minority = cluster
        .client_of(leader, Duration::from_secs(3))
        .await
        .unwrap();
    let refused = set(&minority, "kv1", "a", "lost").await.unwrap_err();
    assert_eq!(refused.code(), "ServiceUnavailable", "{refused}");
    let refused = get(&minority, "kv1", "a").await.unwrap_err();
    assert_eq!(
        refused.code(),
        "ServiceUnavailable",
        "a cut-off node must not serve stale data: {refused}"
    );

    let majority_client = cluster.client(&majority).await.unwrap();
    set(&majority_client, "kv1", "a", "two").await.unwrap();
    assert_eq!(
        get(&majority_client, "kv1", "a").await.unwrap().as_deref(),
        Some("two")
    );

    cluster.mesh.heal();
    let healed = cluster
        .client_of(leader, Duration::from_secs(20))
        .await
        .unwrap();
    match get(&healed, "kv1", "a").await {
        Ok(value) => assert_eq!(value.as_deref(), Some("two")),
        Err(e) => panic!(
            "the healed node does not serve: {e}\n--- its log ---\n{}",
            cluster.log(leader)
        ),
    }
    let versions = client.list_secret_versions("kv1", "a").await.unwrap();
    assert_eq!(
        versions.len(),
        2,
        "the refused write must not appear after healing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_over_three_regions_survive_losing_a_region() {
    let mut cluster = TestCluster::start(bin(), 5, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    create_vault(&client, "kv1").await;
    set(&client, "kv1", "a", "before").await.unwrap();
    let eastus: Vec<u64> = cluster
        .nodes
        .iter()
        .filter(|n| n.region == "eastus")
        .map(|n| n.id)
        .collect();
    assert_eq!(eastus.len(), 2);
    for id in &eastus {
        cluster.kill(*id);
    }
    set(&client, "kv1", "a", "after").await.unwrap();
    assert_eq!(
        get(&client, "kv1", "a").await.unwrap().as_deref(),
        Some("after")
    );
}

/// Clients write and read registers while nodes are killed, restarted and partitioned; every
/// acknowledged write must survive and the history must be linearizable.
async fn randomized_faults(faults: usize) {
    let seed = seed_from_env("COFFER_FAULT_SEED");
    eprintln!("replay with COFFER_FAULT_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let all = cluster.ids();
    let admin = cluster.client(&all).await.unwrap();
    create_vault(&admin, "kv1").await;

    let history = History::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    let keys = ["k1", "k2", "k3"];
    for worker in 0..4u64 {
        let client = cluster
            .client(&all)
            .await
            .unwrap()
            .with_failover_deadline(Duration::from_secs(5));
        let history = history.clone();
        let stop = stop.clone();
        let mut rng = Rng::new(seed ^ (worker + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        workers.push(tokio::spawn(async move {
            let mut next_value = worker * 1_000_000;
            let mut acknowledged = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = *rng.pick(&keys);
                if rng.chance(0.5) {
                    next_value += 1;
                    let token = history.invoke(worker, key, OpKind::Write(next_value));
                    match set(&client, "kv1", key, &next_value.to_string()).await {
                        Ok(()) => {
                            history.complete_write(token);
                            acknowledged.push((key, next_value));
                        }
                        // The write may or may not have been applied.
                        Err(_) => history.unknown(token),
                    }
                } else {
                    let token = history.invoke(worker, key, OpKind::Read(None));
                    match get(&client, "kv1", key).await {
                        Ok(value) => history.complete_read(
                            token,
                            value.map(|v| v.parse::<u64>().expect("values are numbers")),
                        ),
                        Err(_) => history.fail(token),
                    }
                }
            }
            acknowledged
        }));
    }

    for fault in 0..faults {
        let victim = *rng.pick(&all);
        match rng.below(3) {
            0 => {
                eprintln!("fault {fault}: kill -9 node {victim}");
                cluster.kill(victim);
                tokio::time::sleep(Duration::from_millis(300 + rng.below(1_200))).await;
                cluster.restart(victim).unwrap();
            }
            1 => {
                eprintln!("fault {fault}: isolate node {victim}");
                cluster.mesh.isolate(victim);
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1_500))).await;
                cluster.mesh.heal();
            }
            _ => {
                let delay = Duration::from_millis(5 + rng.below(40));
                eprintln!("fault {fault}: {delay:?} one-way latency around node {victim}");
                let others: Vec<u64> = all.iter().copied().filter(|id| *id != victim).collect();
                cluster.mesh.set_latency(&[victim], &others, delay);
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1_000))).await;
                cluster.mesh.set_latency(&[victim], &others, Duration::ZERO);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "no write succeeded at all");

    // Every acknowledged write is still there: each is a version of its secret.
    let check = cluster
        .client(&all)
        .await
        .unwrap()
        .with_failover_deadline(Duration::from_secs(30));
    for key in keys {
        let versions = check.list_secret_versions("kv1", key).await.unwrap();
        let mut stored = std::collections::BTreeSet::new();
        for v in versions {
            let secret = check
                .get_secret(GetSecretRequest {
                    vault: "kv1".into(),
                    name: key.into(),
                    version: v.version,
                })
                .await
                .unwrap();
            stored.insert(secret.value.parse::<u64>().unwrap());
        }
        for (k, value) in &acknowledged {
            if *k == key {
                assert!(
                    stored.contains(value),
                    "acknowledged write {key}={value} was lost (seed {seed})"
                );
            }
        }
    }
    let ops = history.ops();
    eprintln!(
        "{} operations, {} acknowledged writes",
        ops.len(),
        acknowledged.len()
    );
    if let Err(e) = coffer_testkit::check(&ops) {
        panic!("history is not linearizable (seed {seed}): {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_short() {
    randomized_faults(6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault run (about 3 minutes); cargo nextest run --run-ignored only -E 'test(randomized_faults_long)'"]
async fn randomized_faults_long() {
    randomized_faults(60).await;
}

/// Writes `count` secrets (`s0`..) into `vault` with `concurrency` parallel callers.
async fn write_many(client: &CofferClient, vault: &str, count: usize, concurrency: usize) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        let vault = vault.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    break;
                }
                set(&client, &vault, &format!("s{i}"), &format!("v{i}"))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// A follower that was down while the leader snapshotted and purged its log catches up by
/// snapshot, not by replaying entries that no longer exist.
async fn catch_up_by_snapshot(writes: usize) {
    let mut cluster = TestCluster::start(
        bin(),
        3,
        "eastus,westus,centralus",
        &["--snapshot-every", "500"],
    )
    .await
    .unwrap();
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    create_vault(&client, "kv1").await;
    let leader = cluster.leader(&all, Duration::from_secs(10)).await.unwrap();
    let lagging = *all.iter().find(|id| **id != leader).unwrap();
    cluster.kill(lagging);
    let up: Vec<u64> = all.iter().copied().filter(|id| *id != lagging).collect();
    let writer = cluster.client(&up).await.unwrap();
    let started = Instant::now();
    write_many(&writer, "kv1", writes, 16).await;
    eprintln!("{writes} writes took {:?}", started.elapsed());

    cluster.restart(lagging).unwrap();
    let only_lagging = cluster
        .client_of(lagging, Duration::from_secs(30))
        .await
        .unwrap();
    let last = format!("s{}", writes - 1);
    assert_eq!(
        get(&only_lagging, "kv1", &last).await.unwrap().as_deref(),
        Some(format!("v{}", writes - 1).as_str())
    );
    // The data arrived as a snapshot: the log it missed had been purged.
    let log = cluster.log(lagging);
    assert!(
        log.contains("installed a snapshot sent by the leader"),
        "node {lagging} did not catch up by snapshot:\n{log}"
    );
    // And it keeps up afterwards through the log.
    set(&client, "kv1", "after", "x").await.unwrap();
    assert_eq!(
        get(&only_lagging, "kv1", "after").await.unwrap().as_deref(),
        Some("x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_through_ten_thousand_writes_catches_up_by_snapshot() {
    catch_up_by_snapshot(10_000).await;
}

/// Starts three nodes in three regions with `profile`, then puts `one_way` latency on every
/// link and tries to write.
async fn write_across_regions(profile: &str, one_way: Duration) -> Result<Duration, ClientError> {
    let cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &["--profile", profile])
        .await
        .unwrap();
    let all = cluster.ids();
    let client = cluster
        .client(&all)
        .await
        .unwrap()
        .with_failover_deadline(Duration::from_secs(10));
    create_vault(&client, "kv1").await;
    for id in &all {
        let others: Vec<u64> = all.iter().copied().filter(|o| o != id).collect();
        cluster.mesh.set_latency(&[*id], &others, one_way);
    }
    let started = Instant::now();
    for i in 0..5 {
        set(&client, "kv1", "a", &i.to_string()).await?;
    }
    assert_eq!(get(&client, "kv1", "a").await?.as_deref(), Some("4"));
    Ok(started.elapsed() / 5)
}

/// openraft bounds each replication call by the heartbeat interval: with a 150 ms round trip
/// between regions the LAN profile (100 ms heartbeat) cannot commit at all, and the regions
/// profile (400 ms) commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regions_profile_commits_across_a_150_ms_round_trip_and_the_lan_profile_cannot() {
    let one_way = Duration::from_millis(75);
    let per_write = write_across_regions("regions", one_way).await.unwrap();
    eprintln!("regions profile: {per_write:?} per write with a 150 ms round trip");
    // A commit needs at least one round trip from the leader to a follower.
    assert!(per_write >= Duration::from_millis(150), "{per_write:?}");
    let refused = write_across_regions("lan", one_way).await.unwrap_err();
    assert_eq!(refused.code(), "ServiceUnavailable", "{refused}");
}
