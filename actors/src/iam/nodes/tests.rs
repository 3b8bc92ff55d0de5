//! A main node and its secondaries in one process: registration, forwarding, faults. Real SoftHSM tokens
//! (one SoftHSM per node), a shared test CA, rustls over loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, ResponseFuture};
use aos_transport::frame::Channel;
use aos_transport::tls::{Policy, Role, TlsOptions};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::api::{
    wire, ErrorCode, IamAnswer, IamRequest, IamResponse, NodeEvent, NodeInfo, NodeStreamMessage,
    ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse, WirePassword,
};
use crate::iam::client::{client_tls, IamClient, IamServerAuth};
use crate::iam::provisioner::{NodeState, Password};
use crate::iam::server::testing::*;
use crate::iam::server::EndpointKind;
use crate::iam::service::Caller;
use crate::net::{self, Incoming, Link, LinkActor, Routes, StateChanged, TcpDialer, WireError};

fn types(node: &str) -> ProtectedRequest {
    ProtectedRequest::GetCertTypes {
        node_id: node.into(),
    }
}

fn cert_types() -> ProtectedResponse {
    ProtectedResponse::CertTypes(CERT_TYPES.iter().map(|t| t.to_string()).collect())
}

fn info(node: &str, unit: &str) -> NodeInfo {
    NodeInfo {
        node_id: node.into(),
        unit_id: unit.into(),
        name: node.into(),
        node_type: "test".into(),
        is_main: false,
        state: NodeState::Unprovisioned,
        attrs: BTreeMap::new(),
    }
}

async fn register(client: &IamClient, info: NodeInfo) -> Result<(), ErrorCode> {
    match client
        .request(IamRequest::Stream(NodeStreamMessage::Register(info)))
        .await
    {
        Ok(IamResponse::Registered) => Ok(()),
        Ok(other) => panic!("{other:?}"),
        Err(err) => Err(err.code),
    }
}

/// Skip node events until one matches `want`.
async fn event(
    events: &mut mpsc::UnboundedReceiver<NodeEvent>,
    what: &str,
    want: impl Fn(&NodeEvent) -> bool,
) -> NodeEvent {
    within(what, async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if want(&event) {
                return event;
            }
        }
    })
    .await
}

fn connected(node: &str) -> impl Fn(&NodeEvent) -> bool + '_ {
    move |e| matches!(e, NodeEvent::Connected(info) if info.node_id == node)
}

fn disconnected(node: &str) -> impl Fn(&NodeEvent) -> bool + '_ {
    move |e| matches!(e, NodeEvent::Disconnected { node_id } if node_id == node)
}

async fn sign_and_apply(client: &IamClient, node: &TestNode, cert_type: &str) -> String {
    let ProtectedResponse::Csr(csr) = client
        .protected(ProtectedRequest::CreateKey {
            node_id: node.node_id().into(),
            cert_type: cert_type.into(),
            subject: String::new(),
            password: password(),
        })
        .await
        .unwrap()
    else {
        panic!("no CSR")
    };
    let ProtectedResponse::Cert(info) = client
        .protected(ProtectedRequest::ApplyCert {
            node_id: node.node_id().into(),
            cert_type: cert_type.into(),
            pem: node.fx.sign(&csr, 30),
        })
        .await
        .unwrap()
    else {
        panic!("no cert")
    };
    info.serial
}

/// Provision `node` through `client` (which reaches it directly or through the main node); returns the
/// serial of its `iam` certificate.
async fn provision_through(client: &IamClient, node: &TestNode) -> String {
    let id = node.node_id().to_owned();
    let start = ProtectedRequest::StartProvisioning {
        node_id: id.clone(),
        password: password(),
    };
    assert_eq!(
        client.protected(start).await.unwrap(),
        ProtectedResponse::State(NodeState::Provisioning)
    );
    let mut iam = String::new();
    for cert_type in APPLY_ORDER {
        let serial = sign_and_apply(client, node, cert_type).await;
        if cert_type == "iam" {
            iam = serial;
        }
    }
    let finish = ProtectedRequest::FinishProvisioning {
        node_id: id,
        password: password(),
    };
    assert_eq!(
        client.protected(finish).await.unwrap(),
        ProtectedResponse::State(NodeState::Provisioned)
    );
    iam
}

