//! Tests of the vchan ring: in process (heap) and between two processes (`/dev/shm`).
//!
//! The cross-process tests run this test binary again as a child: `child_role` (ignored in normal runs)
//! reads its role from `AOS_VCHAN_CHILD`.

use std::io::{BufRead, ErrorKind};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Deterministic pseudo-random bytes (xorshift64*), so both processes can generate and check the same data.
struct Pattern(u64);

impl Pattern {
    fn new(seed: u64) -> Self {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut p = Pattern::new(seed);
        (0..len).map(|_| p.next_u64() as u8).collect()
    }
    /// A chunk size in 1..=max.
    fn chunk(&mut self, max: usize) -> usize {
        (self.next_u64() as usize % max) + 1
    }
}

/// Writes `data` in random chunks, then shuts down.
async fn send_all(
    w: &mut (impl AsyncWriteExt + Unpin),
    data: &[u8],
    seed: u64,
) -> std::io::Result<()> {
    let mut p = Pattern::new(seed);
    let mut off = 0;
    while off < data.len() {
        let n = p.chunk(9000).min(data.len() - off);
        w.write_all(&data[off..off + n]).await?;
        off += n;
    }
    w.shutdown().await
}

/// Reads to end of stream with random buffer sizes.
async fn recv_all(r: &mut (impl AsyncReadExt + Unpin), seed: u64) -> std::io::Result<Vec<u8>> {
    let mut p = Pattern::new(seed);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 9000];
    loop {
        let n = p.chunk(9000);
        let got = r.read(&mut buf[..n]).await?;
        if got == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..got]);
    }
}

fn config(ring_size: usize) -> VchanConfig {
    VchanConfig {
        ring_size,
        liveness_interval: Duration::from_millis(20),
    }
}

/// Runs `f` on its own thread with its own single-threaded runtime, so the two sides run in parallel.
fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

#[test]
fn ring_size_must_be_a_power_of_two_up_to_1_gib() {
    for bad in [0, 3, 1000, 1 << 31] {
        assert!(
            matches!(pair(&config(bad)), Err(VchanError::InvalidRingSize { requested }) if requested == bad)
        );
    }
    let (a, _b) = pair(&config(1)).unwrap();
    assert_eq!(a.ring_size(), 1);
    assert_eq!(a.peer_pid(), Some(std::process::id()));
}

#[test]
fn in_process_stress_both_directions_byte_exact() {
    // (ring size, bytes each way, iterations): tiny rings force a wake-up every few bytes.
    for (ring, len, iterations) in [
        (1, 3_000, 2),
        (16, 40_000, 3),
        (4096, 600_000, 3),
        (1 << 16, 3_000_000, 2),
    ] {
        for it in 0..iterations {
            let seed = (ring as u64) << 8 | it;
            let (a, b) = pair(&config(ring)).unwrap();
            let a_to_b = Pattern::bytes(seed, len);
            let b_to_a = Pattern::bytes(seed + 1, len + 7);
            let (exp_ab, exp_ba) = (a_to_b.clone(), b_to_a.clone());
            let side_a = on_thread(move || {
                Box::pin(async move {
                    let (mut r, mut w) = tokio::io::split(a);
                    let (sent, got) =
                        tokio::join!(send_all(&mut w, &a_to_b, seed), recv_all(&mut r, seed + 2));
                    sent.unwrap();
                    got.unwrap()
                })
            });
            let side_b = on_thread(move || {
                Box::pin(async move {
                    let (mut r, mut w) = tokio::io::split(b);
                    let (sent, got) = tokio::join!(
                        send_all(&mut w, &b_to_a, seed + 3),
                        recv_all(&mut r, seed + 4)
                    );
                    sent.unwrap();
                    got.unwrap()
                })
            });
            let got_ba = side_a.join().unwrap();
            let got_ab = side_b.join().unwrap();
            assert!(
                got_ab == exp_ab,
                "ring {ring} iteration {it}: a→b differs ({} of {} bytes)",
                got_ab.len(),
                exp_ab.len()
            );
            assert!(
                got_ba == exp_ba,
                "ring {ring} iteration {it}: b→a differs ({} of {} bytes)",
                got_ba.len(),
                exp_ba.len()
            );
        }
    }
}

#[tokio::test]
async fn shutdown_gives_eof_after_the_data_and_the_other_direction_goes_on() {
    let (mut a, mut b) = pair(&config(64)).unwrap();
    a.write_all(b"last words").await.unwrap();
    a.shutdown().await.unwrap();
    let err = a.write_all(b"more").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last words");
    // b can still talk to a.
    b.write_all(b"reply").await.unwrap();
    let mut buf = [0; 5];
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"reply");
}

