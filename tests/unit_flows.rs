//! A whole unit — the cloud, a main node and two secondaries, each node with its own SoftHSM token — built
//! from configurations with `Node::start`, once with the MP links over loopback TCP and once over the vchan
//! ring. Everything is real: PKCS#11 keys, rustls handshakes, sockets, shared-memory rings.
//!
//! The flows of issue M4: cloud-driven provisioning of all three nodes; an SM on a secondary deploys a
//! service whose secret a functional server on the main node accepts for exactly its granted functions;
//! unregister then refuse; a restarted secondary registers again and its instance's secret still validates;
//! a deprovisioned secondary's token holds no keys; and the bad cases on the way.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use aos_actors::api::sm::{InstanceState, InstanceStatus};
use aos_actors::api::{
    ErrorCode, ProtectedRequest, ProtectedResponse, PublicRequest, WirePassword,
};
use aos_actors::cm::{IamAccess, LocalIam};
use aos_actors::iam::client::RegistrationState;
use aos_actors::iam::permissions::Secret;
use aos_actors::iam::provisioner::{NodeState, Password};
use aos_actors::iam::server::EndpointKind;
use aos_actors::mp::BridgeState;
use aos_transport::tls::Role;

use support::*;

#[actix_rt::test]
async fn a_unit_over_tcp() {
    whole_unit(LinkKind::Tcp).await;
}

#[actix_rt::test]
async fn a_unit_over_the_vchan_ring() {
    whole_unit(LinkKind::Vchan).await;
}

