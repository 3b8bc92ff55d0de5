//! `aosctl provision --all` of a 3-node unit end to end: three in-process nodes (a main node and two
//! secondaries registered with it, each with its own SoftHSM), the built `aosctl` binary provisioning them
//! through the main node's public endpoint. Prints the wall time of each run and the median.
//!
//! Run with `cargo bench -p aos-edge --bench aosctl_provision`. `aosctl` itself is built in the bench
//! profile; the nodes run in this process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aos_pkcs11::testkit::SO_PIN;
use common::*;

const RUNS: usize = 5;

fn main() {
    let mut times: Vec<Duration> = actix_rt::System::new().block_on(async {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(one_run().await);
        }
        times
    });
    times.sort();
    for (i, t) in times.iter().enumerate() {
        println!("run {i}: {:.1} ms", t.as_secs_f64() * 1e3);
    }
    println!(
        "aosctl provision --all, 3 nodes x 2 cert types (P-256, SoftHSM): median {:.1} ms over {RUNS} runs",
        times[RUNS / 2].as_secs_f64() * 1e3
    );
}

async fn one_run() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let ca = dev_ca(dir.path());
    let password = file(dir.path(), "password", SO_PIN);
    let main = TestNode::start("main", None, &ca).await;
    let mut secondaries = Vec::new();
    for id in ["secondary-1", "secondary-2"] {
        let node = TestNode::start(id, Some(&main), &ca).await;
        secondaries.push(node);
    }
    let start = Instant::now();
    let out = aosctl(args(&[
        "provision",
        "--all",
        "--server",
        &main.public(),
        "--pin",
        &main.pin(),
        "--ca",
        ca.to_str().unwrap(),
        "--password-file",
        password.to_str().unwrap(),
        "--json",
    ]))
    .await;
    let elapsed = start.elapsed();
    let reports = json(&out);
    assert_eq!(reports.as_array().unwrap().len(), 3);
    main.leak();
    secondaries.into_iter().for_each(TestNode::leak);
    elapsed
}