#[tokio::test]
async fn dropping_one_side_gives_eof_to_readers_and_broken_pipe_to_writers() {
    let (mut a, b) = pair(&config(64)).unwrap();
    let (mut a2, mut b2) = pair(&config(64)).unwrap();
    // A reader blocked before the drop is woken.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        a2.read_to_end(&mut got).await.map(|_| got)
    });
    tokio::task::yield_now().await;
    b2.write_all(b"bye").await.unwrap();
    drop(b2);
    assert_eq!(reader.await.unwrap().unwrap(), b"bye");

    drop(b);
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf).await.unwrap(), 0);
    let err = a.write_all(b"anyone?").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    assert!(matches!(
        err.get_ref().and_then(|e| e.downcast_ref::<VchanError>()),
        Some(VchanError::PeerClosed)
    ));
}

#[tokio::test]
async fn a_full_ring_makes_the_writer_wait_until_the_reader_drains() {
    let (mut a, mut b) = pair(&config(16)).unwrap();
    assert_eq!(
        a.write(&[7; 100]).await.unwrap(),
        16,
        "a write copies what fits"
    );
    let mut blocked = tokio::spawn(async move {
        a.write_all(&[8; 40]).await.unwrap();
        a
    });
    // The writer cannot finish while the ring stays full.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), &mut blocked)
            .await
            .is_err()
    );
    let mut got = vec![0u8; 56];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..16], &[7; 16]);
    assert_eq!(&got[16..], &[8; 40]);
    blocked.await.unwrap();
}

#[tokio::test]
async fn named_in_process_listener_accepts_clients() {
    let name = format!("test-{}", std::process::id());
    let mut listener = MemListener::bind(&name, &config(256)).unwrap();
    assert!(matches!(
        MemListener::bind(&name, &config(256)),
        Err(VchanError::NameInUse { .. })
    ));
    let mut client = connect_mem(&name).unwrap();
    let mut server = listener.accept().await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut buf = [0; 5];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(server.ring_size(), 256);
    drop(listener);
    assert!(matches!(
        connect_mem(&name),
        Err(VchanError::NoListener { .. })
    ));
}

// === cross-process (/dev/shm) ===

