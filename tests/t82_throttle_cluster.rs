//! A vault's limit holds for the whole cluster: clients hammering all three nodes of a real
//! cluster together get about the vault's limit, not three times it, and every node gets a
//! part. When a node dies its share goes to the survivors.
//!
//! The bounds are loose on purpose (this is a functional check on a shared two-core machine;
//! `cargo bench --profile dev --bench throttle` measures the accuracy).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_proto::v1 as pb;
use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use coffer_testkit::TestCluster;

const VAULT: &str = "shared-limit";
const LIMIT: u32 = 40;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

/// Gets the secret through every node in `ids`, four callers per node, as fast as they are
/// answered, for `period`. Returns the admitted count per node.
async fn hammer(cluster: &TestCluster, ids: &[u64], period: Duration) -> Vec<u64> {
    let until = Instant::now() + period;
    let mut tasks = Vec::new();
    let mut counters = Vec::new();
    for id in ids {
        let admitted = Arc::new(AtomicU64::new(0));
        counters.push(admitted.clone());
        let channel = cluster.grpc_channel(*id).await.unwrap();
        for _ in 0..4 {
            let client = SecretServiceClient::new(channel.clone());
            let admitted = admitted.clone();
            let token = cluster.token().to_owned();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let mut request = tonic::Request::new(pb::GetSecretRequest {
                        vault: VAULT.into(),
                        name: "s".into(),
                        ..Default::default()
                    });
                    request
                        .metadata_mut()
                        .insert("authorization", format!("Bearer {token}").parse().unwrap());
                    match client.clone().get_secret(request).await {
                        Ok(_) => {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => {
                            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                            // Back off a little, as a client honouring Retry-After would.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_vault_limit() {
    let mut cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let ids = cluster.ids();
    let client = cluster
        .client(&ids)
        .await
        .unwrap()
        .with_failover_deadline(Duration::from_secs(30));
    coffer_testkit::ops::create_vault(&client, VAULT)
        .await
        .unwrap();
    coffer_testkit::ops::set_secret(&client, VAULT, "s", "v")
        .await
        .unwrap();
    VaultServiceClient::new(cluster.grpc_channel(ids[0]).await.unwrap())
        .set_throttle_limits(cluster.authorized(pb::SetThrottleLimitsRequest {
            vault: VAULT.into(),
            limits: vec![pb::ThrottleLimit {
                class: "secrets".into(),
                rate: LIMIT,
                burst: LIMIT,
                default: false,
            }],
            reset: Vec::new(),
        }))
        .await
        .unwrap();
    // Every node has applied the limit before the load starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let seconds = 4.0;
    let per_node = hammer(&cluster, &ids, Duration::from_secs_f64(seconds)).await;
    let total: u64 = per_node.iter().sum();
    eprintln!("three nodes admitted {per_node:?} = {total} in {seconds} s at {LIMIT}/s");
    // One vault's limit (plus one burst), not three: per-node limits would admit ~3×.
    let expected = f64::from(LIMIT) * seconds + f64::from(LIMIT);
    assert!(
        (total as f64) < expected * 1.4 && (total as f64) > expected * 0.6,
        "admitted {total} ({per_node:?}), expected about {expected}"
    );
    for (id, admitted) in ids.iter().zip(&per_node) {
        assert!(
            *admitted as f64 > total as f64 * 0.15,
            "node {id} admitted only {admitted} of {total} ({per_node:?})"
        );
    }

    // A dead node's share goes to the survivors once its reports are stale. A follower dies,
    // so that reads do not wait out an election meanwhile.
    let leader = cluster
        .leader(&ids, Duration::from_secs(30))
        .await
        .expect("a leader");
    let victim = *ids.iter().find(|id| **id != leader).unwrap();
    cluster.kill(victim);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != victim).collect();
    let per_node = hammer(&cluster, &survivors, Duration::from_secs_f64(seconds)).await;
    let total: u64 = per_node.iter().sum();
    eprintln!("two survivors admitted {per_node:?} = {total} in {seconds} s at {LIMIT}/s");
    assert!(
        (total as f64) > f64::from(LIMIT) * seconds * 0.75 && (total as f64) < expected * 1.4,
        "two survivors admitted {total} ({per_node:?}), expected about {expected}"
    );
}
