//! Provisioning a whole unit through the cloud (M4): N = 1, 10 and 50 nodes (a main node and N-1
//! secondaries, each with its own SoftHSM token, MP links over loopback TCP), timed from the cloud's first
//! StartProvisioning to the last FinishProvisioning, versus Σ key generation in the same run: for each node,
//! initialising a fresh token and generating its three P-256 key pairs with bare cryptoki.
//!
//! Run: `cargo bench -p aos-edge --bench unit_provisioning [-- N...]`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use aos_config::KeyAlgorithm;
use aos_pkcs11::testkit::{SoftHsm, SO_PIN, USER_PIN};
use aos_pkcs11::{take_ownership, Pin, Token, TokenSelector};
use support::{password, within, TestUnit, UnitOptions, MAIN, TOKEN};

/// Time to provision a unit of `nodes` nodes through the cloud (registration waits excluded).
async fn provision_unit(nodes: usize) -> Duration {
    let mut unit = TestUnit::start(UnitOptions {
        secondaries: nodes - 1,
        ..UnitOptions::default()
    })
    .await;
    unit.wait_nodes(&[MAIN]).await;
    let start = Instant::now();
    within(
        "the main node",
        unit.cloud.provision(&password(), Some(&[MAIN])),
    )
    .await
    .unwrap();
    let mut took = start.elapsed();
    unit.main.wait_ready().await;
    if nodes > 1 {
        unit.wait_nodes(&unit.node_ids()).await;
        let start = Instant::now();
        let done = within("the secondaries", unit.cloud.provision(&password(), None))
            .await
            .unwrap();
        took += start.elapsed();
        assert_eq!(done.len(), nodes - 1);
    }
    unit.main.stop().await;
    for node in &mut unit.secondaries {
        node.stop().await;
    }
    took
}

/// What provisioning a node needs from its token at the least: initialise it and generate three key pairs.
fn bare_keygen(nodes: usize) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..nodes {
        let hsm = SoftHsm::new();
        let start = Instant::now();
        let selector = TokenSelector::Label(TOKEN.into());
        take_ownership(
            &hsm.module(),
            &selector,
            TOKEN,
            &Pin::new(SO_PIN),
            &Pin::new(USER_PIN),
        )
        .unwrap();
        let token = Token::open(hsm.module(), selector, Pin::new(USER_PIN)).unwrap();
        for label in ["iam", "sm", "mp"] {
            token
                .generate_key_pair(label, KeyAlgorithm::EccP256)
                .unwrap();
        }
        total += start.elapsed();
        std::mem::forget(token);
    }
    total
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .filter_map(|a| a.parse().ok())
        .filter(|n| *n >= 1)
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 10, 50]
    } else {
        sizes
    };
    let system = actix::System::new();
    println!(
        "{:>6} {:>14} {:>14} {:>8} {:>14}",
        "nodes", "unit (ms)", "Σ keygen (ms)", "ratio", "per node (ms)"
    );
    for nodes in sizes {
        let ours = system.block_on(provision_unit(nodes));
        let bare = bare_keygen(nodes);
        println!(
            "{:>6} {:>14.1} {:>14.1} {:>7.2}× {:>14.1}",
            nodes,
            ours.as_secs_f64() * 1e3,
            bare.as_secs_f64() * 1e3,
            ours.as_secs_f64() / bare.as_secs_f64(),
            ours.as_secs_f64() * 1e3 / nodes as f64,
        );
    }
}
