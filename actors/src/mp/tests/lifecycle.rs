//! The link over time: certificate changes, main node restarts, unreachable targets, a link that is down.

use super::*;
use crate::mp::protocol::TUNNEL_CHANNELS;

/// A tunnel on `channel` that has carried one byte each way (so it is surely open end to end).
async fn live_tunnel(bridge: &MpBridge, channel: Channel) -> link::BoxedLink {
    let mut conn = dial_local(bridge, channel).await;
    conn.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    within("the first echo", conn.read_exact(&mut byte))
        .await
        .unwrap();
    assert_eq!(&byte, b"x");
    conn
}

#[actix_rt::test]
async fn a_certificate_change_makes_the_bridge_handshake_again_and_tunnels_reopen() {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let pool = ArbiterPool::new(2);
    let server = unit.server(&pool, any_tcp(), addrs(&echoes)).await;
    let mut server_events = server.subscribe();
    let (old_key, creds) = unit.creds_from(&unit.pki, id("n1", Role::Mp), 1);
    let bridge = unit
        .bridge(&pool, server.local_addr(), creds.clone(), &TUNNEL_CHANNELS)
        .await;
    assert_eq!(connected(&bridge).await, (true, 1));
    assert_eq!(
        link_up(&mut server_events).await,
        (Some(id("n1", Role::Mp)), Some("01".into()))
    );
    let old_tunnel = live_tunnel(&bridge, Channel::IamSecure).await;

    // Renewal: a new key and a certificate with serial 2 are published.
    let new_key = unit
        .hsm
        .key("mp-renewed", aos_pkcs11::KeyAlgorithm::EccP256);
    let chain = unit
        .pki
        .leaf(&new_key)
        .identity(id("n1", Role::Mp))
        .serial(2)
        .issue();
    creds.set(chain, Arc::new(new_key.clone())).unwrap();

    let reason = next_event(&mut server_events, "the old link to end", |e| match e {
        ServerEvent::LinkDown { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(
        matches!(&reason, LinkEnd::PeerClose(why) if why.contains("certificate changed")),
        "{reason:?}"
    );
    assert_eq!(
        link_up(&mut server_events).await,
        (Some(id("n1", Role::Mp)), Some("02".into())),
        "a new handshake with the new certificate"
    );
    assert_eq!(reconnected(&bridge, 1).await, (true, 2));
    assert_eq!(
        new_key.sign_count(),
        1,
        "the new key signed the new handshake"
    );
    assert_eq!(old_key.sign_count(), 1, "the old key signed only the first");

    // The tunnel on the old link ended; a new one works.
    closed_without_data(old_tunnel).await;
    let data = random_bytes(100_000, 21);
    assert!(round_trip(dial_local(&bridge, Channel::IamSecure).await, &data).await == data);
    assert_eq!(server.link_count(), 1);
}

#[actix_rt::test]
async fn a_node_gets_the_secure_channels_once_its_certificate_is_set() {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let pool = ArbiterPool::new(2);
    let server = unit.server(&pool, any_tcp(), addrs(&echoes)).await;
    let mut server_events = server.subscribe();
    let creds = Credentials::new();
    let bridge = unit
        .bridge(&pool, server.local_addr(), creds.clone(), &TUNNEL_CHANNELS)
        .await;
    assert_eq!(connected(&bridge).await, (false, 1));
    assert_eq!(link_up(&mut server_events).await.0, None);
    let open_tunnel = live_tunnel(&bridge, Channel::IamOpen).await;
    closed_without_data(dial_local(&bridge, Channel::CmSecure).await).await;

    // Provisioning applies the node's mp certificate.
    let key = unit.hsm.key("mp", aos_pkcs11::KeyAlgorithm::EccP256);
    let chain = unit
        .pki
        .leaf(&key)
        .identity(id("n1", Role::Mp))
        .serial(9)
        .issue();
    creds.set(chain, Arc::new(key)).unwrap();
    assert_eq!(reconnected(&bridge, 1).await, (true, 2));
    assert_eq!(
        link_up(&mut server_events).await,
        (Some(id("n1", Role::Mp)), Some("09".into()))
    );
    closed_without_data(open_tunnel).await;
    let data = random_bytes(50_000, 22);
    assert!(round_trip(dial_local(&bridge, Channel::CmSecure).await, &data).await == data);
}

#[actix_rt::test]
async fn the_bridge_reconnects_after_the_main_node_restarts() {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let bridge_pool = ArbiterPool::new(1);
    let server_pool = ArbiterPool::new(1);
    let server = unit.server(&server_pool, any_tcp(), addrs(&echoes)).await;
    let main = server.local_addr().clone();
    let bridge = unit
        .bridge(&bridge_pool, &main, unit.node_creds(), &[Channel::IamOpen])
        .await;
    assert_eq!(connected(&bridge).await, (true, 1));
    let tunnel = live_tunnel(&bridge, Channel::IamOpen).await;

    // The main node goes away: its listener and links are dropped with their worker arbiter.
    drop(server);
    drop(server_pool);
    let reason = disconnected(&bridge).await;
    assert!(matches!(reason, BridgeDown::Link(_)), "{reason:?}");
    closed_without_data(tunnel).await;
    closed_without_data(dial_local(&bridge, Channel::IamOpen).await).await;

    // It comes back on the same address (binding may have to wait for the old listener to close).
    let server_pool = ArbiterPool::new(1);
    let server = within("the server to restart", async {
        loop {
            match unit
                .try_server(&server_pool, &unit.main_creds, main.clone(), addrs(&echoes))
                .await
            {
                Ok(server) => return server,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert_eq!(reconnected(&bridge, 1).await, (true, 2));
    let data = random_bytes(100_000, 23);
    assert!(round_trip(dial_local(&bridge, Channel::IamOpen).await, &data).await == data);
    assert_eq!(server.link_count(), 1);
}

#[actix_rt::test]
async fn a_tunnel_whose_target_refuses_closes_its_local_connection_with_the_reason() {
    let unit = Unit::new();
    // IamOpen's target is a port nobody listens on; CmOpen has no target at all.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let targets = BTreeMap::from([(Channel::IamOpen, LinkAddr::Tcp(free))]);
    let pool = ArbiterPool::new(2);
    let server = unit.server(&pool, any_tcp(), targets).await;
    let mut server_events = server.subscribe();
    let bridge = unit
        .bridge(
            &pool,
            server.local_addr(),
            unit.node_creds(),
            &[Channel::IamOpen, Channel::CmOpen],
        )
        .await;
    let mut events = bridge.subscribe();
    connected(&bridge).await;

    closed_without_data(dial_local(&bridge, Channel::IamOpen).await).await;
    let BridgeEvent::TunnelRefused { channel, error } = next_bridge_event(&mut events).await;
    assert_eq!(channel, Channel::IamOpen);
    match error {
        MpError::Refused(OpenRefusal::TargetUnreachable { channel, detail }) => {
            assert_eq!(channel, Channel::IamOpen);
            assert!(detail.contains(&free.to_string()), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let refused = next_event(&mut server_events, "the server's refusal", |e| match e {
        ServerEvent::TunnelRefused { refusal, .. } => Some(refusal),
        _ => None,
    })
    .await;
    assert!(
        matches!(refused, OpenRefusal::TargetUnreachable { .. }),
        "{refused:?}"
    );

    closed_without_data(dial_local(&bridge, Channel::CmOpen).await).await;
    let BridgeEvent::TunnelRefused { error, .. } = next_bridge_event(&mut events).await;
    assert!(
        matches!(
            error,
            MpError::Refused(OpenRefusal::NoTarget(Channel::CmOpen))
        ),
        "{error:?}"
    );
    // Refusals end tunnels, not the link.
    assert_eq!(server.link_count(), 1);
    assert!(matches!(
        *bridge.state().borrow(),
        BridgeState::Connected { generation: 1, .. }
    ));
}

#[actix_rt::test]
async fn while_the_link_is_down_local_connections_are_closed_at_once() {
    let unit = Unit::new();
    let pool = ArbiterPool::new(1);
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bridge = unit
        .bridge(
            &pool,
            &LinkAddr::Tcp(nowhere),
            unit.node_creds(),
            &[Channel::IamOpen],
        )
        .await;
    let mut events = bridge.subscribe();
    assert!(matches!(disconnected(&bridge).await, BridgeDown::Dial(_)));
    closed_without_data(dial_local(&bridge, Channel::IamOpen).await).await;
    let BridgeEvent::TunnelRefused { error, .. } = next_bridge_event(&mut events).await;
    assert!(matches!(error, MpError::NotConnected), "{error:?}");
    assert!(matches!(
        bridge.open(Channel::IamOpen).await,
        Err(MpError::NotConnected)
    ));
    assert!(matches!(
        bridge.open(Channel::Control).await,
        Err(MpError::NotATunnelChannel(Channel::Control))
    ));
}
