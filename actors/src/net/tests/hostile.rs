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
