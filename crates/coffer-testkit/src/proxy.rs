//! A fault-injecting TCP proxy for loopback cluster tests.
//!
//! Cluster tests run every node as a separate process on 127.0.0.1, so the
//! only place to inject network faults without privileges (no netns, no tc)
//! is between the processes: each node dials its peers through a
//! [`FaultProxy`] instead of directly. The proxy treats bytes as opaque, so
//! TLS between nodes passes through untouched.
//!
//! Faults are modelled at the level the Raft transport cares about: a
//! partition (`Blackhole`: the connection stays up, traffic vanishes), a
//! crash or kill of the peer (`Reset`), one-way latency, and connection-level
//! loss (`set_drop`). Byte-level corruption and reordering are not modelled:
//! TCP hides those from the application anyway.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::rng::Rng;

/// Binds a loopback port below the kernel's ephemeral range (32768 and up on Linux by
/// default). A cluster test reserves its nodes' ports by binding port 0 and releasing it before
/// the nodes start; a proxy bound the same way could be handed one of those ports in between.
async fn bind_below_ephemeral() -> std::io::Result<TcpListener> {
    let mut rng = crate::Rng::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()),
    );
    for _ in 0..200 {
        let port = 20_000 + rng.below(12_000) as u16;
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return Ok(listener);
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
}

/// Largest chunk read at once. Small enough that a delayed queue of them
/// stays modest, large enough not to matter for throughput.
const CHUNK: usize = 16 * 1024;

/// Chunks in flight per direction. With a delay `d` throughput is capped at
/// about `QUEUE_CHUNKS * CHUNK / d` (20 MiB/s at 50 ms), which is plenty for
/// Raft traffic; the bound exists so a stalled receiver pushes back on the
/// sender instead of growing memory without limit.
const QUEUE_CHUNKS: usize = 64;

/// How long `shutdown` lets connection tasks close their sockets themselves
/// (with a reset) before it aborts them outright.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything (subject to delay and connection drop).
    Pass,
    /// Keep connections open but deliver nothing in either direction; bytes
    /// read meanwhile are discarded, as a partition would drop packets. New
    /// connections are accepted but only reach the target once back in Pass.
    Blackhole,
    /// Reset every current connection and every new one.
    Reset,
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Connections accepted on the listen address.
    pub accepted: u64,
    /// Accepted connections reset on arrival (Reset mode or `set_drop`).
    pub refused: u64,
    /// Connections currently being served.
    pub active: u64,
    /// Bytes delivered, both directions together.
    pub bytes_forwarded: u64,
}

/// Everything tasks need to know about the operator's wishes. Kept in a
/// `watch` channel so a change wakes every task that is waiting on it, which
/// is what makes controls take effect immediately on existing connections.
#[derive(Debug, Clone)]
struct Control {
    mode: Mode,
    /// Bumped by every `set_mode(Reset)`. Tasks compare it with the value
    /// they started with, because a quick Reset→Pass (as `Mesh` does) could
    /// otherwise happen between two looks at `mode` and go unnoticed.
    reset_epoch: u64,
    delay: Duration,
    drop_probability: f64,
    shutdown: bool,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    bytes: AtomicU64,
}

