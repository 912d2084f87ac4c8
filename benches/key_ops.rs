//! Key operations per second on one node, measured two ways in the same run:
//!
//! - full stack: the real `coffer` binary in dev mode on a loopback port (started as
//!   `secret_roundtrip` starts it), gRPC over TLS with the bootstrap token, N concurrent client
//!   tasks spread over a few tonic channels, closed loop, for a fixed time after a warm-up.
//!   Every request pays TLS and HTTP/2, bearer authentication, a linearizable read-index barrier
//!   before the vault and key records are read, the authorization check, the cached parsed key,
//!   the operation itself and an audit line;
//! - direct: the same operation on a `coffer_crypto` `LoadedKey` of the same type, with the
//!   same digest or ciphertext size, on one thread and on two (`std::thread::scope`), for the
//!   same time.
//!
//! Cases: RS256 sign on RSA 2048/3072/4096; ES256, ES384, ES512 and ES256K sign on P-256, P-384,
//! P-521 and P-256K; RSA-OAEP-256 decrypt of a 32-byte plaintext on RSA 2048/3072/4096; A256GCM
//! decrypt of 1 KiB on a 256-bit oct key. Every response is checked (signature length, the
//! plaintext, the answering key's `kid`); one failed or wrong call stops the run with a message,
//! so the figures only ever count correct work.
//!
//! Reports operations per second of each mode, and for the full stack the p50/p99 latency and
//! the CPU time per call of the server and of this client process (from `/proc`), which share
//! the machine's cores as in the other one-node benchmarks.
//!
//! Run: `cargo bench --profile dev --bench key_ops` (about 2 minutes).
//! `COFFER_BENCH_KEY_CONCURRENCY` (default 16) sets the concurrent client tasks and
//! `COFFER_BENCH_KEY_SECONDS` (default 3) the measured time of each case and each mode.

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_crypto::keys::{KeyMaterial, KeySpec, LoadedKey};
use coffer_proto::v1::key_service_client::KeyServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use coffer_proto::v1::{
    CreateKeyRequest, CreateVaultRequest, KeyOperationRequest, SignRequest, VerifyRequest,
};
use coffer_types::keys::{CurveName, EncryptionAlgorithm, SignatureAlgorithm};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const VAULT: &str = "benchkeys";
/// Client tasks share this many HTTP/2 connections, as a pool of SDK clients would.
const CHANNELS: usize = 4;
/// Full-stack warm-up of each case: connections, the server's key cache, allocator pools.
const WARM_UP: Duration = Duration::from_millis(500);
/// Direct warm-up of each case, single-threaded; the crypto has no cache to fill.
const DIRECT_WARM_UP: Duration = Duration::from_millis(100);
/// Direct operations between two looks at the clock. Elapsed time is measured after the last
/// batch, so a batch that overruns the deadline does not bias the rate.
const DIRECT_BATCH: u64 = 16;
/// RSA-OAEP-256 plaintext: a 256-bit content key, what RSA encryption carries in practice.
const RSA_PLAINTEXT_LEN: usize = 32;
const GCM_PLAINTEXT_LEN: usize = 1_024;

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
    token: String,
    ca: Vec<u8>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev server on a loopback port, exactly as `benches/secret_roundtrip.rs` starts it.
fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("d");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coffer");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("stdout line");
        if let Some(addr) = line.strip_prefix("Coffer dev server listening on https://") {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let env = std::fs::read_to_string(data.join("dev.env")).expect("dev.env");
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("export COFFER_TOKEN="))
        .expect("token in dev.env")
        .to_owned();
    let ca = std::fs::read(data.join("tls").join("ca.pem")).expect("CA");
    Server {
        child,
        _dir: dir,
        addr,
        token,
        ca,
    }
}

fn with_auth<T>(token: &str, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    let value = format!("Bearer {token}").parse().expect("header value");
    request.metadata_mut().insert("authorization", value);
    request
}

#[derive(Clone, Copy)]
enum Op {
    Sign(SignatureAlgorithm),
    Decrypt(EncryptionAlgorithm),
}

struct Case {
    label: &'static str,
    spec: KeySpec,
    op: Op,
}

