//! Who gets which channels: anonymous bridges get the open ones, refused certificates get no link at all.

use aos_transport::tls::{self, HandshakeError, RefusalReason};
use tokio_rustls::TlsConnector;

use super::*;
use crate::mp::mux::{Mux, MuxRole};
use crate::mp::protocol::TUNNEL_CHANNELS;

#[actix_rt::test]
async fn an_anonymous_bridge_gets_the_open_channels_only() {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let pool = ArbiterPool::new(2);
    let server = unit.server(&pool, any_tcp(), addrs(&echoes)).await;
    let mut server_events = server.subscribe();
    // Not provisioned: no mp certificate yet.
    let bridge = unit
        .bridge(
            &pool,
            server.local_addr(),
            Credentials::new(),
            &TUNNEL_CHANNELS,
        )
        .await;
    let mut events = bridge.subscribe();
    assert_eq!(connected(&bridge).await, (false, 1));
    assert_eq!(link_up(&mut server_events).await, (None, None));

    for channel in [Channel::IamOpen, Channel::CmOpen] {
        let data = random_bytes(200_000, 5);
        let back = round_trip(dial_local(&bridge, channel).await, &data).await;
        assert!(back == data, "{channel:?}");
    }
    for channel in [Channel::IamSecure, Channel::CmSecure] {
        closed_without_data(dial_local(&bridge, channel).await).await;
        match next_bridge_event(&mut events).await {
            BridgeEvent::TunnelRefused { channel: c, error } => {
                assert_eq!(c, channel);
                assert!(
                    matches!(error, MpError::NotAuthenticated(x) if x == channel),
                    "{error:?}"
                );
            }
        }
        let err = bridge.open(channel).await.unwrap_err();
        assert!(
            matches!(err, MpError::NotAuthenticated(x) if x == channel),
            "{err:?}"
        );
        assert_eq!(
            echoes[&channel].count(),
            0,
            "{channel:?} target never reached"
        );
    }
    assert_eq!(echoes[&Channel::IamOpen].count(), 1);
}

