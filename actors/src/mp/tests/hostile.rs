//! Hostile peers on real TLS links: the offending link ends with a typed reason, nothing panics, and the
//! other links go on.

use aos_transport::frame::{Envelope, FrameCodec, MessageKind};
use aos_transport::tls;
use futures_util::SinkExt;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::codec::Framed;

use super::*;
use crate::mp::protocol::encode_window;

/// An anonymous raw TLS client of the MP server, framed.
async fn raw_client(unit: &Unit, server: &MpServer) -> Framed<link::BoxedLink, FrameCodec> {
    let tls = BridgeTls::new(
        Credentials::new(),
        unit.pki.roots(),
        "unit1",
        &TlsOptions::default(),
    )
    .unwrap();
    let io = link::connect(server.local_addr()).await.unwrap();
    let (stream, _) = tls::connect(
        &TlsConnector::from(tls.config.clone()),
        io,
        tls.server_name.clone(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    Framed::new(
        Box::new(stream) as link::BoxedLink,
        FrameCodec::new(16 * 1024).unwrap(),
    )
}

/// The reason of the next `LinkDown`.
async fn link_down(events: &mut mpsc::UnboundedReceiver<ServerEvent>) -> LinkEnd {
    next_event(events, "a link down", |e| match e {
        ServerEvent::LinkDown { reason, .. } => Some(reason),
        _ => None,
    })
    .await
}

#[actix_rt::test]
async fn hostile_frames_end_only_their_own_link() {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let pool = ArbiterPool::new(2);
    // A window smaller than one frame, so that one frame exceeds it however fast the target reads (the
    // bridge's own window stays at 64 KiB: the sides' windows need not match).
    let small = MuxSettings {
        stream_window: 4096,
        ..mux_settings()
    };
    let server = unit
        .server_with(&pool, &unit.main_creds, any_tcp(), addrs(&echoes), small)
        .await
        .unwrap();
    let mut events = server.subscribe();
    let bridge = unit
        .bridge(
            &pool,
            server.local_addr(),
            unit.node_creds(),
            &[Channel::IamOpen],
        )
        .await;
    connected(&bridge).await;
    link_up(&mut events).await;
    let data = random_bytes(200_000, 31);
    let back = round_trip(dial_local(&bridge, Channel::IamOpen).await, &data).await;
    assert!(back == data, "a 4 KiB window still carries everything");
    let healthy = dial_local(&bridge, Channel::IamOpen).await;
    let (mut healthy_rd, mut healthy_wr) = tokio::io::split(healthy);

    // A length prefix of 4 GiB.
    let mut raw = raw_client(&unit, &server).await;
    link_up(&mut events).await;
    raw.get_mut()
        .write_all(&u32::MAX.to_be_bytes())
        .await
        .unwrap();
    raw.get_mut().flush().await.unwrap();
    let reason = link_down(&mut events).await;
    assert!(
        matches!(&reason, LinkEnd::Frame(err) if err.to_string().contains("exceeds")),
        "{reason:?}"
    );

    // Bytes beyond a stream's window.
    let mut raw = raw_client(&unit, &server).await;
    link_up(&mut events).await;
    raw.send(Envelope::new(
        Channel::IamOpen,
        1,
        MessageKind::Request,
        encode_window(65_536),
    ))
    .await
    .unwrap();
    let event = Envelope::new(Channel::IamOpen, 1, MessageKind::Event, vec![1u8; 16_000]);
    raw.send(event).await.unwrap();
    let reason = link_down(&mut events).await;
    assert!(
        matches!(&reason, LinkEnd::Protocol(what) if what.contains("window")),
        "{reason:?}"
    );

    // A garbage frame.
    let mut raw = raw_client(&unit, &server).await;
    link_up(&mut events).await;
    raw.get_mut()
        .write_all(&[0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
        .await
        .unwrap();
    raw.get_mut().flush().await.unwrap();
    assert!(matches!(link_down(&mut events).await, LinkEnd::Frame(_)));

    // The bridge's link and its tunnel were not touched.
    healthy_wr.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    within("the healthy tunnel", healthy_rd.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(&back, b"still here");
    assert_eq!(server.link_count(), 1);
    assert!(matches!(
        *bridge.state().borrow(),
        BridgeState::Connected { generation: 1, .. }
    ));
}

#[actix_rt::test]
async fn a_hostile_main_node_ends_the_bridge_link_and_the_bridge_tries_again() {
    let unit = Unit::new();
    // A "main node" with a good certificate that answers every handshake with garbage.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(unit.server_tls(&unit.main_creds));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let count = handshakes.clone();
    let fake = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                if let Ok((mut stream, _)) =
                    tls::accept(&acceptor, tcp, Duration::from_secs(10)).await
                {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(&[0, 0, 0, 4, 9, 9, 9, 9]).await;
                    let _ = stream.flush().await;
                    let mut sink = Vec::new();
                    let _ = stream.read_to_end(&mut sink).await;
                }
            });
        }
    });
    let pool = ArbiterPool::new(1);
    let bridge = unit
        .bridge(&pool, &LinkAddr::Tcp(addr), unit.node_creds(), &[])
        .await;
    match disconnected(&bridge).await {
        BridgeDown::Link(LinkEnd::Frame(_)) => {}
        other => panic!("{other:?}"),
    }
    within("a second attempt", async {
        while handshakes.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    fake.abort();
}