impl Case {
    fn key_name(&self) -> String {
        let op = match self.op {
            Op::Sign(_) => "sign",
            Op::Decrypt(_) => "decrypt",
        };
        let label: String = self
            .label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{op}-{label}")
    }

    fn operation(&self) -> String {
        match self.op {
            Op::Sign(alg) => format!("sign {alg}"),
            Op::Decrypt(alg) if alg.is_gcm() => format!("decrypt {alg}, {GCM_PLAINTEXT_LEN} B"),
            Op::Decrypt(alg) => format!("decrypt {alg}, {RSA_PLAINTEXT_LEN} B"),
        }
    }

    fn create_request(&self) -> CreateKeyRequest {
        let mut request = CreateKeyRequest {
            vault: VAULT.into(),
            name: self.key_name(),
            ..Default::default()
        };
        match self.spec {
            KeySpec::Rsa { bits, .. } => {
                request.kty = "RSA".into();
                request.key_size = bits;
            }
            KeySpec::Ec { curve } => {
                request.kty = "EC".into();
                request.crv = curve.as_str().into();
            }
            KeySpec::Oct { bits } => {
                request.kty = "oct".into();
                request.key_size = bits;
            }
        }
        request
    }

    /// The length every signature of this case must have.
    fn signature_len(&self) -> usize {
        match self.spec {
            KeySpec::Rsa { bits, .. } => bits as usize / 8,
            KeySpec::Ec { curve } => match curve {
                CurveName::P256 | CurveName::P256K => 64,
                CurveName::P384 => 96,
                CurveName::P521 => 132,
            },
            KeySpec::Oct { .. } => 0,
        }
    }

    fn plaintext(&self) -> Vec<u8> {
        let len = match self.op {
            Op::Decrypt(alg) if alg.is_gcm() => GCM_PLAINTEXT_LEN,
            _ => RSA_PLAINTEXT_LEN,
        };
        pattern(len, 0x3c)
    }
}

fn cases() -> Vec<Case> {
    use EncryptionAlgorithm::{A256Gcm, RsaOaep256};
    use SignatureAlgorithm::{Es256, Es256K, Es384, Es512, Rs256};
    let rsa = |bits| KeySpec::Rsa {
        bits,
        public_exponent: 0,
    };
    let ec = |curve| KeySpec::Ec { curve };
    [
        ("RSA 2048", rsa(2048), Op::Sign(Rs256)),
        ("RSA 3072", rsa(3072), Op::Sign(Rs256)),
        ("RSA 4096", rsa(4096), Op::Sign(Rs256)),
        ("EC P-256", ec(CurveName::P256), Op::Sign(Es256)),
        ("EC P-384", ec(CurveName::P384), Op::Sign(Es384)),
        ("EC P-521", ec(CurveName::P521), Op::Sign(Es512)),
        ("EC P-256K", ec(CurveName::P256K), Op::Sign(Es256K)),
        ("RSA 2048", rsa(2048), Op::Decrypt(RsaOaep256)),
        ("RSA 3072", rsa(3072), Op::Decrypt(RsaOaep256)),
        ("RSA 4096", rsa(4096), Op::Decrypt(RsaOaep256)),
        ("oct 256", KeySpec::Oct { bits: 256 }, Op::Decrypt(A256Gcm)),
    ]
    .into_iter()
    .map(|(label, spec, op)| Case { label, spec, op })
    .collect()
}

/// Deterministic filler for digests and plaintexts; the operations do not care what it is.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One full-stack request of a case, and what its response must hold.
enum StackCall {
    Sign {
        request: SignRequest,
        signature_len: usize,
    },
    Decrypt {
        request: KeyOperationRequest,
        plaintext: Vec<u8>,
    },
}

struct StackTarget {
    call: StackCall,
    kid: String,
}