#[actix_rt::test]
async fn the_server_refuses_a_secure_channel_on_an_anonymous_link_with_a_typed_error() {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let pool = ArbiterPool::new(1);
    let server = unit.server(&pool, any_tcp(), addrs(&echoes)).await;
    let mut server_events = server.subscribe();

    // A bridge that skips its own check: an anonymous link asking for IamSecure anyway.
    let tls = BridgeTls::new(
        Credentials::new(),
        unit.pki.roots(),
        "unit1",
        &TlsOptions::default(),
    )
    .unwrap();
    let io = link::connect(server.local_addr()).await.unwrap();
    let (stream, peer) = tls::connect(
        &TlsConnector::from(tls.config.clone()),
        io,
        tls.server_name.clone(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(peer, Some(id("main", Role::Mp)));
    let mux = Mux::start(
        Box::new(stream),
        mux_settings(),
        MuxRole::Opener,
        "raw".into(),
    )
    .unwrap();
    for channel in [Channel::IamSecure, Channel::CmSecure] {
        let err = within("the refusal", mux.open(channel)).await.unwrap_err();
        assert!(
            matches!(err, MpError::Refused(OpenRefusal::Unauthenticated(c)) if c == channel),
            "{err:?}"
        );
        let refused = next_event(&mut server_events, "the refusal event", |e| match e {
            ServerEvent::TunnelRefused {
                channel, refusal, ..
            } => Some((channel, refusal)),
            _ => None,
        })
        .await;
        assert_eq!(refused, (channel, OpenRefusal::Unauthenticated(channel)));
    }
    // The link itself stays up and serves the open channels.
    let stream = within("an open channel", mux.open(Channel::IamOpen))
        .await
        .unwrap();
    let (near, far) = tokio::io::duplex(4096);
    tokio::spawn(stream.pump(near));
    let data = random_bytes(10_000, 8);
    assert!(round_trip(far, &data).await == data);
    assert_eq!(
        echoes[&Channel::IamSecure].count() + echoes[&Channel::CmSecure].count(),
        0
    );
    mux.close("done");
}

#[actix_rt::test]
async fn bridges_with_a_foreign_ca_a_wrong_role_or_a_wrong_unit_are_refused_at_the_handshake() {
    let unit = Unit::new();
    let pool = ArbiterPool::new(2);
    let server = unit.server(&pool, any_tcp(), BTreeMap::new()).await;
    let mut server_events = server.subscribe();
    let foreign = Pki::new("foreign");
    let other_unit = PeerIdentity::new("unit2", "n1", Role::Mp).unwrap();
    let cases = [
        (
            unit.creds_from(&foreign, id("n1", Role::Mp), 1).1,
            RefusalReason::UnknownIssuer,
        ),
        (
            unit.creds_from(&unit.pki, id("n1", Role::Sm), 1).1,
            RefusalReason::RoleNotAccepted,
        ),
        (
            unit.creds_from(&unit.pki, id("n1", Role::Iam), 1).1,
            RefusalReason::RoleNotAccepted,
        ),
        (
            unit.creds_from(&unit.pki, other_unit, 1).1,
            RefusalReason::UnitNotAccepted,
        ),
    ];
    for (creds, expected) in cases {
        let bridge = unit
            .bridge(&pool, server.local_addr(), creds, &[Channel::IamOpen])
            .await;
        let refusal = next_event(&mut server_events, "the handshake refusal", |e| match e {
            ServerEvent::HandshakeFailed { error, .. } => Some(error),
            ServerEvent::LinkUp { peer, .. } => panic!("{peer:?} was let in"),
            _ => None,
        })
        .await;
        assert_eq!(refusal.refusal(), Some(expected), "{refusal}");
        match disconnected(&bridge).await {
            BridgeDown::Handshake(err) => {
                assert!(matches!(*err, HandshakeError::RefusedByPeer(_)), "{err:?}")
            }
            other => panic!("{other:?}"),
        }
        // Nothing is tunnelled for it meanwhile.
        closed_without_data(dial_local(&bridge, Channel::IamOpen).await).await;
        assert_eq!(server.link_count(), 0);
    }
}

#[actix_rt::test]
async fn a_bridge_refuses_a_main_node_that_is_not_mp_or_iam_of_its_unit() {
    let unit = Unit::new();
    let pool = ArbiterPool::new(2);
    let foreign = Pki::new("foreign");
    let cases = [
        (
            unit.creds_from(&unit.pki, id("main", Role::Sm), 7).1,
            RefusalReason::RoleNotAccepted,
        ),
        (
            unit.creds_from(&foreign, id("main", Role::Mp), 7).1,
            RefusalReason::UnknownIssuer,
        ),
        (
            unit.creds_from(
                &unit.pki,
                PeerIdentity::new("unit2", "main", Role::Iam).unwrap(),
                7,
            )
            .1,
            RefusalReason::UnitNotAccepted,
        ),
    ];
    for (server_creds, expected) in cases {
        let server = unit
            .try_server(&pool, &server_creds, any_tcp(), BTreeMap::new())
            .await
            .unwrap();
        let bridge = unit
            .bridge(&pool, server.local_addr(), unit.node_creds(), &[])
            .await;
        match disconnected(&bridge).await {
            BridgeDown::Handshake(err) => assert_eq!(err.refusal(), Some(expected), "{err}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(server.link_count(), 0);
    }
    // An `iam` certificate of the unit's main node is accepted as well as an `mp` one.
    let iam = unit.creds_from(&unit.pki, id("main", Role::Iam), 8).1;
    let server = unit
        .try_server(&pool, &iam, any_tcp(), BTreeMap::new())
        .await
        .unwrap();
    let bridge = unit
        .bridge(&pool, server.local_addr(), unit.node_creds(), &[])
        .await;
    assert_eq!(connected(&bridge).await, (true, 1));
}