async fn whole_unit(link: LinkKind) {
    let mut unit = TestUnit::start(UnitOptions {
        link,
        ..UnitOptions::default()
    })
    .await;
    // Before provisioning the bridges are anonymous and nothing is ready.
    assert!(!unit.main.node().is_ready());
    assert!(unit.secondaries.iter().all(|n| !n.node().is_ready()));

    // Cloud-driven provisioning of all three, the main node first.
    let order = unit.provision().await;
    assert_eq!(order, [MAIN, SECONDARIES[0], SECONDARIES[1]]);
    for node in &unit.secondaries {
        wait_bridge_authenticated(node).await;
        wait_registered_protected(node).await;
    }
    let cm_iam = LocalIam::new(unit.main.node().iam().service.clone(), UNIT, Role::Cm).unwrap();
    let ids = match cm_iam.public(PublicRequest::GetAllNodeIds).await.unwrap() {
        aos_actors::api::PublicResponse::NodeIds(mut ids) => {
            ids.sort();
            ids
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(ids, [MAIN, SECONDARIES[0], SECONDARIES[1]]);

    // The SM of sec-1 (through the bridge) deploys a service; its secret works on the main node's
    // functional server for exactly its functions.
    let sm_controller = unit
        .main
        .node()
        .cm()
        .unwrap()
        .sm_controller()
        .unwrap()
        .clone();
    let (spec, permissions) = service("navigation");
    let statuses = within(
        "the SM of sec-1 connects and runs the service",
        wait_desired(&sm_controller, SECONDARIES[0], vec![spec.clone()]),
    )
    .await;
    assert!(
        matches!(
            statuses[..],
            [InstanceStatus {
                state: InstanceState::Running,
                ..
            }]
        ),
        "{statuses:?}"
    );
    let secret = unit
        .secondary(SECONDARIES[0])
        .runner
        .secret_of(&spec.ident)
        .unwrap();
    let checker = unit.checker().await;
    let grant = checker.check(&secret, "vis").await.unwrap();
    assert_eq!(grant.ident, spec.ident);
    assert_eq!(grant.permissions, permissions["vis"]);
    let allowed = checker.authorize(&secret, "vis", "set").await.unwrap();
    assert_eq!(allowed.permission, "rw");
    let denied = checker
        .authorize(&secret, "vis", "reboot")
        .await
        .unwrap_err();
    assert_eq!(denied.code, ErrorCode::Unauthorized);
    let other_server = checker.check(&secret, "dm").await.unwrap_err();
    assert_eq!(other_server.code, ErrorCode::NotFound);
    let forged = checker
        .check(&Secret::generate().unwrap(), "vis")
        .await
        .unwrap_err();
    assert_eq!(forged.code, ErrorCode::NotFound);

    // Bad cases of forwarded requests: a wrong password reaches the caller as such, an unknown node fails.
    let wrong = cm_iam
        .protected(ProtectedRequest::PauseNode {
            node_id: SECONDARIES[1].into(),
        })
        .await;
    assert!(wrong.is_ok(), "pause through the main node: {wrong:?}");
    cm_iam
        .protected(ProtectedRequest::ResumeNode {
            node_id: SECONDARIES[1].into(),
        })
        .await
        .unwrap();
    let wrong = cm_iam
        .protected(ProtectedRequest::Deprovision {
            node_id: SECONDARIES[1].into(),
            password: WirePassword(Password::new("not the password")),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code, ErrorCode::WrongPassword, "{wrong}");
    let unknown = within(
        "a request for an unknown node",
        cm_iam.protected(ProtectedRequest::PauseNode {
            node_id: "no-such-node".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::NotFound, "{unknown}");

    // Restart sec-1. Stopping its SM stops and unregisters its instance, so the old secret stops
    // validating; once the node is back it registers again, its SM gets the instance from the CM, and the
    // instance's new secret validates.
    unit.secondary(SECONDARIES[0]).stop().await;
    let refused = checker.check(&secret, "vis").await.unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::NotFound,
        "a stopped instance's secret"
    );
    unit.secondary(SECONDARIES[0]).start().await;
    let restarted = unit.secondary(SECONDARIES[0]);
    restarted.wait_ready().await;
    wait_bridge_authenticated(restarted).await;
    wait_registered_protected(restarted).await;
    let runner = restarted.runner.clone();
    let secret = eventually("the restarted SM runs the service again", || {
        let secret = runner.secret_of(&spec.ident).filter(|s| *s != secret);
        async move { secret }
    })
    .await;
    let grant = checker.check(&secret, "vis").await.unwrap();
    assert_eq!(grant.ident, spec.ident);
    assert_eq!(grant.permissions, permissions["vis"]);

    // Unregister (the service is no longer desired), then refuse its secret.
    within(
        "the service is stopped",
        wait_desired(&sm_controller, SECONDARIES[0], Vec::new()),
    )
    .await;
    let refused = checker.check(&secret, "vis").await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotFound);

    // Deprovision sec-2 through the main node: its token holds no keys afterwards.
    let sec2 = unit.secondary(SECONDARIES[1]);
    assert!(
        sec2.private_keys().len() >= 3,
        "provisioned: {:?}",
        sec2.private_keys()
    );
    let answer = cm_iam
        .protected(ProtectedRequest::Deprovision {
            node_id: SECONDARIES[1].into(),
            password: WirePassword(password()),
        })
        .await
        .unwrap();
    assert_eq!(answer, ProtectedResponse::State(NodeState::Unprovisioned));
    let sec2 = unit.secondary(SECONDARIES[1]);
    assert_eq!(sec2.private_keys(), Vec::<String>::new());
    assert_eq!(sec2.node().status().state, NodeState::Unprovisioned);

    unit.main.stop().await;
    for node in &mut unit.secondaries {
        node.stop().await;
    }
}

async fn wait_bridge_authenticated(node: &TestNode) {
    let mut state = node.node().bridge().unwrap().state();
    within(&format!("{}'s bridge authenticated", node.id), async {
        loop {
            if matches!(
                &*state.borrow_and_update(),
                BridgeState::Connected {
                    authenticated: true,
                    ..
                }
            ) {
                return;
            }
            state.changed().await.unwrap();
        }
    })
    .await;
}

async fn wait_registered_protected(node: &TestNode) {
    let registration = node.node().registration().unwrap();
    eventually(&format!("{} registered over mTLS", node.id), || {
        let state: RegistrationState = registration.state();
        async move { (state.registered && state.endpoint == EndpointKind::Protected).then_some(()) }
    })
    .await;
}