/// A TCP proxy on 127.0.0.1 in front of one target address.
///
/// All controls take `&self`, are cheap and can be called from any thread or
/// task. Dropping the proxy (or calling [`FaultProxy::shutdown`]) stops the
/// listener and every connection task.
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    control: watch::Sender<Control>,
    counters: Arc<Counters>,
    drop_rng: Arc<Mutex<Rng>>,
    listener_task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Bind 127.0.0.1 on an ephemeral port and start forwarding to `target`
    /// in [`Mode::Pass`]. Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = bind_below_ephemeral().await?;
        let addr = listener.local_addr()?;
        let (control, control_rx) = watch::channel(Control {
            mode: Mode::Pass,
            reset_epoch: 0,
            delay: Duration::ZERO,
            drop_probability: 0.0,
            shutdown: false,
        });
        let counters = Arc::new(Counters::default());
        let drop_rng = Arc::new(Mutex::new(Rng::new(0)));
        let listener_task = tokio::spawn(accept_loop(
            listener,
            target,
            control_rx,
            Arc::clone(&counters),
            Arc::clone(&drop_rng),
        ));
        tracing::debug!(%addr, %target, "fault proxy started");
        Ok(FaultProxy {
            addr,
            target,
            control,
            counters,
            drop_rng,
            listener_task: Some(listener_task),
        })
    }

    /// The address clients should dial instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn mode(&self) -> Mode {
        self.control.borrow().mode
    }

    pub fn set_mode(&self, mode: Mode) {
        self.control.send_modify(|c| {
            if mode == Mode::Reset {
                c.reset_epoch += 1;
            }
            c.mode = mode;
        });
    }

    /// One-way latency applied to every chunk read from now on, in both
    /// directions. Chunks already queued keep the delay they were read with.
    pub fn set_delay(&self, delay: Duration) {
        self.control.send_modify(|c| c.delay = delay);
    }

    pub fn delay(&self) -> Duration {
        self.control.borrow().delay
    }

    /// While in Pass mode, reset each newly accepted connection with
    /// probability `p`, drawing from an RNG seeded with `seed` so a run can
    /// be replayed. Existing connections are unaffected.
    pub fn set_drop(&self, p: f64, seed: u64) {
        *self.drop_rng.lock().unwrap_or_else(PoisonError::into_inner) = Rng::new(seed);
        self.control.send_modify(|c| c.drop_probability = p);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            accepted: self.counters.accepted.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
            active: self.counters.active.load(Ordering::Relaxed),
            bytes_forwarded: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// Stop listening and close every connection, waiting until all of it
    /// is done: once this returns, the port refuses connections.
    pub async fn shutdown(mut self) {
        self.control.send_modify(|c| c.shutdown = true);
        if let Some(task) = self.listener_task.take() {
            // The task only ends by returning or by being aborted; either
            // way the listener socket is closed by the time this resolves.
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Drop cannot wait, so abort instead: the runtime drops the listener
        // task, and with it the JoinSet that owns every connection task.
        if let Some(task) = self.listener_task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("control", &*self.control.borrow())
            .finish()
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mut control: watch::Receiver<Control>,
    counters: Arc<Counters>,
    drop_rng: Arc<Mutex<Rng>>,
) {
    // Owning the connection tasks here means aborting this one task (as
    // `Drop` does) tears down everything: a dropped JoinSet aborts its tasks.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown_requested(&mut control) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let socket = match accepted {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        // Typically fd exhaustion; retrying at once would spin.
                        tracing::warn!(error = %e, "fault proxy accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let (mode, drop_probability, epoch) = {
                    let c = control.borrow();
                    (c.mode, c.drop_probability, c.reset_epoch)
                };
                let dropped = mode == Mode::Pass
                    && drop_probability > 0.0
                    && drop_rng
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .chance(drop_probability);
                if mode == Mode::Reset || dropped {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    reset(&socket);
                    continue;
                }
                connections.spawn(connection(
                    socket,
                    target,
                    control.clone(),
                    epoch,
                    Arc::clone(&counters),
                ));
            }
        }
    }
    drop(listener);
    // Connection tasks see the shutdown flag and reset their sockets; give
    // them a moment to do so, then stop waiting for stragglers.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.shutdown().await;
    }
}