async fn stack_call(
    client: &mut KeyServiceClient<Channel>,
    token: &str,
    target: &StackTarget,
) -> Result<(), String> {
    let (result, expected) = match &target.call {
        StackCall::Sign {
            request,
            signature_len,
        } => {
            let result = client
                .sign(with_auth(token, request.clone()))
                .await
                .map_err(|s| format!("sign failed: {s}"))?
                .into_inner();
            if result.value.len() != *signature_len {
                return Err(format!(
                    "sign returned {} bytes, expected a {signature_len}-byte signature",
                    result.value.len()
                ));
            }
            (result, None)
        }
        StackCall::Decrypt { request, plaintext } => {
            let result = client
                .decrypt(with_auth(token, request.clone()))
                .await
                .map_err(|s| format!("decrypt failed: {s}"))?
                .into_inner();
            (result, Some(plaintext))
        }
    };
    if let Some(plaintext) = expected
        && result.value != *plaintext
    {
        return Err("decrypt returned a plaintext other than the one encrypted".into());
    }
    if result.kid != target.kid {
        return Err(format!(
            "the response names key {:?}, expected {:?}",
            result.kid, target.kid
        ));
    }
    Ok(())
}

/// What one full-stack phase measured.
struct StackRun {
    ops_per_sec: f64,
    latencies: Vec<Duration>,
    /// CPU time (user + system) the server and this client process spent per call.
    server_cpu: Duration,
    client_cpu: Duration,
}

/// User plus system CPU time of a process, all threads, from `/proc/PID/stat`. Its unit is
/// USER_HZ, which Linux fixes at 100 for user space whatever the kernel's tick.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) may hold spaces; the fields after it are numbers.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .expect("utime and stime in /proc/PID/stat")
    };
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// `concurrency` tasks, each calling in a closed loop until `duration` has passed. The first
/// failure stops every task and is returned with the number of failed calls.
async fn run_stack(
    server_pid: &str,
    channels: &[Channel],
    token: &Arc<str>,
    target: &Arc<StackTarget>,
    concurrency: usize,
    duration: Duration,
) -> Result<StackRun, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let first_failure: Arc<Mutex<Option<String>>> = Arc::default();
    let cpu_before = (cpu_time(server_pid), cpu_time("self"));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let mut client = KeyServiceClient::new(channels[i % channels.len()].clone());
        let (token, target) = (token.clone(), target.clone());
        let (stop, failures, first_failure) =
            (stop.clone(), failures.clone(), first_failure.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4_096);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let sent = Instant::now();
                match stack_call(&mut client, &token, &target).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                        first_failure
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(
            task.await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    let elapsed = started.elapsed();
    let cpu_after = (cpu_time(server_pid), cpu_time("self"));
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        let first = first_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        return Err(format!("{failed} call(s) failed; the first: {first}"));
    }
    latencies.sort_unstable();
    let calls = u32::try_from(latencies.len().max(1)).unwrap_or(u32::MAX);
    Ok(StackRun {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        server_cpu: cpu_after.0.saturating_sub(cpu_before.0) / calls,
        client_cpu: cpu_after.1.saturating_sub(cpu_before.1) / calls,
        latencies,
    })
}

/// One direct operation of a case, with the same checks as the full stack.
enum DirectCall {
    Sign {
        alg: SignatureAlgorithm,
        digest: Vec<u8>,
        signature_len: usize,
    },
    Decrypt {
        alg: EncryptionAlgorithm,
        ciphertext: Vec<u8>,
        iv: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
        plaintext: Vec<u8>,
    },
}

fn direct_call(key: &LoadedKey, call: &DirectCall) -> Result<(), String> {
    match call {
        DirectCall::Sign {
            alg,
            digest,
            signature_len,
        } => {
            let signature = key
                .sign(*alg, digest)
                .map_err(|e| format!("sign failed: {e}"))?;
            if signature.len() != *signature_len {
                return Err(format!(
                    "sign returned {} bytes, expected a {signature_len}-byte signature",
                    signature.len()
                ));
            }
        }
        DirectCall::Decrypt {
            alg,
            ciphertext,
            iv,
            tag,
            plaintext,
        } => {
            let decrypted = key
                .decrypt(*alg, ciphertext, iv.as_deref(), tag.as_deref(), None)
                .map_err(|e| format!("decrypt failed: {e}"))?;
            if decrypted.expose() != plaintext.as_slice() {
                return Err("decrypt returned a plaintext other than the one encrypted".into());
            }
        }
    }
    Ok(())
}

