//! A real unit through the operations the runner uses: provision, deploy, a permission check, and each
//! fault with its recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aos_actors::api::ErrorCode;
use aos_actors::iam::provisioner::NodeState;

use super::*;

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(PATIENCE, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[actix_rt::test]
async fn a_unit_provisions_serves_and_recovers_from_each_fault() {
    let unit = SimUnit::start(UnitOptions::default()).await.unwrap();
    let results = unit.provision(&[0, 1, 2], 4).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert!(unit.nodes.iter().all(SimNode::is_ready));

    let grant = vec![("get".to_owned(), "r".to_owned())];
    unit.deploy(1, vec![service_spec("nav", "vis", &grant)])
        .await
        .unwrap();
    let secret = unit.nodes[1]
        .runner
        .secret_of(&service_ident("nav"))
        .unwrap();
    let checker = unit.checker().unwrap();
    checker.client().connected(PATIENCE).await.unwrap();
    assert_eq!(
        checker
            .authorize(&secret, "vis", "get")
            .await
            .unwrap()
            .permission,
        "r"
    );
    let refused = checker.authorize(&secret, "vis", "set").await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unauthorized);
    unit.message(2, PATIENCE).await.unwrap();

    // A cut link: messages to the node fail, then flow again once restored.
    unit.cut(2);
    assert!(unit.message(2, Duration::from_secs(2)).await.is_err());
    unit.restore(2);
    eventually("messages after the cut", || async {
        unit.message(2, Duration::from_secs(2)).await.is_ok()
    })
    .await;

    // A failed token: the node cannot renew; after healing it can.
    let fault = unit.fail_token(2).unwrap();
    assert!(
        unit.renew(2).await.is_err(),
        "a renewal with a failed token"
    );
    unit.heal_token(fault).unwrap();
    eventually("a renewal after healing", || async {
        unit.renew(2).await.is_ok()
    })
    .await;

    // A crash: the node comes back provisioned and registers again.
    unit.crash(2).await;
    assert!(!unit.nodes[2].is_up());
    unit.restart(2).await.unwrap();
    assert!(unit.nodes[2].wait_ready().await);
    eventually("messages after the restart", || async {
        unit.message(2, Duration::from_secs(2)).await.is_ok()
    })
    .await;

    // Tokens hold complete sets only, one per module of the (default) AosCore profile, the self-signed
    // RSA `diskencryption` included; a deprovisioned node's token holds nothing.
    let contents = unit.token_contents(2).unwrap();
    assert!(contents.leftovers.is_empty(), "{contents:?}");
    let types: Vec<&str> = contents.complete.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["mp", "sm", "iam", "diskencryption"], "{contents:?}");
    let main: Vec<String> = unit
        .token_contents(0)
        .unwrap()
        .complete
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        main,
        ["online", "offline", "cm", "sm", "iam", "diskencryption"]
    );
    unit.deprovision(2).await.unwrap();
    assert_eq!(unit.nodes[2].status().unwrap().0, NodeState::Unprovisioned);
    assert_eq!(unit.token_contents(2).unwrap().total(), 0);
    unit.stop().await;
}

#[actix_rt::test]
async fn a_service_on_the_main_node_of_a_p256_unit_runs_and_its_secret_validates() {
    let unit = SimUnit::start(UnitOptions {
        nodes: 1,
        keys: KeyProfile::P256,
        ..UnitOptions::default()
    })
    .await
    .unwrap();
    let results = unit.provision(&[0], 1).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let contents = unit.token_contents(0).unwrap();
    let types: Vec<&str> = contents.complete.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["cm", "sm", "iam"], "{contents:?}");
    let grant = vec![("get".to_owned(), "r".to_owned())];
    let statuses = unit
        .deploy(0, vec![service_spec("logger", "vis", &grant)])
        .await
        .unwrap();
    let secret = unit.nodes[0].runner.secret_of(&service_ident("logger"));
    assert!(secret.is_some(), "{statuses:?}");
    let checker = unit.checker().unwrap();
    checker.client().connected(PATIENCE).await.unwrap();
    assert!(checker
        .authorize(&secret.unwrap(), "vis", "get")
        .await
        .is_ok());
    unit.stop().await;
}