#[actix_rt::test]
async fn secondaries_register_and_the_main_node_forwards_provisioning_to_them() {
    let unit = TestUnit::new();
    let main = unit.node("main", true).await;
    let n1 = unit.node("n1", false).await;
    let n2 = unit.node("n2", false).await;
    let follow_main = IamServerAuth::IdentityOrPinned {
        roots: unit.roots.clone(),
        policy: Policy::roles([Role::Iam]).with_unit(UNIT).with_node("main"),
        pin: main.fingerprint(),
    };
    let operator = ready(main.public_client(follow_main.clone())).await;
    let mut events = operator.subscribe_node_changed().await.unwrap();

    let r1 = unit.register(&n1, &main);
    let r2 = unit.register(&n2, &main);
    for r in [&r1, &r2] {
        r.registered(EndpointKind::Public, PATIENCE).await.unwrap();
    }
    let mut seen = BTreeSet::new();
    while seen.len() < 2 {
        if let NodeEvent::Connected(info) = event(&mut events, "n1 and n2 connected", |e| {
            matches!(e, NodeEvent::Connected(_))
        })
        .await
        {
            seen.insert(info.node_id);
        }
    }
    assert_eq!(seen, BTreeSet::from(["n1".to_owned(), "n2".to_owned()]));
    let PublicResponse::NodeIds(ids) = operator.public(PublicRequest::GetAllNodeIds).await.unwrap()
    else {
        panic!("no ids")
    };
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["main".to_owned(), "n1".to_owned(), "n2".to_owned()])
    );
    let PublicResponse::NodeInfo(n1_info) = operator
        .public(PublicRequest::GetNodeInfo {
            node_id: "n1".into(),
        })
        .await
        .unwrap()
    else {
        panic!("no info")
    };
    assert_eq!(
        (n1_info.is_main, n1_info.state),
        (false, NodeState::Unprovisioned)
    );
    assert_eq!(n1_info.node_id, "n1");
    let unknown = operator
        .public(PublicRequest::GetNodeInfo {
            node_id: "n9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::NotFound, "{unknown}");

    // Many forwarded requests in flight at once, to both nodes, each gets its own answer.
    let calls = (0..20).map(|i| operator.protected(types(if i % 2 == 0 { "n1" } else { "n2" })));
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.unwrap(), cert_types());
    }
    // A node nobody registered fails at once.
    assert_eq!(
        operator.protected(types("n9")).await.unwrap_err().code,
        ErrorCode::NotFound
    );

    // The main node provisions n1 through its registration stream; a wrong password for n2 comes back as
    // such.
    let n1_serial = provision_through(&operator, &n1).await;
    let start_n2 = ProtectedRequest::StartProvisioning {
        node_id: "n2".into(),
        password: password(),
    };
    assert_eq!(
        operator.protected(start_n2).await.unwrap(),
        ProtectedResponse::State(NodeState::Provisioning)
    );
    let wrong = ProtectedRequest::CreateKey {
        node_id: "n2".into(),
        cert_type: "iam".into(),
        subject: String::new(),
        password: WirePassword(Password::new("not-the-password")),
    };
    assert_eq!(
        operator.protected(wrong).await.unwrap_err().code,
        ErrorCode::WrongPassword
    );
    // n1 now has an identity, but the main node does not serve its protected endpoint yet: n1 stays
    // reachable over its public link, and the main node's cache knows its new state.
    event(&mut events, "n1 provisioned", |e| {
        matches!(e, NodeEvent::Changed(i) if i.node_id == "n1" && i.state == NodeState::Provisioned)
    })
    .await;
    assert_eq!(operator.protected(types("n1")).await.unwrap(), cert_types());

    // The main node provisions itself; n1 moves to the protected endpoint with its own certificate.
    let main_serial = provision_through(&operator, &main).await;
    r1.registered(EndpointKind::Protected, PATIENCE)
        .await
        .unwrap();
    let registrations = main.controller.as_ref().unwrap().registrations().await;
    let identities: BTreeMap<String, Option<String>> = registrations
        .into_iter()
        .map(|r| (r.info.node_id, r.identity.map(|i| i.to_string())))
        .collect();
    assert_eq!(
        identities,
        BTreeMap::from([
            ("n1".to_owned(), Some(format!("urn:aos:{UNIT}:n1:iam"))),
            ("n2".to_owned(), None),
        ])
    );
    // Anonymous provisioning through the main node is over; its cm may, through n1's new link.
    assert_eq!(
        operator.protected(types("n1")).await.unwrap_err().code,
        ErrorCode::Unauthorized
    );
    let cm = ready(main.protected_client(Some(&unit.client_creds("main", Role::Cm)))).await;
    assert_eq!(cm.protected(types("n1")).await.unwrap(), cert_types());
    // A forwarded public request: n1's certificate as n1 reports it.
    let PublicResponse::Cert(cert) = operator
        .public(PublicRequest::GetCert {
            node_id: "n1".into(),
            cert_type: "iam".into(),
            issuer: Vec::new(),
            serial: String::new(),
        })
        .await
        .unwrap()
    else {
        panic!("no cert")
    };
    assert_eq!(cert.serial, n1_serial);
    // A client following the main node through provisioning now verifies its CA-issued certificate.
    let fresh = main.public_client(follow_main);
    assert_eq!(server_serial(&fresh).await, main_serial);
}

