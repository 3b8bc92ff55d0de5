//! The daemon as a user runs it (M5): time from `aos-gatewayd` start to ready for a provisioned node, its
//! idle RSS, and `aosctl provision --all` of a 3-node unit of daemons, end to end. Baseline in the same run:
//! a process that only loads SoftHSM and logs in to the same token (`pkcs11-tool --list-objects`).
//! Goals: ready ≤ 200 ms, idle RSS ≤ 20 MiB.
//!
//! Run: `cargo bench -p aos-edge --bench gatewayd [-- ROUNDS]` (release binaries).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/daemons/mod.rs"]
mod daemons;

use std::process::Command;
use std::time::{Duration, Instant};

use daemons::*;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(5);
    let root = tempfile::tempdir().unwrap();
    let dev = DevCa::new(root.path());
    let ca_root = &dev.root;

    // One provisioned node.
    let node = NodeDir::new(root.path(), "main");
    let config = node.write_config(ca_root, "main", "");
    let metrics = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let daemon = Daemon::spawn(&config, &node.conf(), Some(metrics));
    let fingerprint = daemon.fingerprint();
    wait_listening(node.public);
    dev.provision(node.public, &fingerprint, false);
    assert_eq!(daemon.terminate().0, Some(0));

    let (mut ready, mut rss, mut hwm, mut baseline) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        let daemon = Daemon::spawn(&config, &node.conf(), Some(metrics));
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", metrics)).is_ok()
                && http_get(metrics, "/ready").starts_with("HTTP/1.1 200")
            {
                break;
            }
            assert!(start.elapsed() < PATIENCE);
            std::thread::sleep(Duration::from_millis(2));
        }
        ready.push(start.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_kib(daemon.child.id(), "VmRSS:") as f64 / 1024.0);
        hwm.push(rss_kib(daemon.child.id(), "VmHWM:") as f64 / 1024.0);
        assert_eq!(daemon.terminate().0, Some(0));

        let pin = std::fs::read_to_string(node.pin()).unwrap();
        let start = Instant::now();
        let out = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", node.conf())
            .arg("--module")
            .arg(softhsm_library())
            .args([
                "--token-label",
                "aoscore",
                "--login",
                "--pin",
                pin.trim(),
                "--list-objects",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        baseline.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let (ready, baseline) = (median(ready), median(baseline));
    println!("provisioned node, {rounds} starts (medians):");
    println!(
        "  start → /ready 200      {ready:8.1} ms   (goal ≤ 200 ms: {})",
        if ready <= 200.0 { "met" } else { "MISSED" }
    );
    println!(
        "  baseline: load SoftHSM + login + list (pkcs11-tool) {baseline:8.1} ms   ratio {:.2}×",
        ready / baseline
    );
    let (rss, hwm) = (median(rss), median(hwm));
    println!(
        "  idle RSS                {rss:8.1} MiB  (goal ≤ 20 MiB: {}), peak {hwm:.1} MiB",
        if rss <= 20.0 { "met" } else { "MISSED" }
    );

    // aosctl provision --all of a 3-node unit of daemons.
    let main = NodeDir::new(root.path(), "unit-main");
    let main_config = main.write_config(ca_root, "main", "");
    let main_daemon = Daemon::spawn(&main_config, &main.conf(), None);
    let fingerprint = main_daemon.fingerprint();
    let mut secondaries = Vec::new();
    for id in ["sec-1", "sec-2"] {
        let dir = NodeDir::new(root.path(), id);
        let config = dir.write_secondary_config(ca_root, id, &main, &fingerprint);
        secondaries.push(Daemon::spawn(&config, &dir.conf(), None));
    }
    let start = Instant::now();
    while main_daemon.count_lines("secondary node registered") < 2 {
        assert!(start.elapsed() < PATIENCE);
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let done = dev.provision(main.public, &fingerprint, true);
    let took = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(done.as_array().unwrap().len(), 3);
    println!("aosctl provision --all, 3 daemons (P-256 iam + sm each): {took:.0} ms end to end");
    for daemon in secondaries {
        assert_eq!(daemon.terminate().0, Some(0));
    }
    assert_eq!(main_daemon.terminate().0, Some(0));
}
