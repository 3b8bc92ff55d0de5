//! Losing the peer: in-flight requests fail fast, the dialer reconnects.

use std::time::Duration;

use actix::Actor;
use aos_transport::frame::Channel;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::*;

#[actix_rt::test]
async fn after_a_server_restart_the_dialer_reconnects_and_requests_work_again() {
    let net = Net::new();
    let mut server = net.server(echo_routes()).await;
    let addr = server.addr;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = net.dial(&pool, addr, Routes::new().watch_state(watch));
    states.connected().await;
    assert_eq!(
        link.request(Channel::CmOpen, b"1".to_vec())
            .await
            .unwrap()
            .to_vec(),
        [Channel::CmOpen.id(), b'1']
    );

    server.kill().await;
    let reason = states.disconnected().await;
    assert!(
        matches!(
            reason,
            DisconnectReason::PeerClosed | DisconnectReason::Io(_)
        ),
        "{reason:?}"
    );
    // While the server is down, attempts fail at the dial and the link says so.
    let reason = states.disconnected().await;
    assert!(matches!(reason, DisconnectReason::Dial(_)), "{reason:?}");
    assert!(matches!(
        link.request(Channel::CmOpen, vec![]).await,
        Err(LinkError::NotConnected)
    ));

    let _server = net.server_on(addr, echo_routes(), Net::config()).await;
    let change = states.connected().await;
    assert_eq!(change.link, *link.addr());
    assert_eq!(
        link.request(Channel::IamSecure, b"2".to_vec())
            .await
            .unwrap()
            .to_vec(),
        [Channel::IamSecure.id(), b'2']
    );
    // Two connections, two full handshakes signed by the server's token.
    assert_eq!(net.server_key.sign_count(), 2);
}

#[actix_rt::test]
async fn in_flight_requests_fail_with_disconnected_when_the_peer_dies() {
    let net = Net::new();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let gate = Gate { held: held_tx }.start().recipient();
    let mut server = net
        .server(Routes::new().handle(Channel::CmSecure, gate))
        .await;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = net.dial(&pool, server.addr, Routes::new().watch_state(watch));
    states.connected().await;

    let requests: Vec<_> = (0..10u8)
        .map(|i| {
            let link = link.clone();
            // A long timeout: a request that is not failed by the disconnect would show as Timeout.
            async move {
                link.request_within(Channel::CmSecure, vec![i], Duration::from_secs(60))
                    .await
            }
        })
        .collect();
    let requests = actix_rt::spawn(join_all(requests));
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(within("held request", held.recv()).await.unwrap());
    }
    assert_eq!(link.status().await.unwrap().in_flight, 10);

    server.kill().await;
    let results = within("failed requests", requests).await.unwrap();
    for result in results {
        assert!(
            matches!(result, Err(LinkError::Disconnected(_))),
            "{result:?}"
        );
    }
    states.disconnected().await;
    assert_eq!(link.status().await.unwrap().in_flight, 0);
    drop(answers);
}

#[actix_rt::test]
async fn a_peer_that_closes_its_link_is_reported_with_its_reason() {
    let net = Net::new();
    let (server_watch, mut server_states) = super::states();
    let _server = net.server(echo_routes().watch_state(server_watch)).await;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = net.dial(&pool, _server.addr, Routes::new().watch_state(watch));
    states.connected().await;
    let accepted = server_states.connected().await.link;

    accepted
        .send(Close {
            reason: "node shutting down".into(),
        })
        .await
        .unwrap();
    let reason = states.disconnected().await;
    assert!(
        matches!(&reason, DisconnectReason::PeerClose(why) if why == "node shutting down"),
        "{reason:?}"
    );
    // The dialer reconnects to the still-listening server.
    states.connected().await;
    link.request(Channel::IamOpen, vec![]).await.unwrap();
}

#[actix_rt::test]
async fn keepalive_drops_a_connection_whose_peer_went_silent() {
    let net = Net::new();
    let config = LinkConfig {
        keepalive: Some(Duration::from_millis(50)),
        ..Net::config()
    };
    let (server_watch, mut server_states) = super::states();
    let server = net
        .server_on(
            "127.0.0.1:0".parse().unwrap(),
            Routes::new().watch_state(server_watch),
            config,
        )
        .await;
    // A raw client that completes the handshake, then never reads nor writes.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = net.client_tls();
    let (_silent, _) = aos_transport::tls::connect(
        &tokio_rustls::TlsConnector::from(tls.config),
        tcp,
        tls.server_name,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    server_states.connected().await;
    let reason = server_states.disconnected().await;
    assert!(
        matches!(reason, DisconnectReason::KeepaliveTimeout(silence) if silence > Duration::from_millis(100)),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn a_stable_connection_that_drops_is_redialled_at_once_and_a_fresh_one_waits() {
    let net = Net::new();
    let mut server = net.server(echo_routes()).await;
    let addr = server.addr;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let _link = net.dial(&pool, addr, Routes::new().watch_state(watch));
    states.connected().await;
    // Up for longer than the stability threshold (250 ms).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.kill().await;
    let change = states
        .until("Disconnected", |s| {
            matches!(s, LinkState::Disconnected { .. })
        })
        .await;
    let LinkState::Disconnected { retry_in, .. } = change.state else {
        unreachable!()
    };
    assert_eq!(retry_in, Some(Duration::ZERO), "redialled at once");
    // The redial fails (no server); the next attempt waits for the backoff.
    let change = states
        .until("Disconnected", |s| {
            matches!(s, LinkState::Disconnected { .. })
        })
        .await;
    let LinkState::Disconnected { retry_in, .. } = change.state else {
        unreachable!()
    };
    assert!(retry_in.is_some_and(|d| d > Duration::ZERO), "{retry_in:?}");
}

#[actix_rt::test]
async fn a_gated_link_dials_as_soon_as_its_certificate_arrives_not_after_its_backoff() {
    let net = Net::new();
    let server = net.server(echo_routes()).await;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let credentials = Credentials::new();
    let tls = net.client_tls_with(&credentials);
    // A backoff far beyond the test's patience: only the gate's readiness can bring the link up in time.
    let config = LinkConfig {
        reconnect_backoff_initial: Duration::from_secs(3600),
        reconnect_backoff_max: Duration::from_secs(3600),
        ..Net::config()
    };
    let gate = CredentialGate::new(
        Arc::new(TcpDialer::new(server.addr)),
        credentials.clone(),
        "sm",
    );
    let link = LinkActor::dial(
        &pool,
        config,
        Arc::new(gate),
        tls,
        Routes::new().watch_state(watch),
    )
    .unwrap();
    let reason = states.disconnected().await;
    assert!(
        reason.to_string().contains("no usable `sm` certificate"),
        "{reason}"
    );
    assert_eq!(
        net.server_key.sign_count(),
        0,
        "no handshake reached the server"
    );

    credentials
        .set(
            net.pki
                .leaf(&net.client_key)
                .identity(id("n1", Role::Sm))
                .issue(),
            Arc::new(net.client_key.clone()),
        )
        .unwrap();
    states.connected().await;
    assert_eq!(
        link.request(Channel::CmOpen, b"3".to_vec())
            .await
            .unwrap()
            .to_vec(),
        [Channel::CmOpen.id(), b'3']
    );
}
