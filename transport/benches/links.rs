//! Benchmark (e): the vchan ring versus Unix domain sockets on the same payloads.
//!
//! `cargo bench -p aos-transport --bench links` prints, for 256 B and 64 KiB messages, one-way throughput
//! (MB/s) and round trips per second, for
//! - in process, the two ends on two threads: `vchan::pair` (heap ring, direct wake-ups) versus a tokio
//!   `UnixStream::pair`;
//! - across processes (this binary re-runs itself as the peer): a `/dev/shm` vchan ring (futex doorbells)
//!   versus a Unix socket;
//!
//! and the ratio vchan / Unix (above 1 = the ring is faster). Everything is measured in the same run.
#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is right

use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::Instant;

use aos_transport::link::vchan::{self, VchanConfig, VchanListener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const CHILD_ENV: &str = "AOS_LINKS_BENCH_CHILD";
const SINK: u8 = 0;
const ECHO: u8 = 1;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The peer: runs commands {mode, message size, count} until end of stream.
async fn serve(mut s: impl Io) -> std::io::Result<()> {
    let mut cmd = [0u8; 13];
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read_exact(&mut cmd).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let size = u32::from_le_bytes([cmd[1], cmd[2], cmd[3], cmd[4]]) as usize;
        let count = u64::from_le_bytes(cmd[5..13].try_into().unwrap_or([0; 8]));
        match cmd[0] {
            SINK => {
                let mut left = size as u64 * count;
                while left > 0 {
                    let n = s.read(&mut buf[..(left.min(1 << 16) as usize)]).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    left -= n as u64;
                }
                s.write_all(&[1]).await?;
            }
            _ => {
                for _ in 0..count {
                    s.read_exact(&mut buf[..size]).await?;
                    s.write_all(&buf[..size]).await?;
                }
            }
        }
        s.flush().await?;
    }
}

async fn command(s: &mut impl Io, mode: u8, size: usize, count: u64) {
    let mut cmd = [0u8; 13];
    cmd[0] = mode;
    cmd[1..5].copy_from_slice(&(size as u32).to_le_bytes());
    cmd[5..13].copy_from_slice(&count.to_le_bytes());
    s.write_all(&cmd).await.unwrap();
}

/// MB/s of `count` messages of `size` bytes, each written with its own `write_all`.
async fn throughput(s: &mut impl Io, size: usize, count: u64) -> f64 {
    let msg = vec![0x5Au8; size];
    let start = Instant::now();
    command(s, SINK, size, count).await;
    for _ in 0..count {
        s.write_all(&msg).await.unwrap();
    }
    s.flush().await.unwrap();
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack).await.unwrap();
    (size as f64 * count as f64) / start.elapsed().as_secs_f64() / 1e6
}

/// Round trips per second of `size`-byte messages echoed back.
async fn round_trips(s: &mut impl Io, size: usize, count: u64) -> f64 {
    let mut msg = vec![0xA5u8; size];
    let mut back = vec![0u8; size];
    command(s, ECHO, size, count).await;
    let start = Instant::now();
    for i in 0..count {
        // Mark both ends of each message, so a lost or stale echo is caught.
        let mark = i as u8;
        msg[0] = mark;
        msg[size - 1] = mark;
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        assert!(
            back[0] == mark && back[size - 1] == mark,
            "echo {i} came back different"
        );
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    assert!(back == msg, "the last echo came back different");
    rate
}

#[derive(Clone, Copy)]
struct Case {
    size: usize,
    stream_count: u64,
    rtt_count: u64,
}

const CASES: [Case; 2] = [
    Case {
        size: 256,
        stream_count: 200_000,
        rtt_count: 10_000,
    },
    Case {
        size: 64 * 1024,
        stream_count: 4_000,
        rtt_count: 2_000,
    },
];

/// Rounds per cell; the best round counts. Links are measured in turn within each round, so a load spike
/// from other work on the machine hits all of them alike.
const ROUNDS: usize = 7;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts the peer of an in-process pair on its own thread (with its own runtime) and returns our end,
/// made a stream by `enter` inside the caller's runtime.
fn in_process<T: Send + 'static, S: Io + 'static>(
    (near, far): (T, T),
    enter: fn(T) -> S,
) -> (S, std::thread::JoinHandle<std::io::Result<()>>) {
    let peer = std::thread::spawn(move || {
        let rt = runtime();
        let far = rt.block_on(async move { enter(far) });
        rt.block_on(serve(far))
    });
    (enter(near), peer)
}

fn std_unix_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn spawn_peer(role: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, role)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Best (MB/s, round trips/s) per link and case.
type Table = Vec<Vec<(f64, f64)>>;

async fn run_all(links: &mut [&mut dyn DynIo]) -> Table {
    let mut best = vec![vec![(0f64, 0f64); CASES.len()]; links.len()];
    for round in 0..=ROUNDS {
        for (ci, c) in CASES.iter().enumerate() {
            for (li, link) in links.iter_mut().enumerate() {
                let mut s = Dyn(&mut **link);
                // Round 0 warms up with a tenth of the work and is not counted.
                let scale = if round == 0 { 10 } else { 1 };
                let mbps = throughput(&mut s, c.size, c.stream_count / scale).await;
                let rtts = round_trips(&mut s, c.size, c.rtt_count / scale).await;
                if round > 0 {
                    let cell = &mut best[li][ci];
                    cell.0 = cell.0.max(mbps);
                    cell.1 = cell.1.max(rtts);
                }
            }
        }
    }
    best
}

/// Object-safe stand-in for `Io`, so links of different types can share one list.
trait DynIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DynIo for T {}

struct Dyn<'a>(&'a mut dyn DynIo);