/// Resolves once the proxy is shutting down or has been dropped.
async fn shutdown_requested(control: &mut watch::Receiver<Control>) {
    loop {
        if control.borrow_and_update().shutdown {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when this connection must die: a Reset since it was accepted,
/// or proxy shutdown.
async fn killed(control: &mut watch::Receiver<Control>, epoch: u64) {
    loop {
        {
            let c = control.borrow_and_update();
            if c.shutdown || c.reset_epoch != epoch || c.mode == Mode::Reset {
                return;
            }
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

/// Close with RST rather than FIN, so the peer sees an error the way it
/// would if the other end crashed, instead of a polite end of stream.
fn reset(socket: &TcpStream) {
    if let Err(e) = socket.set_zero_linger() {
        tracing::debug!(error = %e, "set_zero_linger failed; closing with FIN");
    }
}

struct ActiveGuard(Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    mut client: TcpStream,
    target: SocketAddr,
    control: watch::Receiver<Control>,
    epoch: u64,
    counters: Arc<Counters>,
) {
    counters.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(Arc::clone(&counters));
    // The upstream socket lives out here, not inside `serve`, so that after
    // a kill both sockets can still be closed with a reset.
    let mut upstream = None;
    let mut kill_watch = control.clone();
    let outcome = tokio::select! {
        biased;
        () = killed(&mut kill_watch, epoch) => Err(io::Error::other("reset by fault proxy")),
        r = serve(&mut client, &mut upstream, target, &control, &counters) => r,
    };
    if let Err(e) = outcome {
        tracing::trace!(error = %e, "fault proxy connection ended");
        reset(&client);
        if let Some(up) = &upstream {
            reset(up);
        }
    }
}

async fn serve(
    client: &mut TcpStream,
    upstream: &mut Option<TcpStream>,
    target: SocketAddr,
    control: &watch::Receiver<Control>,
    counters: &Counters,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    // A connection accepted during a partition must not reach the target
    // yet (the target would see a peer the partition should hide), so it
    // waits here, swallowing whatever the client sends, until the link heals.
    let mut watch_mode = control.clone();
    let mut scratch = vec![0u8; CHUNK];
    loop {
        let mode = watch_mode.borrow_and_update().mode;
        match mode {
            Mode::Pass => break,
            // `killed` fires for this too; returning keeps the loop honest.
            Mode::Reset => return Err(io::Error::other("reset by fault proxy")),
            Mode::Blackhole => {
                tokio::select! {
                    n = client.read(&mut scratch) => {
                        if n? == 0 {
                            return Ok(());
                        }
                    }
                    changed = watch_mode.changed() => {
                        if changed.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    drop(scratch);

    let up = upstream.insert(TcpStream::connect(target).await?);
    up.set_nodelay(true)?;
    let (client_read, client_write) = client.split();
    let (up_read, up_write) = up.split();
    tokio::try_join!(
        pump(client_read, up_write, control.clone(), counters),
        pump(up_read, client_write, control.clone(), counters),
    )?;
    Ok(())
}

/// Copy one direction. Reading and writing are decoupled by a queue of
/// timestamped chunks so that latency delays each chunk without limiting the
/// direction to one chunk per delay period.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    control: watch::Receiver<Control>,
    counters: &Counters,
) -> io::Result<()> {
    let (queue_tx, mut queue_rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let reader_control = control.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                // Dropping the sender lets the writer drain and then
                // forward the end of stream.
                return Ok::<(), io::Error>(());
            }
            let (mode, delay) = {
                let c = reader_control.borrow();
                (c.mode, c.delay)
            };
            if mode != Mode::Pass {
                continue;
            }
            if queue_tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .await
                .is_err()
            {
                // The writer only goes away by failing, and try_join reports
                // its error; nothing more to do here.
                return Ok(());
            }
        }
    };
    let writer = async move {
        let mut control = control;
        while let Some((due, chunk)) = queue_rx.recv().await {
            // Without a delay, deliver at once: even an elapsed timer waits for the timer
            // wheel's next millisecond tick, which would add latency to every chunk.
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            // Checked again at delivery: a partition that starts while a
            // chunk is "on the wire" must swallow it too.
            if control.borrow().mode != Mode::Pass {
                continue;
            }
            to.write_all(&chunk).await?;
            counters
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // The FIN is traffic as well: hold it until the partition heals,
        // as TCP's retransmission would.
        while control.borrow_and_update().mode == Mode::Blackhole {
            if control.changed().await.is_err() {
                break;
            }
        }
        to.shutdown().await
    };
    tokio::try_join!(reader, writer)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    /// An echo server on loopback; it runs until the test's runtime ends.
    pub(crate) async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                s.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    pub(crate) async fn connect(addr: SocketAddr) -> TcpStream {
        let s = timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        s.set_nodelay(true).unwrap();
        s
    }

    /// Write `msg` and read back exactly as many bytes, within 5 s.
    pub(crate) async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .expect("round trip timed out")
            .expect("round trip failed");
        buf
    }

    /// True if a read sees nothing for 300 ms.
    pub(crate) async fn read_stalls(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        timeout(Duration::from_millis(300), s.read(&mut buf))
            .await
            .is_err()
    }

    /// True if the connection ends (EOF or error) within 2 s.
    async fn sees_close(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // Echoes of data sent before the reset may still be queued.
                Ok(Ok(_)) => continue,
            }
        }
    }

    #[tokio::test]
    async fn pass_forwards_echo() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        assert_ne!(proxy.addr(), echo);
        assert!(proxy.addr().ip().is_loopback());
        let mut s = connect(proxy.addr()).await;
        assert_eq!(round_trip(&mut s, b"hello").await, b"hello");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let writer = async {
            w.write_all(&big).await.unwrap();
        };
        let reader = async {
            let mut got = vec![0u8; big.len()];
            r.read_exact(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert!(got == big, "large transfer corrupted");
        // The counter is bumped just after the write that the client may
        // already have read, so allow it a moment to catch up.
        let want = 2 * (5 + big.len() as u64);
        for _ in 0..100 {
            if proxy.stats().bytes_forwarded == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = proxy.stats();
        assert_eq!(stats.bytes_forwarded, want);
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.active, 1);
    }

    #[tokio::test]
    async fn blackhole_stalls_then_pass_resumes() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        let mut s = connect(proxy.addr()).await;
        assert_eq!(round_trip(&mut s, b"a").await, b"a");

        proxy.set_mode(Mode::Blackhole);
        assert_eq!(proxy.mode(), Mode::Blackhole);
        s.write_all(b"lost").await.unwrap();
        assert!(read_stalls(&mut s).await, "blackhole forwarded data");

        proxy.set_mode(Mode::Pass);
        // "lost" was discarded, so the next bytes back are exactly these.
        assert_eq!(round_trip(&mut s, b"back").await, b"back");
    }

    #[tokio::test]
    async fn blackhole_holds_new_connections_until_pass() {
        // A bare listener as target, so the test can see whether the proxy
        // dialled it at all.
        let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let proxy = FaultProxy::start(target.local_addr().unwrap())
            .await
            .unwrap();
        proxy.set_mode(Mode::Blackhole);
        let mut s = connect(proxy.addr()).await;
        s.write_all(b"swallowed").await.unwrap();
        assert!(
            timeout(Duration::from_millis(300), target.accept())
                .await
                .is_err(),
            "target was dialled during the blackhole"
        );
        assert_eq!(proxy.stats().accepted, 1);

        proxy.set_mode(Mode::Pass);
        let (mut server, _) = timeout(Duration::from_secs(5), target.accept())
            .await
            .unwrap()
            .unwrap();
        s.write_all(b"yz").await.unwrap();
        let mut got = [0u8; 2];
        timeout(Duration::from_secs(5), server.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"yz", "bytes from the blackhole leaked through");
        server.write_all(b"back").await.unwrap();
        let mut got = [0u8; 4];
        timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"back");
    }

    #[tokio::test]
    async fn reset_closes_existing_and_new_connections() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        let mut s = connect(proxy.addr()).await;
        assert_eq!(round_trip(&mut s, b"ping").await, b"ping");

        proxy.set_mode(Mode::Reset);
        // A reset, not a polite FIN: the client must see an error, as it
        // would if the peer had crashed.
        let mut buf = [0u8; 8];
        let read = timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        assert!(
            matches!(&read, Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset),
            "existing connection after Reset: {read:?}"
        );
        assert_eq!(proxy.stats().active, 0);

        // Connect may succeed (the kernel completes the handshake) but the
        // connection must die at once.
        if let Ok(Ok(mut s2)) =
            timeout(Duration::from_secs(2), TcpStream::connect(proxy.addr())).await
        {
            let _ = s2.write_all(b"x").await;
            assert!(sees_close(&mut s2).await, "new connection survived Reset");
        }

        proxy.set_mode(Mode::Pass);
        let mut s3 = connect(proxy.addr()).await;
        assert_eq!(round_trip(&mut s3, b"again").await, b"again");
    }

    #[tokio::test]
    async fn quick_reset_then_pass_still_kills_connections() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        let mut s = connect(proxy.addr()).await;
        assert_eq!(round_trip(&mut s, b"1").await, b"1");
        proxy.set_mode(Mode::Reset);
        proxy.set_mode(Mode::Pass);
        assert!(sees_close(&mut s).await);
    }

    #[tokio::test]
    async fn delay_applies_each_way_without_serialising_chunks() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        let mut s = connect(proxy.addr()).await;
        round_trip(&mut s, b"warm").await;

        proxy.set_delay(Duration::from_millis(50));
        assert_eq!(proxy.delay(), Duration::from_millis(50));
        let start = std::time::Instant::now();
        assert_eq!(round_trip(&mut s, b"slow").await, b"slow");
        let rtt = start.elapsed();
        assert!(rtt >= Duration::from_millis(100), "round trip took {rtt:?}");

        // Ten separate writes 5 ms apart: if each chunk waited for the one
        // before it, the echoes would take >= 10 x 50 ms per direction.
        let start = std::time::Instant::now();
        let (mut r, mut w) = s.split();
        let writer = async {
            for i in 0..10u8 {
                w.write_all(&[i]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let reader = async {
            let mut got = [0u8; 10];
            r.read_exact(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        let took = start.elapsed();
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "order not preserved");
        assert!(took >= Duration::from_millis(100), "took {took:?}");
        assert!(took < Duration::from_millis(450), "took {took:?}");

        proxy.set_delay(Duration::ZERO);
        let start = std::time::Instant::now();
        round_trip(&mut s, b"fast").await;
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn drop_probability_resets_new_connections() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        proxy.set_drop(1.0, 7);
        let mut s = connect(proxy.addr()).await;
        let _ = s.write_all(b"x").await;
        assert!(sees_close(&mut s).await, "p=1 connection survived");

        let seed = crate::rng::seed_from_env("COFFER_TEST_SEED");
        proxy.set_drop(0.5, seed);
        let mut survived = 0;
        for _ in 0..40 {
            let mut s = connect(proxy.addr()).await;
            let _ = s.write_all(b"?").await;
            let mut b = [0u8; 1];
            if let Ok(Ok(1)) = timeout(Duration::from_secs(2), s.read(&mut b)).await {
                survived += 1;
            }
        }
        assert!((5..=35).contains(&survived), "survived {survived}/40");

        proxy.set_drop(0.0, 0);
        let mut s = connect(proxy.addr()).await;
        assert_eq!(round_trip(&mut s, b"ok").await, b"ok");
        assert_eq!(proxy.stats().accepted, 42);
        assert_eq!(proxy.stats().refused, 1 + 40 - survived);
    }

    #[tokio::test]
    async fn shutdown_closes_port_and_connections() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        let addr = proxy.addr();
        let mut s = connect(addr).await;
        round_trip(&mut s, b"hi").await;
        proxy.shutdown().await;
        assert!(sees_close(&mut s).await, "connection outlived shutdown");
        match timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Err(_)) => {}
            Ok(Ok(mut s)) => assert!(sees_close(&mut s).await),
            Err(_) => panic!("connect to a shut-down proxy hung"),
        }
    }

    #[tokio::test]
    async fn dropping_proxy_stops_everything() {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(echo).await.unwrap();
        let addr = proxy.addr();
        let mut s = connect(addr).await;
        round_trip(&mut s, b"hi").await;
        drop(proxy);
        assert!(sees_close(&mut s).await, "connection outlived drop");
        // Dropping aborts asynchronously; give the runtime a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        match timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Err(_)) => {}
            Ok(Ok(mut s)) => assert!(sees_close(&mut s).await),
            Err(_) => panic!("connect to a dropped proxy hung"),
        }
    }

    #[tokio::test]
    async fn target_down_closes_client() {
        // Bind then drop to get a port that (very likely) refuses.
        let dead = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = FaultProxy::start(dead).await.unwrap();
        let mut s = connect(proxy.addr()).await;
        assert!(sees_close(&mut s).await);
    }
}
