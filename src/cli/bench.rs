//! `coffer bench`: an open-loop load generator for a vault, for the load and throttling
//! benchmarks users run against their own clusters.
//!
//! Request `i` is due at `start + i / rate`, whatever the answers to earlier ones: a slow or
//! throttling server does not slow the offered load down (an open loop). At most
//! `--concurrency` requests are in flight; a due request that finds none free waits for one,
//! and its latency still counts from when it was due (the coordinated-omission correction), so
//! a saturated client shows up as latency and as late starts instead of silently lowering the
//! rate. Calls go round-robin to every node the address names, one connection each, and are
//! never retried: a 429 is what is measured.
//!
//! The run ends by itself: no request starts after `--duration` (those still waiting for a
//! slot are "not sent"), and answers are awaited at most [`DRAIN`] longer. Every request due
//! after the warm-up is offered, and ends up accepted, throttled, failed with a code, or
//! unfinished (not sent, or sent and not answered in time).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use clap::{Args, ValueEnum};
use coffer_client::proto::{CreateKeyRequest, GetSecretRequest, SetSecretRequest, SignRequest};
use coffer_client::{CofferClient, ConnectOptions, split_addrs};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::output::{self, Table};
use super::{CliError, GlobalArgs};

/// A request that starts this much after it was due counts as a late start.
const LATE: Duration = Duration::from_millis(10);
/// In-flight requests get this long after the run before they count as unfinished.
const DRAIN: Duration = Duration::from_secs(10);
/// The run starts this long after the clients are ready, so that the first requests are not
/// late merely because the dispatcher was still being set up.
const HEAD_START: Duration = Duration::from_millis(50);
/// Latencies above this are recorded as this (the histogram's range).
const MAX_LATENCY_MICROS: u64 = 60_000_000;
const MAX_RATE: u32 = 100_000;
const MAX_DURATION: Duration = Duration::from_secs(3_600);
const MAX_CONCURRENCY: u32 = 4_096;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `coffer bench ...`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Vault to load.
    #[arg(long)]
    vault: String,
    /// The operation every request performs.
    #[arg(long, value_enum)]
    op: BenchOp,
    /// Requests per second offered, whatever the answers (1 to 100000).
    #[arg(long)]
    rate: u32,
    /// How long to offer load, warm-up included (`30s`, `500ms`, `2m`, or seconds; at most 1h).
    #[arg(long, value_parser = parse_duration)]
    duration: Duration,
    /// Requests in flight at most (1 to 4096).
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// The secret or key used (created if missing).
    #[arg(long, default_value = "bench")]
    name: String,
    /// The first part of the run, left out of the results.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchOp {
    /// Read the latest version of a secret.
    SecretGet,
    /// Write a new version of a secret (random 32-character values).
    SecretSet,
    /// Sign a random SHA-256 digest with an EC P-256 key (ES256).
    KeySign,
}

impl BenchOp {
    fn name(self) -> &'static str {
        match self {
            BenchOp::SecretGet => "secret-get",
            BenchOp::SecretSet => "secret-set",
            BenchOp::KeySign => "key-sign",
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or a number of seconds; at most an hour.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3_600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    // Digits and dots only, so the value is finite and not negative.
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{text:?} is longer than the limit of {}s",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// When each request is due. Computed in whole nanoseconds, not floats, so that the number of
/// requests in the run and in the measured window is exact: `rate × duration` of them, not one
/// more or less from rounding.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    rate: u32,
    duration: Duration,
    warmup: Duration,
}

impl Schedule {
    /// When request `i` is due, from the start: `i / rate` seconds, rounded down to the
    /// nanosecond.
    fn due(&self, i: u64) -> Duration {
        let nanos = u128::from(i) * NANOS_PER_SEC / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The first request due at or after `at`. `due(i) ≥ at` holds exactly when
    /// `i × 10⁹ / rate ≥ at` in nanoseconds (`at` being whole), that is from
    /// `⌈at × rate / 10⁹⌉` on.
    fn first_due_at(&self, at: Duration) -> u64 {
        let scaled = at.as_nanos() * u128::from(self.rate);
        u64::try_from(scaled.div_ceil(NANOS_PER_SEC)).unwrap_or(u64::MAX)
    }

    /// How many requests are due before the end of the run.
    fn total(&self) -> u64 {
        self.first_due_at(self.duration)
    }

    /// The first request that counts in the results: the first due after the warm-up.
    fn first_measured(&self) -> u64 {
        self.first_due_at(self.warmup)
    }

    /// The measured window, which the rates are per second of.
    fn window(&self) -> Duration {
        self.duration.saturating_sub(self.warmup)
    }
}

/// What the measured window saw.
#[derive(Debug, Clone)]
struct Summary {
    offered: u64,
    accepted: u64,
    throttled: u64,
    /// Failures other than 429, by code.
    errors: BTreeMap<String, u64>,
    /// Due while every slot was busy, and still waiting when the run ended.
    not_sent: u64,
    late_starts: u64,
    /// Latency of accepted calls in microseconds, counted from when each was due.
    latency: Histogram<u64>,
}

impl Summary {
    fn new(offered: u64) -> Result<Self, CliError> {
        // Fails only for bounds that are out of order or precision above 5 digits.
        let latency =
            Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).map_err(|e| CliError::Local {
                code: "InternalError",
                message: format!("latency histogram: {e}"),
            })?;
        Ok(Self {
            offered,
            accepted: 0,
            throttled: 0,
            errors: BTreeMap::new(),
            not_sent: 0,
            late_starts: 0,
            latency,
        })
    }

