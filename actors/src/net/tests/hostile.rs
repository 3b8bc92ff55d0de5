//! Hostile bytes after a good handshake end that connection only.

use std::time::Duration;

use aos_transport::frame::{Channel, FrameError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::*;

/// A raw tokio-rustls client with the good `sm` certificate: handshake and acceptance marker, then `bytes`.
/// Returns what the server does next: `true` when it closed the connection.
async fn hostile_client(net: &Net, addr: SocketAddr, bytes: &[u8]) -> bool {
    let tls = net.client_tls();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut stream, _) = aos_transport::tls::connect(
        &TlsConnector::from(tls.config),
        tcp,
        tls.server_name,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = [0u8; 64];
    within("the server to close", async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
}

#[actix_rt::test]
async fn hostile_frames_close_that_connection_and_a_healthy_one_keeps_working() {
    let net = Net::new();
    let (server_watch, mut server_states) = super::states();
    let server = net.server(echo_routes().watch_state(server_watch)).await;
    let pool = ArbiterPool::new(1);
    let (watch, mut healthy_states) = super::states();
    let healthy = net.dial(&pool, server.addr, Routes::new().watch_state(watch));
    healthy_states.connected().await;
    let healthy_link = server_states.connected().await.link;
    healthy
        .request(Channel::IamOpen, b"before".to_vec())
        .await
        .unwrap();

    // 1. A length prefix far over the maximum frame size.
    assert!(hostile_client(&net, server.addr, &u32::MAX.to_be_bytes()).await);
    server_states.connected().await;
    let reason = server_states.disconnected().await;
    assert!(
        matches!(&reason, DisconnectReason::Frame(err) if matches!(**err, FrameError::TooLarge { len, .. } if len == u32::MAX as usize)),
        "{reason:?}"
    );

    // 2. A well-sized frame of garbage.
    let mut garbage = 40u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xFF; 40]);
    assert!(hostile_client(&net, server.addr, &garbage).await);
    server_states.connected().await;
    let reason = server_states.disconnected().await;
    assert!(
        matches!(&reason, DisconnectReason::Frame(err) if matches!(**err, FrameError::Malformed(_))),
        "{reason:?}"
    );

    // 3. A frame of an unknown protocol version (2), then valid-looking bytes.
    assert!(hostile_client(&net, server.addr, &[0, 0, 0, 5, 2, 1, 0, 0, 0]).await);
    server_states.connected().await;
    let reason = server_states.disconnected().await;
    assert!(
        matches!(&reason, DisconnectReason::Frame(err) if matches!(**err, FrameError::UnknownVersion { version: 2, .. })),
        "{reason:?}"
    );

    // The healthy link was never touched.
    for channel in [Channel::IamOpen, Channel::CmSecure] {
        assert_eq!(
            healthy.request(channel, b"after".to_vec()).await.unwrap(),
            [&[channel.id()][..], b"after"].concat()
        );
    }
    assert!(healthy.status().await.unwrap().state.is_connected());
    assert!(healthy_link.connected());
    assert!(
        healthy_states.0.try_recv().is_err(),
        "the healthy link never changed state"
    );
}

#[actix_rt::test]
async fn a_peer_that_floods_requests_without_reading_the_answers_is_disconnected() {
    use aos_transport::frame::{Envelope, FrameCodec, MessageKind};
    use bytes::BytesMut;
    use tokio_util::codec::Encoder;

    let net = Net::new();
    let limit = 256 * 1024;
    let config = LinkConfig {
        max_queued_bytes: limit,
        ..Net::config()
    };
    let (server_watch, mut server_states) = super::states();
    let server = net
        .server_on(
            "127.0.0.1:0".parse().unwrap(),
            echo_routes().watch_state(server_watch),
            config,
        )
        .await;
    let tls = net.client_tls();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (stream, _) = aos_transport::tls::connect(
        &TlsConnector::from(tls.config),
        tcp,
        tls.server_name,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // Keep the read half alive (so nothing is closed) but never read it.
    let (_unread, mut write) = tokio::io::split(stream);
    let flood = actix_rt::spawn(async move {
        let mut codec = FrameCodec::default();
        let mut sent = 0u64;
        // At most 80 MiB; the server gives up long before (socket buffers plus the limit).
        for i in 1..=5000u64 {
            let mut frame = BytesMut::new();
            let request = Envelope::new(
                Channel::IamOpen,
                i,
                MessageKind::Request,
                vec![7; 16 * 1024],
            );
            codec.encode(&request, &mut frame).unwrap();
            if write.write_all(&frame).await.is_err() || write.flush().await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    server_states.connected().await;
    let reason = server_states.disconnected().await;
    assert!(
        matches!(reason, DisconnectReason::PeerNotReading(queued) if queued > limit),
        "{reason:?}"
    );
    let sent = within("the flood to stop", flood).await.unwrap();
    assert!(
        sent < 5000,
        "the server kept reading a peer that does not read"
    );
}

#[actix_rt::test]
async fn local_sends_fail_as_backlogged_when_the_peer_does_not_read() {
    let net = Net::new();
    // A raw server that accepts and then never reads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(net.server_tls());
    let server = actix_rt::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (stream, _) = aos_transport::tls::accept(&acceptor, tcp, Duration::from_secs(10))
            .await
            .unwrap();
        std::future::pending::<()>().await;
        drop(stream);
    });
    let limit = 256 * 1024;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = LinkActor::dial(
        &pool,
        LinkConfig {
            max_queued_bytes: limit,
            ..Net::config()
        },
        std::sync::Arc::new(TcpDialer::new(addr)),
        net.client_tls(),
        Routes::new().watch_state(watch),
    )
    .unwrap();
    states.connected().await;
    // Queue 40 MiB of events at once (more than the socket buffers take) without awaiting them.
    let sends: Vec<_> = (0..1280)
        .map(|_| {
            link.addr().send(Publish {
                channel: Channel::CmOpen,
                body: vec![1; 32 * 1024].into(),
            })
        })
        .collect();
    // The mailbox is FIFO: once this answers, every publish above has been handled.
    assert!(link.status().await.unwrap().state.is_connected());
    link.close("test over").await;
    let results = within("publish answers", futures_util::future::join_all(sends)).await;
    let mut backlogged = 0;
    for result in results {
        match result.unwrap() {
            Err(LinkError::Backlogged { queued, limit: l }) => {
                assert_eq!(l, limit);
                assert!(queued > limit);
                backlogged += 1;
            }
            // Written before the peer's buffers filled up, or still queued when the link closed.
            Ok(()) | Err(LinkError::Unsent) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(backlogged > 0, "the link never pushed back");
    server.abort();
}
