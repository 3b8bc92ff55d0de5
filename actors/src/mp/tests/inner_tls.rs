//! TLS inside the tunnel: an SM on the secondary authenticates to a CM-like server on the main node with its
//! own `sm` certificate, and the server sees that identity, not the bridge's.

use std::net::SocketAddr;

use aos_transport::tls::testutil::{dial, echo, EchoServer};
use aos_transport::tls::{
    client_config, server_config, ClientAuth, Policy, RefusalReason, ServerAuth,
};

use super::*;

#[actix_rt::test]
async fn an_inner_mtls_session_carries_the_inner_clients_identity_end_to_end() {
    let unit = Unit::new();
    // CM's SM controller on the main node: mTLS, role `sm` only, presenting a `cm` certificate.
    let (_, cm_creds) = unit.creds_from(&unit.pki, id("main", Role::Cm), 30);
    let cm_tls = server_config(
        &cm_creds,
        ClientAuth::Required {
            roots: unit.pki.roots(),
            policy: Policy::roles([Role::Sm]),
        },
        &TlsOptions::default(),
    )
    .unwrap();
    let mut cm = EchoServer::start(cm_tls, Duration::from_secs(10)).await;
    let targets = BTreeMap::from([(Channel::CmSecure, LinkAddr::Tcp(cm.addr))]);

    let pool = ArbiterPool::new(2);
    let server = unit.server(&pool, any_tcp(), targets).await;
    let mut server_events = server.subscribe();
    let bridge = unit
        .bridge(
            &pool,
            server.local_addr(),
            unit.node_creds(),
            &[Channel::CmSecure],
        )
        .await;
    assert_eq!(connected(&bridge).await, (true, 1));
    assert_eq!(
        link_up(&mut server_events).await.0,
        Some(id("n1", Role::Mp))
    );
    let local: SocketAddr = match bridge.local_addr(Channel::CmSecure).unwrap() {
        LinkAddr::Tcp(addr) => *addr,
        other => panic!("{other}"),
    };

    // The SM of node n1, with its own token key, dials the bridge's local CmSecure endpoint.
    let (sm_key, sm_creds) = unit.creds_from(&unit.pki, id("n1", Role::Sm), 40);
    let sm_client = |creds: &Credentials| {
        client_config(
            ServerAuth::Identity {
                roots: unit.pki.roots(),
                policy: Policy::roles([Role::Cm]).with_node("main"),
            },
            Some(creds),
            &TlsOptions::default(),
        )
        .unwrap()
    };
    let (mut session, cm_identity) =
        within("the inner handshake", dial(local, sm_client(&sm_creds)))
            .await
            .unwrap();
    assert_eq!(
        cm_identity,
        Some(id("main", Role::Cm)),
        "the SM authenticated CM"
    );
    assert_eq!(
        within("CM's view", cm.next()).await.unwrap(),
        Some(id("n1", Role::Sm)),
        "CM sees the SM's identity, not the bridge's"
    );
    assert_eq!(
        sm_key.sign_count(),
        1,
        "the SM's own token key signed its handshake"
    );
    let big = random_bytes(300_000, 11);
    assert!(within("the inner echo", echo(&mut session, &big)).await == big);
    assert_eq!(
        echo(&mut session, b"through the tunnel").await,
        b"through the tunnel"
    );

    // An inner client CM does not accept is refused by CM itself, through the tunnel; the MP link stays up.
    let (_, iam_creds) = unit.creds_from(&unit.pki, id("n1", Role::Iam), 41);
    let refused = within("the inner refusal", dial(local, sm_client(&iam_creds))).await;
    assert!(refused.is_err(), "CM accepted an iam certificate");
    assert_eq!(
        within("CM's refusal", cm.next_refusal()).await,
        RefusalReason::RoleNotAccepted
    );
    assert_eq!(server.link_count(), 1);
    assert_eq!(echo(&mut session, b"still").await, b"still");
}