    /// Counts one answered request; `result` is the error code of a failure.
    fn record(&mut self, late_start: bool, latency: Duration, result: Result<(), String>) {
        self.late_starts += u64::from(late_start);
        match result {
            Ok(()) => {
                self.accepted += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency
                    .saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
            }
            Err(code) if code == "Throttled" => self.throttled += 1,
            Err(code) => *self.errors.entry(code).or_default() += 1,
        }
    }

    /// Offered requests without an answer: never sent, or not answered within the drain.
    fn unfinished(&self) -> u64 {
        let answered = self.accepted + self.throttled + self.errors.values().sum::<u64>();
        self.offered.saturating_sub(answered)
    }

    fn latency_ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    /// The result fields of the JSON report, with rates per second of `window`.
    fn report(&self, window: Duration) -> Value {
        let per_s = |n: u64| n as f64 / window.as_secs_f64().max(1e-9);
        let max_ms = if self.latency.is_empty() {
            0.0
        } else {
            self.latency.max() as f64 / 1_000.0
        };
        json!({
            "offered": self.offered,
            "accepted": self.accepted,
            "throttled": self.throttled,
            "errors": self.errors,
            "unfinished": self.unfinished(),
            "not_sent": self.not_sent,
            "late_starts": self.late_starts,
            "offered_per_s": per_s(self.offered),
            "accepted_per_s": per_s(self.accepted),
            "throttled_per_s": per_s(self.throttled),
            "latency_ms": {
                "p50": self.latency_ms(0.5),
                "p90": self.latency_ms(0.9),
                "p99": self.latency_ms(0.99),
                "p999": self.latency_ms(0.999),
                "max": max_ms,
            },
        })
    }
}

/// Answers come back on many tasks; a poisoned lock only means one of them panicked after
/// counting, which leaves the counts whole.
fn lock(summary: &Mutex<Summary>) -> MutexGuard<'_, Summary> {
    summary.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the open loop: `send(i)` builds request `i`, which is started when due (or as soon as
/// a slot frees up) on its own task. Returns what the measured window saw once every request
/// has answered, or `drain` after the run, whichever is first.
async fn drive<F, Fut>(
    schedule: Schedule,
    concurrency: u32,
    drain: Duration,
    send: F,
) -> Result<Summary, CliError>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let total = schedule.total();
    let first_measured = schedule.first_measured();
    // Answers are counted as they arrive rather than queued for the end, so memory stays
    // bounded by the concurrency however long the run.
    let summary = Arc::new(Mutex::new(Summary::new(total - first_measured)?));
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let start = Instant::now() + HEAD_START;
    // Timer wake-ups come up to a millisecond late, so a request due just before the end may
    // start just after it; past this nothing starts, even if every slot hangs or the
    // dispatcher fell behind.
    let stop = start + schedule.duration + LATE;
    for i in 0..total {
        let due = start + schedule.due(i);
        // A dispatcher that fell behind finds its deadlines past and catches up at once.
        tokio::time::sleep_until(due).await;
        let slot = if Instant::now() < stop {
            tokio::time::timeout_at(stop, slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        let Some(slot) = slot else {
            lock(&summary).not_sent = total - i.max(first_measured);
            break;
        };
        let measured = i >= first_measured;
        let late_start = Instant::now().saturating_duration_since(due) > LATE;
        let request = send(i);
        let summary = summary.clone();
        tokio::spawn(async move {
            let result = request.await;
            let latency = due.elapsed();
            if measured {
                lock(&summary).record(late_start, latency, result);
            }
            // Released only after counting: holding every slot means every answer is counted.
            drop(slot);
        });
    }
    // Every slot free again means nothing is in flight. The semaphore is never closed, so the
    // wait ends with all slots or at the timeout; either way the counts are what they are.
    let _all_answered = tokio::time::timeout(drain, slots.acquire_many(concurrency)).await;
    Ok(lock(&summary).clone())
}

fn check(args: &BenchArgs) -> Result<(), CliError> {
    if !(1..=MAX_RATE).contains(&args.rate) {
        return Err(CliError::bad_parameter(format!(
            "--rate must be 1 to {MAX_RATE} requests a second, not {}",
            args.rate
        )));
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(CliError::bad_parameter(format!(
            "--concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
            args.concurrency
        )));
    }
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        return Err(CliError::bad_parameter(format!(
            "--duration must be more than zero and at most {}s",
            MAX_DURATION.as_secs()
        )));
    }
    if args.warmup >= args.duration {
        return Err(CliError::bad_parameter(
            "--warmup must be shorter than --duration, which includes it",
        ));
    }
    Ok(())
}

/// One client per node the address names, each bound to that node alone (a failure is
/// reported, not moved to another node) and never retrying a 429.
async fn node_clients(global: &GlobalArgs) -> Result<(Vec<String>, Vec<CofferClient>), CliError> {
    let mut base = ConnectOptions::from_env_with(global.addr.clone(), global.ca_cert.clone())?;
    if global.source_address.is_some() {
        base.source_address = global.source_address;
    }
    let urls = split_addrs(&base.addr);
    if urls.is_empty() {
        return Err(CliError::bad_parameter("--addr names no node"));
    }
    let mut clients = Vec::with_capacity(urls.len());
    for url in &urls {
        let options = ConnectOptions {
            addr: url.clone(),
            ..base.clone()
        };
        let client = CofferClient::connect(options)
            .await?
            .with_throttle_retries(0)
            .with_failover_deadline(Duration::ZERO);
        clients.push(client);
    }
    Ok((urls, clients))
}

fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; n];
    coffer_crypto::fill_random(&mut bytes).map_err(|_| "RandomUnavailable".to_owned())?;
    Ok(bytes)
}

