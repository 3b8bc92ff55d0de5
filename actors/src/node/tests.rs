//! Start-up errors of a node; the flows of whole units are in the root package's `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aos_config::{KeyAlgorithm, NodeConfig, NodeRole};

use super::*;
use crate::iam::test_support::Fixture;

fn config(fx: &Fixture, role: NodeRole) -> Config {
    let dir = fx.hsm.dir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, fx.ca.root.pem()).unwrap();
    let mut node = NodeConfig::new("node-0", "unit-1", role);
    node.state_file = dir.join("state");
    node.working_dir = dir.join("work");
    let mut config = Config::new(node, ca);
    config.iam.public_listen = "127.0.0.1:0".parse().unwrap();
    config.iam.protected_listen = "127.0.0.1:0".parse().unwrap();
    config.cert_modules = vec![fx.module_config("iam", KeyAlgorithm::EccP256, "aoscore")];
    config
}

#[actix_rt::test]
async fn a_main_node_starts_and_stops() {
    let fx = Fixture::new();
    let mut node = Node::start(&config(&fx, NodeRole::Main), NodeOptions::default())
        .await
        .unwrap();
    assert!(!node.is_ready());
    assert!(node.controller().is_some() && node.registration().is_none());
    assert!(node.cm().is_none() && node.sm().is_none() && node.mp_server().is_none());
    let public = node.public_addr();
    assert!(tokio::net::TcpStream::connect(public).await.is_ok());
    node.stop().await;
    assert!(tokio::net::TcpStream::connect(public).await.is_err());
}

#[actix_rt::test]
async fn a_port_in_use_names_the_address() {
    let fx = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = config(&fx, NodeRole::Main);
    config.iam.public_listen = taken.local_addr().unwrap();
    let err = Node::start(&config, NodeOptions::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, NodeError::Server(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains(&taken.local_addr().unwrap().to_string()),
        "{err}"
    );
}

#[actix_rt::test]
async fn a_secondary_without_a_way_to_the_main_node_is_refused() {
    // The validator refuses this configuration; a configuration built in code reaches Node::start.
    let fx = Fixture::new();
    let err = Node::start(&config(&fx, NodeRole::Secondary), NodeOptions::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, NodeError::Unreachable(_)), "{err:?}");
    assert!(err.to_string().contains("mp.main_addr"), "{err}");
}