/// Operations per second of `threads` threads calling in a loop for `duration`: the sum of
/// each thread's own rate.
fn run_direct(
    key: &LoadedKey,
    call: &DirectCall,
    threads: usize,
    duration: Duration,
) -> Result<f64, String> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || -> Result<f64, String> {
                    let started = Instant::now();
                    let mut done = 0u64;
                    loop {
                        for _ in 0..DIRECT_BATCH {
                            direct_call(key, call)?;
                        }
                        done += DIRECT_BATCH;
                        if started.elapsed() >= duration {
                            return Ok(done as f64 / started.elapsed().as_secs_f64());
                        }
                    }
                })
            })
            .collect();
        let mut total = 0.0;
        for worker in workers {
            total += worker
                .join()
                .map_err(|_| "a direct thread panicked".to_owned())??;
        }
        Ok(total)
    })
}

struct Row {
    key: &'static str,
    operation: String,
    stack: StackRun,
    direct_1: f64,
    direct_2: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1_000_000.0)
}

/// Two significant digits at least: the AES-GCM ratio is in the thousandths.
fn ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}")
    } else if r >= 0.01 {
        format!("{r:.3}")
    } else {
        format!("{r:.4}")
    }
}

/// A rate with thousands separators and no decimals.
fn rate(ops: f64) -> String {
    let digits = format!("{:.0}", ops.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Settings {
    concurrency: usize,
    duration: Duration,
}

fn settings() -> Settings {
    let concurrency = match std::env::var("COFFER_BENCH_KEY_CONCURRENCY") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n: &usize| *n > 0)
            .expect("COFFER_BENCH_KEY_CONCURRENCY must be a positive integer"),
        Err(_) => 16,
    };
    let seconds = match std::env::var("COFFER_BENCH_KEY_SECONDS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 600.0)
            .expect("COFFER_BENCH_KEY_SECONDS must be a number of seconds in (0, 600]"),
        Err(_) => 3.0,
    };
    Settings {
        concurrency,
        duration: Duration::from_secs_f64(seconds),
    }
}

async fn connect(server: &Server) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&server.ca))
        .domain_name("localhost");
    Channel::from_shared(format!("https://{}", server.addr))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect")
}

