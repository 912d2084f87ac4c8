//! The cluster load benchmark: a three-node `coffer dev cluster` layout (real processes on
//! loopback, nodes talking to each other directly over mutual TLS), driven by Rust clients.
//!
//! 1. Failover: 20 times, kill -9 the leader and measure how long until a secret set succeeds
//!    again (the client fails over by itself), then restart the node and let it rejoin.
//! 2. Throughput: secret set (32-byte values) with 1, 16 and 64 concurrent clients, closed
//!    loop, for a fixed time each; operations per second and p50/p99 latency.
//!
//! Run: `cargo bench --profile dev --bench cluster` (about 3 minutes).
//! `COFFER_BENCH_KILLS` and `COFFER_BENCH_SECONDS` shorten or lengthen it;
//! `COFFER_BENCH_SNAPSHOT_EVERY` sets the nodes' `raft.snapshot-every` (default 10,000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coffer_client::CofferClient;
use coffer_testkit::{TestCluster, ops};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn set(client: &CofferClient, name: &str, value: &str) -> bool {
    ops::set_secret(client, "bench1", name, value).await.is_ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

async fn failover(cluster: &mut TestCluster, kills: u64) {
    let all = cluster.ids();
    let client = cluster
        .client(&all)
        .await
        .unwrap()
        .with_failover_deadline(Duration::from_secs(60));
    let mut recoveries = Vec::new();
    for round in 0..kills {
        let leader = cluster
            .leader(&all, Duration::from_secs(30))
            .await
            .expect("a leader");
        assert!(
            set(&client, "failover", "before").await,
            "the cluster must serve before a kill"
        );
        let killed_at = Instant::now();
        cluster.kill(leader);
        assert!(
            set(&client, "failover", &round.to_string()).await,
            "no write after the kill"
        );
        let took = killed_at.elapsed();
        println!(
            "kill {round:>2}: leader {leader} killed, writes succeed again after {}",
            ms(took)
        );
        recoveries.push(took);
        cluster.restart(leader).unwrap();
        // Let the restarted node rejoin before the next kill, so each round starts from three
        // healthy voters.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    recoveries.sort();
    println!(
        "failover over {} leader kills: median {}, worst {}, best {}",
        recoveries.len(),
        ms(percentile(&recoveries, 0.5)),
        ms(*recoveries.last().unwrap()),
        ms(recoveries[0]),
    );
}

async fn throughput(cluster: &TestCluster, concurrency: usize, seconds: u64) {
    let all = cluster.ids();
    let client = cluster.client(&all).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let value = "x".repeat(32);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                if set(&client, &format!("w{worker}-{}", i % 100), &value).await {
                    latencies.push(started.elapsed());
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "secret set, {concurrency:>2} clients: {:>6.0} ops/s, p50 {}, p99 {}, {} ok, {errors} errors",
        latencies.len() as f64 / elapsed,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        latencies.len(),
    );
}

fn main() {
    // `cargo bench` passes --bench; a plain test run (`cargo test --benches`) must not start it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let kills = env_number("COFFER_BENCH_KILLS", 20);
    let seconds = env_number("COFFER_BENCH_SECONDS", 15);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bin = Path::new(env!("CARGO_BIN_EXE_coffer"));
        let snapshot_every = env_number("COFFER_BENCH_SNAPSHOT_EVERY", 10_000).to_string();
        let mut cluster = TestCluster::start_direct(
            bin,
            3,
            "eastus,westus,centralus",
            &["--snapshot-every", &snapshot_every],
        )
        .await
        .unwrap();
        let client = cluster.client(&cluster.ids()).await.unwrap();
        ops::create_vault(&client, "bench1").await.unwrap();
        for concurrency in [1, 16, 64] {
            throughput(&cluster, concurrency, seconds).await;
        }
        failover(&mut cluster, kills).await;
    });
}