#[actix_rt::test]
async fn a_restarted_secondary_registers_again() {
    let unit = TestUnit::new();
    let main = unit.node("main", true).await;
    let n1 = unit.node("n1", false).await;
    let operator = ready(main.pinned_client()).await;
    let mut events = operator.subscribe_node_changed().await.unwrap();
    let registration = unit.register(&n1, &main);
    event(&mut events, "n1 connected", connected("n1")).await;
    assert_eq!(operator.protected(types("n1")).await.unwrap(), cert_types());

    // The secondary goes away: its IAM stops.
    registration.stop().await;
    let fixture = n1.into_fixture();
    event(&mut events, "n1 disconnected", disconnected("n1")).await;
    // A node that was registered is waited for (the retries), then reported unavailable; one that never
    // registered is unknown at once.
    assert_eq!(
        operator.protected(types("n1")).await.unwrap_err().code,
        ErrorCode::Unavailable
    );
    assert_eq!(
        operator.protected(types("n9")).await.unwrap_err().code,
        ErrorCode::NotFound
    );

    // It comes back on the same token and state and registers again.
    let n1 = unit.start(fixture, false).await;
    let registration = unit.register(&n1, &main);
    registration
        .registered(EndpointKind::Public, PATIENCE)
        .await
        .unwrap();
    event(&mut events, "n1 connected again", connected("n1")).await;
    assert_eq!(operator.protected(types("n1")).await.unwrap(), cert_types());
}

/// A request held by a [`Gate`]: its body and where its answer goes.
type Held = (IamRequest, oneshot::Sender<Result<Bytes, WireError>>);

/// A secondary that holds every forwarded request until the test answers it.
struct Gate(mpsc::UnboundedSender<Held>);

impl Actor for Gate {
    type Context = Context<Self>;
}

impl Handler<Incoming> for Gate {
    type Result = ResponseFuture<Result<Bytes, WireError>>;

    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        let request = wire::decode(&msg.body).unwrap();
        let _ = self.0.send((request, answer));
        Box::pin(async move {
            answered.await.unwrap_or_else(|_| {
                Err(WireError::new(
                    net::ErrorCode::INTERNAL,
                    "dropped by the test",
                ))
            })
        })
    }
}

/// Tells the test when a link connects.
struct Connected(mpsc::UnboundedSender<()>);

impl Actor for Connected {
    type Context = Context<Self>;
}

impl Handler<StateChanged> for Connected {
    type Result = ();

    fn handle(&mut self, msg: StateChanged, _: &mut Context<Self>) {
        if msg.state.is_connected() {
            let _ = self.0.send(());
        }
    }
}

/// A fake secondary `node` registered with `main` over its public endpoint; what it is asked arrives on the
/// receiver.
async fn fake_secondary(
    unit: &TestUnit,
    main: &TestNode,
    node: &str,
) -> (Link, mpsc::UnboundedReceiver<Held>) {
    let (held, requests) = mpsc::unbounded_channel();
    let (up, mut is_up) = mpsc::unbounded_channel();
    let routes = Routes::new()
        .handle(Channel::IamOpen, Gate(held).start().recipient())
        .watch_state(Connected(up).start().recipient());
    let tls = client_tls(
        IamServerAuth::Pinned(main.fingerprint()),
        None,
        &TlsOptions::default(),
    )
    .unwrap();
    let link = LinkActor::dial(
        &unit.pool,
        link_config(),
        Arc::new(TcpDialer::new(main.server.public_addr())),
        tls,
        routes,
    )
    .unwrap();
    within("the fake secondary to connect", is_up.recv())
        .await
        .unwrap();
    let body = wire::encode(&IamRequest::Stream(NodeStreamMessage::Register(info(
        node, UNIT,
    ))))
    .unwrap();
    let answer = link.request(Channel::IamOpen, body).await.unwrap();
    assert_eq!(
        wire::decode::<IamAnswer>(&answer).unwrap(),
        Ok(IamResponse::Registered)
    );
    (link, requests)
}

