//! The throttling benchmark: a three-node cluster of real processes, open-loop load from
//! `coffer bench` spread over all three nodes, at 0.5×, 1× and 3× a vault's limit, for secrets
//! and for keys, with a second vault loaded at the same time.
//!
//! Two cores cannot serve the default limits (2,000 secret and 10,000 key operations a second
//! need more than this machine has; docs/benchmarks.md), so the vaults' limits are lowered to
//! what the machine can offer three times over: the mechanism is the same at any limit.
//!
//! For each case it prints offered, accepted and 429 rates and the latency of accepted calls,
//! and checks the properties the design promises: at 3× the accepted rate is within ±5 % of the
//! limit, at 0.5× nothing is throttled, and the second vault, loaded below its own limit at the
//! same time, is not throttled either. Results go to `target/throttle-bench.json`.
//!
//! Run: `cargo bench --profile dev --bench throttle` (about 3 minutes).
//! `COFFER_BENCH_SECONDS` (default 10) sets each case's measured time, `COFFER_BENCH_WARMUP`
//! (default 2) the unmeasured start, `COFFER_BENCH_SECRET_LIMIT` (default 150) and
//! `COFFER_BENCH_KEY_LIMIT` (default 200) the limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::path::Path;
use std::time::Duration;

use coffer_proto::v1 as pb;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use coffer_testkit::TestCluster;
use serde_json::{Value, json};

const LOADED: &str = "bench-loaded";
const NEIGHBOUR: &str = "bench-neighbour";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coffer"))
}

/// Sets `class` of `vault` to `rate` a second with one second's burst, through the operator's
/// API.
async fn set_limit(cluster: &TestCluster, vault: &str, class: &str, rate: u32) {
    let channel = cluster.grpc_channel(cluster.ids()[0]).await.unwrap();
    let request = cluster.authorized(pb::SetThrottleLimitsRequest {
        vault: vault.into(),
        limits: vec![pb::ThrottleLimit {
            class: class.into(),
            rate,
            burst: 0,
            default: false,
        }],
        reset: Vec::new(),
    });
    VaultServiceClient::new(channel)
        .set_throttle_limits(request)
        .await
        .unwrap();
}

/// Runs `coffer bench` against every node of the cluster and returns its JSON report.
fn coffer_bench(
    cluster: &TestCluster,
    vault: &str,
    op: &str,
    rate: u64,
    seconds: u64,
    warmup: u64,
) -> std::process::Child {
    let concurrency = (rate / 10).clamp(16, 128).to_string();
    cluster
        .cli(&[
            "bench",
            "--vault",
            vault,
            "--op",
            op,
            "--rate",
            &rate.to_string(),
            "--duration",
            &format!("{}s", seconds + warmup),
            "--warmup",
            &format!("{warmup}s"),
            "--concurrency",
            &concurrency,
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("coffer bench starts")
}

fn report_of(child: std::process::Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "coffer bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("coffer bench --output json prints JSON")
}

fn number(report: &Value, field: &str) -> f64 {
    report[field].as_f64().unwrap_or(0.0)
}

fn latency(report: &Value, p: &str) -> f64 {
    report["latency_ms"][p].as_f64().unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_number("COFFER_BENCH_SECONDS", 10);
    let warmup = env_number("COFFER_BENCH_WARMUP", 2);
    let secret_limit = env_number("COFFER_BENCH_SECRET_LIMIT", 150);
    let key_limit = env_number("COFFER_BENCH_KEY_LIMIT", 200);
    let cluster = TestCluster::start(bin(), 3, "eastus,westus,centralus", &[])
        .await
        .unwrap();
    let client = cluster
        .client(&cluster.ids())
        .await
        .unwrap()
        .with_failover_deadline(Duration::from_secs(30));
    for vault in [LOADED, NEIGHBOUR] {
        coffer_testkit::ops::create_vault(&client, vault)
            .await
            .unwrap();
        set_limit(&cluster, vault, "secrets", secret_limit as u32).await;
        set_limit(&cluster, vault, "keys", key_limit as u32).await;
    }

    println!(
        "throttle benchmark: 3 nodes, load spread over all of them, {seconds} s measured after \
         {warmup} s; limits: secrets {secret_limit}/s, keys {key_limit}/s per vault"
    );
    println!(
        "{:<10} {:>5} {:>7} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} | {:>17}",
        "op",
        "load",
        "limit",
        "offered/s",
        "accepted/s",
        "429/s",
        "acc/lim",
        "p50 ms",
        "p99 ms",
        "max ms",
        "neighbour acc/429"
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (op, limit) in [("secret-get", secret_limit), ("key-sign", key_limit)] {
        for (label, factor) in [("0.5x", 0.5), ("1x", 1.0), ("3x", 3.0)] {
            let offered = (limit as f64 * factor).round() as u64;
            // The neighbour runs at half its limit throughout, on the same nodes.
            let neighbour = coffer_bench(&cluster, NEIGHBOUR, op, limit / 2, seconds, warmup);
            let loaded = coffer_bench(&cluster, LOADED, op, offered, seconds, warmup);
            let loaded = report_of(loaded);
            let neighbour = report_of(neighbour);
            let accepted = number(&loaded, "accepted_per_s");
            let ratio = accepted / limit as f64;
            println!(
                "{:<10} {:>5} {:>7} {:>9.1} {:>10.1} {:>9.1} {:>7.3} {:>8.2} {:>8.2} {:>8.2} | {:>8.1} / {:<6.1}",
                op,
                label,
                limit,
                number(&loaded, "offered_per_s"),
                accepted,
                number(&loaded, "throttled_per_s"),
                ratio,
                latency(&loaded, "p50"),
                latency(&loaded, "p99"),
                latency(&loaded, "max"),
                number(&neighbour, "accepted_per_s"),
                number(&neighbour, "throttled_per_s"),
            );
            if factor >= 3.0 && !(0.95..=1.05).contains(&ratio) {
                failures.push(format!("{op} at {label}: accepted {ratio:.3}× the limit"));
            }
            if factor <= 0.5 && number(&loaded, "throttled") > 0.0 {
                failures.push(format!("{op} at {label}: calls were throttled"));
            }
            if number(&neighbour, "throttled") > 0.0 {
                failures.push(format!(
                    "{op} at {label}: the neighbour vault was throttled"
                ));
            }
            results.push(json!({
                "op": op,
                "load": label,
                "limit": limit,
                "loaded": loaded,
                "neighbour": neighbour,
            }));
        }
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("throttle-bench.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&results).unwrap()).unwrap();
    println!("JSON: {}", out.display());
    if failures.is_empty() {
        println!("every case held: ±5 % at 3×, nothing throttled at 0.5×, the neighbour untouched");
    } else {
        for failure in &failures {
            println!("NOT MET: {failure}");
        }
        std::process::exit(1);
    }
}