impl AsyncRead for Dyn<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dyn<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, data)
    }
    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

fn child(role: &str) {
    let (kind, path) = role.split_once(':').unwrap();
    runtime().block_on(async move {
        match kind {
            "unix" => serve(UnixStream::connect(path).await.unwrap())
                .await
                .unwrap(),
            _ => serve(vchan::connect_shm(path, &VchanConfig::default()).unwrap())
                .await
                .unwrap(),
        }
    });
}

fn ratio_table(title: &str, unix: &[(f64, f64)], ring: &[(f64, f64)], ring_name: &str) {
    println!("\n{title}");
    println!(
        "{:<10} {:>16} {:>16} {:>9} {:>16} {:>16} {:>9}",
        "payload",
        "unix MB/s",
        format!("{ring_name} MB/s"),
        "ratio",
        "unix RT/s",
        format!("{ring_name} RT/s"),
        "ratio"
    );
    for ((c, u), r) in CASES.iter().zip(unix).zip(ring) {
        let payload = if c.size >= 1024 {
            format!("{} KiB", c.size / 1024)
        } else {
            format!("{} B", c.size)
        };
        println!(
            "{:<10} {:>16.0} {:>16.0} {:>8.2}x {:>16.0} {:>16.0} {:>8.2}x",
            payload,
            u.0,
            r.0,
            r.0 / u.0,
            u.1,
            r.1,
            r.1 / u.1
        );
    }
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    let config = VchanConfig::default();
    println!(
        "vchan ring {} KiB per direction; best of {ROUNDS} interleaved rounds; each message is its own write",
        config.ring_size / 1024
    );
    let sock = std::env::temp_dir().join(format!("aos-links-bench-{}.sock", std::process::id()));
    let shm = PathBuf::from("/dev/shm").join(format!("aos-links-bench-{}", std::process::id()));
    let _ = std::fs::remove_file(&sock);

    let table = runtime().block_on(async {
        let (mut unix_in, unix_peer) =
            in_process(std_unix_pair(), |s| UnixStream::from_std(s).unwrap());
        let (mut ring_in, ring_peer) = in_process(vchan::pair(&config).unwrap(), |s| s);

        let unix_listener = UnixListener::bind(&sock).unwrap();
        let mut unix_child = spawn_peer(&format!("unix:{}", sock.display()));
        let mut unix_x = unix_listener.accept().await.unwrap().0;
        let mut shm_listener = VchanListener::bind(&shm, &config).unwrap();
        let mut ring_child = spawn_peer(&format!("vchan:{}", shm.display()));
        let mut ring_x = shm_listener.accept().await.unwrap();

        let table = run_all(&mut [&mut unix_in, &mut ring_in, &mut unix_x, &mut ring_x]).await;
        drop((unix_in, ring_in, unix_x, ring_x));
        unix_peer.join().unwrap().unwrap();
        ring_peer.join().unwrap().unwrap();
        assert!(unix_child.wait().unwrap().success());
        assert!(ring_child.wait().unwrap().success());
        table
    });
    let _ = std::fs::remove_file(&sock);
    ratio_table("in process (two threads)", &table[0], &table[1], "vchan");
    ratio_table("across processes", &table[2], &table[3], "vchan-shm");
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
}