#[actix_rt::test]
async fn a_silent_secondary_times_out_and_a_vanishing_one_fails_fast() {
    let mut unit = TestUnit::new();
    // Short for GetCertTypes; far beyond PATIENCE for StartProvisioning, so waiting for it would hang the
    // test.
    unit.forward.timeout = Duration::from_millis(300);
    unit.forward.long_timeout = Duration::from_secs(600);
    unit.forward.retries = 2;
    let main = unit.node("main", true).await;
    let (fake, mut asked) = fake_secondary(&unit, &main, "n1").await;
    let service = main.service.clone();

    // Silent: the caller gets Timeout, and a late answer is dropped.
    let (answer, held) = tokio::join!(
        service.protected(&Caller::Anonymous, types("n1")),
        asked.recv()
    );
    assert_eq!(answer.unwrap_err().code, ErrorCode::Timeout);
    let (request, late) = held.unwrap();
    assert_eq!(
        request,
        IamRequest::Stream(NodeStreamMessage::ForwardProtected(types("n1")))
    );
    let _ = late.send(Ok(wire::encode::<IamAnswer>(&Ok(IamResponse::Protected(
        cert_types(),
    )))
    .unwrap()));

    // An answered request gets its own answer.
    let svc = service.clone();
    let call = actix_rt::spawn(async move { svc.protected(&Caller::Anonymous, types("n1")).await });
    let (_, answer) = within("the forwarded request", asked.recv()).await.unwrap();
    answer
        .send(Ok(wire::encode::<IamAnswer>(&Ok(IamResponse::Protected(
            cert_types(),
        )))
        .unwrap()))
        .unwrap();
    assert_eq!(
        within("the answer", call).await.unwrap().unwrap(),
        cert_types()
    );

    // Vanishing mid-request: the caller learns at once (after the retries), not after 10 minutes.
    let svc = service.clone();
    let start = ProtectedRequest::StartProvisioning {
        node_id: "n1".into(),
        password: password(),
    };
    let call = actix_rt::spawn(async move { svc.protected(&Caller::Anonymous, start).await });
    let (request, _never) = within("the forwarded start", asked.recv()).await.unwrap();
    assert!(matches!(
        request,
        IamRequest::Stream(NodeStreamMessage::ForwardProtected(
            ProtectedRequest::StartProvisioning { .. }
        ))
    ));
    fake.close("the secondary crashes").await;
    let err = within("the caller to learn", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
    assert_eq!(
        service
            .protected(&Caller::Anonymous, types("n1"))
            .await
            .unwrap_err()
            .code,
        ErrorCode::Unavailable,
        "a departed node stays unavailable until it registers again"
    );
}

#[actix_rt::test]
async fn only_a_nodes_own_iam_identity_registers_it_over_the_protected_endpoint() {
    let unit = TestUnit::new();
    let main = unit.node("main", true).await;
    main.provision().await;
    let watcher = ready(main.identity_client()).await;
    let mut events = watcher.subscribe_node_changed().await.unwrap();

    let n1 = ready(main.protected_client(Some(&unit.client_creds("n1", Role::Iam)))).await;
    assert_eq!(
        register(&n1, info("n2", UNIT)).await,
        Err(ErrorCode::Unauthorized)
    );
    assert_eq!(register(&n1, info("n1", UNIT)).await, Ok(()));
    let sm = ready(main.protected_client(Some(&unit.client_creds("n3", Role::Sm)))).await;
    assert_eq!(
        register(&sm, info("n3", UNIT)).await,
        Err(ErrorCode::Unauthorized)
    );

    let anonymous = ready(main.identity_client()).await;
    assert_eq!(
        register(&anonymous, info("n1", UNIT)).await,
        Err(ErrorCode::Unauthorized),
        "an anonymous registration cannot take over an authenticated node"
    );
    assert_eq!(
        register(&anonymous, info("main", UNIT)).await,
        Err(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        register(&anonymous, info("n4", "unit-2")).await,
        Err(ErrorCode::InvalidArgument)
    );
    assert_eq!(register(&anonymous, info("n4", UNIT)).await, Ok(()));
    assert_eq!(
        register(&anonymous, info("n5", UNIT)).await,
        Err(ErrorCode::InvalidArgument),
        "one node per connection"
    );
    let identities: Vec<(String, bool)> = main
        .controller
        .as_ref()
        .unwrap()
        .registrations()
        .await
        .into_iter()
        .map(|r| (r.info.node_id, r.identity.is_some()))
        .collect();
    assert_eq!(
        identities,
        vec![("n1".to_owned(), true), ("n4".to_owned(), false)]
    );

    // Once n1's authenticated link is gone, the node may register again from an unprovisioned start.
    n1.close().await;
    event(&mut events, "n1 disconnected", disconnected("n1")).await;
    let again = ready(main.identity_client()).await;
    assert_eq!(register(&again, info("n1", UNIT)).await, Ok(()));
    // Node events are for the main node only.
    let n9 = unit.node("n9", false).await;
    let secondary_client = ready(n9.pinned_client()).await;
    assert_eq!(
        secondary_client
            .subscribe_node_changed()
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        register(&secondary_client, info("n1", UNIT)).await,
        Err(ErrorCode::NotFound)
    );
}
