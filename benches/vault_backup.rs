//! Whole-vault backup and restore on one node: a one-node `coffer dev cluster` (a real server
//! process on loopback) holding a vault of N secrets (64-byte values), backed up to a file and
//! restored as a new vault, both streamed through the Rust client.
//!
//! Reports, per N: the time to load the vault (64 concurrent sets), to back it up and to
//! restore it, the backup's size, and the peak resident memory of the server during each of
//! backup and restore, and of this (client) process. Peaks are reset before each phase through
//! `/proc/PID/clear_refs` and read from `VmHWM`, so the load phase does not count.
//!
//! Run: `cargo bench --profile dev --bench vault_backup` (about 5 minutes for both sizes).
//! `COFFER_BENCH_VAULT_SIZES` (default `10000,100000`) sets the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_client::CofferClient;
use coffer_testkit::{TestCluster, ops};

const LOADERS: u64 = 64;

/// Resets a process's peak resident set size to its current size.
fn reset_peak(pid: &str) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
}

/// A process's peak resident set size since the last reset, in MiB.
fn peak_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024.0
}

fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

async fn load(client: &CofferClient, vault: &str, n: u64) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..LOADERS {
        let client = client.clone();
        let next = next.clone();
        let vault = vault.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let value = format!("{i:0>64}");
                ops::set_secret(&client, &vault, &format!("secret-{i:06}"), &value)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::var("COFFER_BENCH_VAULT_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_coffer"));
    let cluster = TestCluster::start_direct(bin, 1, "eastus", &[])
        .await
        .unwrap();
    let server = cluster.pid(1).expect("node 1 runs").to_string();
    let me = "self".to_owned();
    let client = cluster.client(&[1]).await.unwrap();
    let work = tempfile::tempdir().unwrap();

    println!(
        "| secrets | load | backup | backup size | restore | server peak RSS backup / restore | client peak RSS backup / restore | server RSS before |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let vault = format!("bench{n}");
        ops::create_vault(&client, &vault).await.unwrap();
        let load_time = load(&client, &vault, n).await;

        let file = work.path().join(format!("{vault}.backup"));
        let before = rss_mib(&server);
        reset_peak(&server);
        reset_peak(&me);
        let started = Instant::now();
        let mut out = tokio::fs::File::create(&file).await.unwrap();
        let bytes = client.backup_vault_to(&vault, &mut out).await.unwrap();
        tokio::io::AsyncWriteExt::flush(&mut out).await.unwrap();
        let backup_time = started.elapsed();
        let (server_backup, client_backup) = (peak_mib(&server), peak_mib(&me));

        reset_peak(&server);
        reset_peak(&me);
        let started = Instant::now();
        let input = tokio::fs::File::open(&file).await.unwrap();
        let restored = client
            .restore_vault_from(&format!("copy{n}"), None, input)
            .await
            .unwrap();
        let restore_time = started.elapsed();
        let (server_restore, client_restore) = (peak_mib(&server), peak_mib(&me));
        assert_eq!(restored.name, format!("copy{n}"));
        let sample = ops::secret_value(&client, &restored.name, "secret-000007")
            .await
            .unwrap();
        assert_eq!(sample.as_deref(), Some(format!("{:0>64}", 7).as_str()));

        println!(
            "| {n} | {:.1} s | {:.2} s | {:.1} MiB | {:.2} s | {server_backup:.0} / {server_restore:.0} MiB | {client_backup:.0} / {client_restore:.0} MiB | {before:.0} MiB |",
            load_time.as_secs_f64(),
            backup_time.as_secs_f64(),
            bytes as f64 / (1024.0 * 1024.0),
            restore_time.as_secs_f64(),
        );
    }
}