fn shm_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!(
        "aos-vchan-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

const CHILD_ENV: &str = "AOS_VCHAN_CHILD";

/// Starts this test binary as a child running `child_role` with `role`.
fn spawn_child(role: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "link::vchan::tests::child_role",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until the child prints `line` on stdout.
fn wait_for_line(child: &mut std::process::Child, line: &str) {
    let out = child.stdout.as_mut().unwrap();
    let mut reader = std::io::BufReader::new(out);
    let mut got = String::new();
    loop {
        got.clear();
        assert_ne!(
            reader.read_line(&mut got).unwrap(),
            0,
            "child ended before printing {line:?}"
        );
        // libtest prints "test <name> ... " without a newline before the test body runs.
        if got.trim_end().ends_with(line) {
            return;
        }
    }
}

const XPROC_LEN: usize = 2_000_000;

/// The child's side of the cross-process tests, selected by `AOS_VCHAN_CHILD=<role>:<path>`.
#[test]
#[ignore = "child role of the cross-process vchan tests; run by them, not directly"]
fn child_role() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        panic!("{CHILD_ENV} is not set: this test only runs as a child of the cross-process tests");
    };
    let (role, path) = spec.split_once(':').unwrap();
    let path = PathBuf::from(path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match role {
            // Connect, then send and receive XPROC_LEN bytes concurrently, checking what arrives.
            "stress-client" => {
                let s = connect_shm(&path, &config(0)).unwrap();
                let (mut r, mut w) = tokio::io::split(s);
                let data = Pattern::bytes(2, XPROC_LEN);
                let (sent, got) = tokio::join!(send_all(&mut w, &data, 11), recv_all(&mut r, 12));
                sent.unwrap();
                assert!(
                    got.unwrap() == Pattern::bytes(1, XPROC_LEN),
                    "child received different bytes"
                );
                println!("child-ok");
            }
            // Serve one client, send it a greeting, then hang until killed.
            "hang-server" => {
                let mut l = VchanListener::bind(&path, &config(4096)).unwrap();
                println!("ready");
                let mut s = l.accept().await.unwrap();
                s.write_all(b"greeting").await.unwrap();
                std::future::pending::<()>().await;
            }
            // Connect, send a greeting, then hang until killed.
            "hang-client" => {
                let mut s = connect_shm(&path, &config(0)).unwrap();
                s.write_all(b"greeting").await.unwrap();
                println!("connected");
                std::future::pending::<()>().await;
            }
            // Bind and exit without running destructors: leaves a stale file behind.
            "bind-and-exit" => {
                let l = VchanListener::bind(&path, &config(4096)).unwrap();
                std::mem::forget(l);
                std::process::exit(0);
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

#[tokio::test]
async fn cross_process_stress_both_directions_byte_exact() {
    let path = shm_path("stress");
    let mut listener = VchanListener::bind(&path, &config(1 << 14)).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let mut child = spawn_child(&format!("stress-client:{}", path.display()));
    let s = listener.accept().await.unwrap();
    assert_eq!(s.peer_pid(), Some(child.id()));
    let (mut r, mut w) = tokio::io::split(s);
    let data = Pattern::bytes(1, XPROC_LEN);
    let (sent, got) = tokio::join!(send_all(&mut w, &data, 21), recv_all(&mut r, 22));
    sent.unwrap();
    assert!(
        got.unwrap() == Pattern::bytes(2, XPROC_LEN),
        "parent received different bytes"
    );
    wait_for_line(&mut child, "child-ok");
    assert!(child.wait().unwrap().success());
    // The listener prepared a fresh file for the next client.
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists(), "the listener removes its waiting file");
}

#[tokio::test]
async fn a_killed_server_process_is_detected_by_the_client() {
    let path = shm_path("killsrv");
    let mut child = spawn_child(&format!("hang-server:{}", path.display()));
    wait_for_line(&mut child, "ready");
    let mut s = connect_shm(&path, &config(0)).unwrap();
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"greeting");
    child.kill().unwrap();
    // Bounded wait: detection takes one liveness interval (20 ms) after the read blocks.
    let res = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("the read hung");
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    assert!(err.to_string().contains(&child.id().to_string()), "{err}");
    child.wait().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_killed_client_process_is_detected_by_the_server_even_while_writing() {
    let path = shm_path("killcli");
    let mut listener = VchanListener::bind(&path, &config(1024)).unwrap();
    let mut child = spawn_child(&format!("hang-client:{}", path.display()));
    let mut s = listener.accept().await.unwrap();
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"greeting");
    wait_for_line(&mut child, "connected");
    child.kill().unwrap();
    // The child never reads: the ring fills, then the blocked writer must learn that the peer is gone.
    let res = tokio::time::timeout(Duration::from_secs(30), s.write_all(&[0u8; 10_000]))
        .await
        .expect("the write hung");
    let err = res.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    child.wait().unwrap();
}

#[tokio::test]
async fn stale_files_are_refused_to_clients_and_replaced_by_servers() {
    let path = shm_path("stale");
    let mut child = spawn_child(&format!("bind-and-exit:{}", path.display()));
    assert!(child.wait().unwrap().success());
    assert!(path.exists(), "the child left its file behind");
    assert!(matches!(
        connect_shm(&path, &config(0)),
        Err(VchanError::StaleServer { .. })
    ));
    let mut listener = VchanListener::bind(&path, &config(64)).unwrap();
    let mut c = connect_shm(&path, &config(0)).unwrap();
    let mut s = listener.accept().await.unwrap();
    c.write_all(b"ok").await.unwrap();
    let mut buf = [0; 2];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok");
}

#[tokio::test]
async fn shm_connect_errors_are_typed() {
    let path = shm_path("errors");
    assert!(matches!(
        connect_shm(&path, &config(0)),
        Err(VchanError::Open { .. })
    ));
    std::fs::write(&path, vec![0u8; 8192 + 4096]).unwrap();
    assert!(matches!(
        connect_shm(&path, &config(0)),
        Err(VchanError::NotAVchan { .. })
    ));
    assert!(
        matches!(
            VchanListener::bind(&path, &config(64)),
            Err(VchanError::NotAVchan { .. })
        ),
        "a foreign file is never replaced"
    );
    std::fs::remove_file(&path).unwrap();

    let mut listener = VchanListener::bind(&path, &config(64)).unwrap();
    assert!(
        matches!(VchanListener::bind(&path, &config(64)), Err(VchanError::InUse { pid, .. }) if pid == std::process::id())
    );
    let first = connect_shm(&path, &config(0)).unwrap();
    assert!(
        matches!(connect_shm(&path, &config(0)), Err(VchanError::Busy { .. })),
        "one client per file"
    );
    let _served = listener.accept().await.unwrap();
    // After accepting, the listener offers a new file to the next client.
    let second = connect_shm(&path, &config(0)).unwrap();
    let _served2 = listener.accept().await.unwrap();
    drop((first, second));
}

#[tokio::test]
async fn shm_ring_in_one_process_closes_cleanly() {
    let path = shm_path("close");
    let mut listener = VchanListener::bind(&path, &config(32)).unwrap();
    let mut c = connect_shm(&path, &config(0)).unwrap();
    let mut s = listener.accept().await.unwrap();
    let writer = tokio::spawn(async move {
        c.write_all(&Pattern::bytes(5, 10_000)).await.unwrap();
        c.shutdown().await.unwrap();
        c
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert!(got == Pattern::bytes(5, 10_000));
    let c = writer.await.unwrap();
    drop(c);
    let err = s.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}