/// 32 random hexadecimal characters: each write stores a new value, as real writes would.
fn random_value() -> Result<String, String> {
    Ok(random_bytes(16)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Makes sure the secret or key the requests use exists.
async fn prepare(client: &CofferClient, args: &BenchArgs) -> Result<(), CliError> {
    let (vault, name) = (args.vault.clone(), args.name.clone());
    match args.op {
        BenchOp::SecretSet => Ok(()),
        BenchOp::SecretGet => {
            let request = GetSecretRequest {
                vault: vault.clone(),
                name: name.clone(),
                ..Default::default()
            };
            match client.get_secret(request).await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == "SecretNotFound" => {
                    let value = random_value().map_err(|code| CliError::Local {
                        code: "InternalError",
                        message: format!("no random value for the secret ({code})"),
                    })?;
                    let request = SetSecretRequest {
                        vault,
                        name,
                        value,
                        ..Default::default()
                    };
                    client.set_secret(request).await?;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        BenchOp::KeySign => match client.get_key(&vault, &name, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == "KeyNotFound" => {
                let request = CreateKeyRequest {
                    vault,
                    name,
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    ..Default::default()
                };
                client.create_key(request).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// One request of the run; a failure is its error code.
async fn one_request(
    client: CofferClient,
    op: BenchOp,
    vault: Arc<str>,
    name: Arc<str>,
) -> Result<(), String> {
    let (vault, name) = (vault.to_string(), name.to_string());
    let answer = match op {
        BenchOp::SecretGet => {
            let request = GetSecretRequest {
                vault,
                name,
                ..Default::default()
            };
            client.get_secret(request).await.map(drop)
        }
        BenchOp::SecretSet => {
            let request = SetSecretRequest {
                vault,
                name,
                value: random_value()?,
                ..Default::default()
            };
            client.set_secret(request).await.map(drop)
        }
        BenchOp::KeySign => {
            let request = SignRequest {
                vault,
                name,
                version: String::new(),
                alg: "ES256".into(),
                digest: random_bytes(32)?,
            };
            client.sign(request).await.map(drop)
        }
    };
    answer.map_err(|e| e.code().to_owned())
}

pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    check(&args)?;
    // Set-up may wait out throttling and fail over: it is not measured.
    prepare(&args.global.connect().await?, &args).await?;
    let (urls, clients) = node_clients(&args.global).await?;
    let schedule = Schedule {
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
    };
    let vault: Arc<str> = Arc::from(args.vault.as_str());
    let name: Arc<str> = Arc::from(args.name.as_str());
    let op = args.op;
    let nodes = clients.len() as u64;
    let send = |i: u64| {
        // `nodes` is at least 1: node_clients refuses an empty address list.
        let client = clients[(i % nodes) as usize].clone();
        one_request(client, op, vault.clone(), name.clone())
    };
    let summary = drive(schedule, args.concurrency, DRAIN, send).await?;
    let mut report = json!({
        "op": op.name(),
        "vault": args.vault,
        "name": args.name,
        "nodes": urls,
        "rate_target": args.rate,
        "duration_s": args.duration.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "concurrency": args.concurrency,
    });
    if let (Some(report), Value::Object(results)) =
        (report.as_object_mut(), summary.report(schedule.window()))
    {
        report.extend(results);
    }
    output::print(&args.global, &report, || table(&report))
}

/// The report for people: one measure a row.
fn table(report: &Value) -> Table {
    let int = |field: &str| report[field].as_u64().unwrap_or(0);
    let rate = |field: &str| report[field].as_f64().unwrap_or(0.0);
    let ms = |q: &str| report["latency_ms"][q].as_f64().unwrap_or(0.0);
    let errors: Vec<String> = report["errors"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, count)| format!("{code}: {count}"))
        .collect();
    let nodes = report["nodes"].as_array().map_or(0, Vec::len);
    let rows = [
        (
            "Load",
            format!(
                "{} on {}/{}, {}/s for {}s (warm-up {}s), {} in flight at most, {} node(s)",
                report["op"].as_str().unwrap_or(""),
                report["vault"].as_str().unwrap_or(""),
                report["name"].as_str().unwrap_or(""),
                int("rate_target"),
                rate("duration_s"),
                rate("warmup_s"),
                int("concurrency"),
                nodes,
            ),
        ),
        (
            "Offered",
            format!("{} ({:.1}/s)", int("offered"), rate("offered_per_s")),
        ),
        (
            "Accepted",
            format!("{} ({:.1}/s)", int("accepted"), rate("accepted_per_s")),
        ),
        (
            "Throttled (429)",
            format!("{} ({:.1}/s)", int("throttled"), rate("throttled_per_s")),
        ),
        (
            "Other errors",
            if errors.is_empty() {
                "0".to_owned()
            } else {
                errors.join(", ")
            },
        ),
        (
            "Unfinished",
            format!(
                "{} ({} not sent: every slot busy until the end)",
                int("unfinished"),
                int("not_sent")
            ),
        ),
        ("Late starts (>10 ms)", int("late_starts").to_string()),
        (
            "Latency ms p50/p90/p99/p99.9/max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2}",
                ms("p50"),
                ms("p90"),
                ms("p99"),
                ms("p999"),
                ms("max")
            ),
        ),
    ];
    Table {
        headers: vec!["Measure", "Value"],
        rows: rows
            .into_iter()
            .map(|(measure, value)| vec![measure.to_owned(), value])
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bounds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1_500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3_600));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in [
            "", "s", "10x", "-1s", "2h", "3601", "1e9s", "ten", "1.2.3s", "5 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn schedule(rate: u32, duration_ms: u64, warmup_ms: u64) -> Schedule {
        Schedule {
            rate,
            duration: Duration::from_millis(duration_ms),
            warmup: Duration::from_millis(warmup_ms),
        }
    }

    #[test]
    fn requests_are_due_at_fixed_intervals() {
        let s = schedule(200, 1_000, 0);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(5));
        assert_eq!(s.due(200), Duration::from_secs(1));
        assert_eq!(schedule(4, 1_000, 0).due(3), Duration::from_millis(750));
        // 1/3 s, rounded down to the nanosecond.
        assert_eq!(
            schedule(3, 1_000, 0).due(1),
            Duration::from_nanos(333_333_333)
        );
    }

    #[test]
    fn a_run_holds_rate_times_duration_requests_and_the_window_starts_after_the_warmup() {
        assert_eq!(schedule(200, 5_000, 0).total(), 1_000);
        assert_eq!(schedule(100_000, 3_600_000, 0).total(), 360_000_000);
        // 0, 1/3 and 2/3 s are all before 0.7 s.
        assert_eq!(schedule(3, 700, 0).total(), 3);
        assert_eq!(schedule(10, 1_000, 500).first_measured(), 5);
        assert_eq!(schedule(10, 1_000, 510).first_measured(), 6);
        assert_eq!(
            schedule(10, 1_000, 500).window(),
            Duration::from_millis(500)
        );
        // Against the definition, request by request.
        for (rate, duration_ms, warmup_ms) in [(7, 2_300, 999), (3, 1_000, 334), (1_000, 50, 7)] {
            let s = schedule(rate, duration_ms, warmup_ms);
            let dues: Vec<Duration> = (0..10_000).map(|i| s.due(i)).collect();
            let count_before = |at: Duration| dues.iter().filter(|d| **d < at).count() as u64;
            assert_eq!(s.total(), count_before(s.duration), "{rate}/s");
            assert_eq!(s.first_measured(), count_before(s.warmup), "{rate}/s");
        }
    }

    #[test]
    fn the_summary_counts_outcomes_and_rates_over_the_window() {
        let mut summary = Summary::new(10).unwrap();
        let outcomes = [
            Ok(()),
            Ok(()),
            Err("Throttled".to_owned()),
            Err("Throttled".to_owned()),
            Err("ServiceUnavailable".to_owned()),
        ];
        for (i, result) in outcomes.into_iter().enumerate() {
            let latency = Duration::from_millis(2 + i as u64 * 2);
            summary.record(i == 0, latency, result);
        }
        summary.not_sent = 2;
        let report = summary.report(Duration::from_secs(2));
        assert_eq!(report["offered"], 10);
        assert_eq!(report["accepted"], 2);
        assert_eq!(report["throttled"], 2);
        assert_eq!(report["errors"], json!({"ServiceUnavailable": 1}));
        // Ten offered, five answered: two never sent, three sent and not answered.
        assert_eq!(report["unfinished"], 5);
        assert_eq!(report["not_sent"], 2);
        assert_eq!(report["late_starts"], 1);
        assert_eq!(report["offered_per_s"], 5.0);
        assert_eq!(report["accepted_per_s"], 1.0);
        assert_eq!(report["throttled_per_s"], 1.0);
        // Only accepted calls have a latency: 2 and 4 ms.
        let latency = |q: &str| report["latency_ms"][q].as_f64().unwrap();
        assert!(
            (1.99..=2.01).contains(&latency("p50")),
            "{}",
            latency("p50")
        );
        assert!(
            (3.99..=4.01).contains(&latency("p99")),
            "{}",
            latency("p99")
        );
        assert!(
            (3.99..=4.01).contains(&latency("max")),
            "{}",
            latency("max")
        );
    }

    #[test]
    fn an_empty_window_reports_zeros_and_huge_latencies_are_capped() {
        let report = Summary::new(0).unwrap().report(Duration::from_secs(1));
        assert_eq!(
            report["latency_ms"],
            json!({"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0})
        );
        let mut summary = Summary::new(1).unwrap();
        summary.record(false, Duration::from_secs(3_600), Ok(()));
        let max = summary.report(Duration::from_secs(1))["latency_ms"]["max"]
            .as_f64()
            .unwrap();
        assert!((59_990.0..=60_100.0).contains(&max), "{max}");
    }

    #[test]
    fn the_table_shows_every_measure() {
        let mut summary = Summary::new(4).unwrap();
        summary.record(true, Duration::from_millis(3), Ok(()));
        summary.record(false, Duration::from_millis(1), Err("Throttled".to_owned()));
        summary.record(false, Duration::from_millis(1), Err("Forbidden".to_owned()));
        let mut report = json!({"op": "key-sign", "vault": "kv", "name": "k", "nodes": ["a", "b"]});
        if let (Some(report), Value::Object(results)) = (
            report.as_object_mut(),
            summary.report(Duration::from_secs(1)),
        ) {
            report.extend(results);
        }
        let text = output::format_table(&table(&report));
        for expected in [
            "key-sign on kv/k",
            "2 node(s)",
            "Offered",
            "4 (4.0/s)",
            "1 (1.0/s)",
            "Forbidden: 1",
            "Unfinished",
            "Late starts (>10 ms)",
            "3.00 / 3.00 / 3.00 / 3.00 / 3.00",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }
    }

    fn args(line: &str) -> BenchArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let words = std::iter::once("bench").chain(line.split_whitespace());
        Cli::try_parse_from(words).unwrap().bench
    }

    #[test]
    fn out_of_range_settings_are_bad_parameters() {
        let base = "--vault kv --op secret-get";
        assert!(check(&args(&format!("{base} --rate 1 --duration 1s"))).is_ok());
        let ok = format!("{base} --rate 100000 --duration 1h --concurrency 4096 --warmup 59m");
        assert!(check(&args(&ok)).is_ok());
        for bad in [
            "--rate 0 --duration 1s",
            "--rate 100001 --duration 1s",
            "--rate 10 --duration 0s",
            "--rate 10 --duration 1s --concurrency 0",
            "--rate 10 --duration 1s --concurrency 4097",
            "--rate 10 --duration 1s --warmup 1s",
        ] {
            let err = check(&args(&format!("{base} {bad}")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("(BadParameter) --"), "{bad}: {err}");
        }
    }

    /// The loop itself, against requests that take `service` each: real time, short runs.
    async fn drive_with(schedule: Schedule, concurrency: u32, service: Duration) -> Summary {
        let drain = Duration::from_millis(300);
        drive(schedule, concurrency, drain, move |i| async move {
            tokio::time::sleep(service).await;
            if i % 4 == 3 {
                Err("Throttled".to_owned())
            } else {
                Ok(())
            }
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_fast_server_answers_everything_offered_after_the_warmup() {
        let summary = drive_with(schedule(200, 400, 100), 8, Duration::from_millis(1)).await;
        assert_eq!(summary.offered, 60);
        assert_eq!(summary.accepted + summary.throttled, 60);
        assert_eq!(summary.throttled, 15);
        assert_eq!((summary.unfinished(), summary.not_sent), (0, 0));
    }

    #[tokio::test]
    async fn a_saturated_client_shows_as_latency_late_starts_and_requests_not_sent() {
        // 100/s for 0.5 s with one slot and 100 ms per answer: about 5 of 50 get sent.
        let started = std::time::Instant::now();
        let summary = drive_with(schedule(100, 500, 0), 1, Duration::from_millis(100)).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the run overran"
        );
        assert_eq!(summary.offered, 50);
        let answered = summary.accepted + summary.throttled;
        assert!((3..=7).contains(&answered), "{summary:?}");
        assert_eq!(summary.unfinished(), 50 - answered);
        // The last request sent may still be in flight at the end; everything else was
        // waiting for the slot.
        assert!(summary.not_sent + 1 >= 50 - answered, "{summary:?}");
        assert!(summary.late_starts >= answered - 1, "{summary:?}");
        // Counted from when it was due, the last request answered waited ~400 ms, though
        // each took 100 ms once sent.
        assert!(summary.latency.max() >= 300_000, "{summary:?}");
    }

    #[tokio::test]
    async fn a_hung_server_cannot_keep_the_run_going_past_the_drain() {
        let started = std::time::Instant::now();
        let summary = drive_with(schedule(20, 200, 0), 2, Duration::from_secs(600)).await;
        // 200 ms of run and 300 ms of drain.
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1_500), "{took:?}");
        assert_eq!(summary.offered, 4);
        assert_eq!(summary.unfinished(), 4);
        assert_eq!(summary.not_sent, 2);
    }
}