/// Creates the case's key through gRPC and builds its request, checking one call first.
async fn stack_target(
    keys: &mut KeyServiceClient<Channel>,
    token: &str,
    case: &Case,
) -> StackTarget {
    let key = keys
        .create_key(with_auth(token, case.create_request()))
        .await
        .unwrap_or_else(|s| panic!("create key {}: {s}", case.key_name()))
        .into_inner();
    let name = key.name.clone();
    let call = match case.op {
        Op::Sign(alg) => {
            let digest = pattern(alg.digest_len(), 0xa5);
            let request = SignRequest {
                vault: VAULT.into(),
                name: name.clone(),
                version: String::new(),
                alg: alg.as_str().into(),
                digest: digest.clone(),
            };
            let signature = keys
                .sign(with_auth(token, request.clone()))
                .await
                .expect("first sign")
                .into_inner()
                .value;
            let verified = keys
                .verify(with_auth(
                    token,
                    VerifyRequest {
                        vault: VAULT.into(),
                        name: name.clone(),
                        version: String::new(),
                        alg: alg.as_str().into(),
                        digest,
                        signature,
                    },
                ))
                .await
                .expect("verify")
                .into_inner()
                .value;
            assert!(verified, "the node's signature of {name} does not verify");
            StackCall::Sign {
                request,
                signature_len: case.signature_len(),
            }
        }
        Op::Decrypt(alg) => {
            let plaintext = case.plaintext();
            let encrypted = keys
                .encrypt(with_auth(
                    token,
                    KeyOperationRequest {
                        vault: VAULT.into(),
                        name: name.clone(),
                        alg: alg.as_str().into(),
                        value: plaintext.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("encrypt")
                .into_inner();
            StackCall::Decrypt {
                request: KeyOperationRequest {
                    vault: VAULT.into(),
                    name: name.clone(),
                    version: String::new(),
                    alg: alg.as_str().into(),
                    value: encrypted.value,
                    iv: encrypted.iv,
                    aad: Vec::new(),
                    tag: encrypted.tag,
                },
                plaintext,
            }
        }
    };
    let target = StackTarget { call, kid: key.kid };
    stack_call(keys, token, &target)
        .await
        .unwrap_or_else(|e| panic!("first call on {name}: {e}"));
    target
}

/// A fresh key of the case's type for the direct measurement, and its call.
fn direct_target(case: &Case) -> (LoadedKey, DirectCall) {
    let key = KeyMaterial::generate(&case.spec)
        .expect("generate key")
        .load()
        .expect("load key");
    let call = match case.op {
        Op::Sign(alg) => DirectCall::Sign {
            alg,
            digest: pattern(alg.digest_len(), 0xa5),
            signature_len: case.signature_len(),
        },
        Op::Decrypt(alg) => {
            let plaintext = case.plaintext();
            let encrypted = key.encrypt(alg, &plaintext, None).expect("encrypt");
            DirectCall::Decrypt {
                alg,
                ciphertext: encrypted.ciphertext,
                iv: encrypted.iv,
                tag: encrypted.tag,
                plaintext,
            }
        }
    };
    (key, call)
}

async fn run(server: &Server, settings: &Settings) -> Result<Vec<Row>, String> {
    let server_pid = server.child.id().to_string();
    let mut channels = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        channels.push(connect(server).await);
    }
    let token: Arc<str> = server.token.as_str().into();
    VaultServiceClient::new(channels[0].clone())
        .create_vault(with_auth(
            &token,
            CreateVaultRequest {
                name: VAULT.into(),
                location: "eastus".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("create vault");
    let mut keys = KeyServiceClient::new(channels[0].clone());

    let mut rows = Vec::new();
    for case in cases() {
        let what = format!("{} {}", case.label, case.operation());
        eprintln!("key_ops: {what}");
        let target = Arc::new(stack_target(&mut keys, &token, &case).await);
        let fail = |mode: &str, e: String| format!("{what}, {mode}: {e}");
        run_stack(
            &server_pid,
            &channels,
            &token,
            &target,
            settings.concurrency,
            WARM_UP,
        )
        .await
        .map_err(|e| fail("full stack warm-up", e))?;
        let stack = run_stack(
            &server_pid,
            &channels,
            &token,
            &target,
            settings.concurrency,
            settings.duration,
        )
        .await
        .map_err(|e| fail("full stack", e))?;

        // The server is idle from here on; its threads do not compete with the direct ones.
        let (key, call) = direct_target(&case);
        run_direct(&key, &call, 1, DIRECT_WARM_UP).map_err(|e| fail("direct warm-up", e))?;
        let direct_1 = run_direct(&key, &call, 1, settings.duration)
            .map_err(|e| fail("direct, 1 thread", e))?;
        let direct_2 = run_direct(&key, &call, 2, settings.duration)
            .map_err(|e| fail("direct, 2 threads", e))?;
        rows.push(Row {
            key: case.label,
            operation: case.operation(),
            stack,
            direct_1,
            direct_2,
        });
    }
    Ok(rows)
}

fn main() {
    let settings = settings();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let server = start_server();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outcome = runtime.block_on(run(&server, &settings));
    drop(server);
    let rows = match outcome {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("key_ops: aborted, no figures reported: {e}");
            std::process::exit(1);
        }
    };

    println!(
        "Full stack: {} concurrent client tasks over {CHANNELS} TLS channels, {:.1} s per case \
         after {} ms of warm-up. Direct: LoadedKey, {:.1} s per mode. {cores} cores available.\n",
        settings.concurrency,
        settings.duration.as_secs_f64(),
        WARM_UP.as_millis(),
        settings.duration.as_secs_f64(),
    );
    println!(
        "| key type | operation | full stack ops/s | direct ops/s (1 thread) | direct ops/s (2 threads) | ratio (full stack / direct 2 threads) |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.key,
            row.operation,
            rate(row.stack.ops_per_sec),
            rate(row.direct_1),
            rate(row.direct_2),
            ratio(row.stack.ops_per_sec / row.direct_2),
        );
    }
    println!(
        "\nFull-stack calls: latency, and CPU time (user + system, all threads) per call of \
         the server and of this client process.\n"
    );
    println!(
        "| key type | operation | calls | p50 | p99 | server CPU per call | client CPU per call |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let latencies = &row.stack.latencies;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.key,
            row.operation,
            rate(latencies.len() as f64),
            ms(percentile(latencies, 0.50)),
            ms(percentile(latencies, 0.99)),
            us(row.stack.server_cpu),
            us(row.stack.client_cpu),
        );
    }
}
