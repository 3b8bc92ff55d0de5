//! Requests, answers, errors and events over one link.

use std::time::Duration;

use actix::Actor;
use aos_transport::frame::Channel;
use aos_transport::tls::testutil::id;
use aos_transport::tls::Role;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::*;

const CHANNELS: [Channel; 4] = [
    Channel::IamOpen,
    Channel::IamSecure,
    Channel::CmOpen,
    Channel::CmSecure,
];

/// A server with `routes`, a client link to it, connected.
async fn connected(net: &Net, routes: Routes) -> (Server, ArbiterPool, Link, States) {
    let server = net.server(routes).await;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = net.dial(&pool, server.addr, Routes::new().watch_state(watch));
    let change = states.connected().await;
    match change.state {
        LinkState::Connected { peer, .. } => assert_eq!(peer, Some(id("main", Role::Iam))),
        other => panic!("{other:?}"),
    }
    (server, pool, link, states)
}

#[actix_rt::test]
async fn requests_on_each_of_the_four_channels_reach_that_channels_handler() {
    let net = Net::new();
    let (_server, _pool, link, _) = connected(&net, echo_routes()).await;
    for channel in CHANNELS {
        let answer = within("answer", link.request(channel, b"ping".to_vec()))
            .await
            .unwrap();
        assert_eq!(
            answer,
            [&[channel.id()][..], b"ping"].concat(),
            "{channel:?}"
        );
    }
    // The token signed both ends of the one handshake.
    assert_eq!(net.server_key.sign_count(), 1);
    assert_eq!(net.client_key.sign_count(), 1);
}

#[actix_rt::test]
async fn a_thousand_concurrent_requests_each_get_their_own_answer() {
    let net = Net::new();
    let (_server, _pool, link, _) = connected(&net, echo_routes()).await;
    let requests = (0..1000u32).map(|i| {
        let link = link.clone();
        let channel = CHANNELS[i as usize % 4];
        async move {
            let body = format!("request {i}").into_bytes();
            let answer = link.request(channel, body.clone()).await;
            (channel, body, answer)
        }
    });
    let results = within("1000 answers", join_all(requests)).await;
    assert_eq!(results.len(), 1000);
    for (channel, body, answer) in results {
        let answer = answer.unwrap();
        assert_eq!(answer[0], channel.id());
        assert_eq!(&answer[1..], &body[..]);
    }
    assert_eq!(link.status().await.unwrap().in_flight, 0);
}

#[actix_rt::test]
async fn handler_errors_cross_the_wire_typed_and_a_channel_without_handler_says_so() {
    struct Refuse;
    impl Actor for Refuse {
        type Context = actix::Context<Self>;
    }
    impl actix::Handler<Incoming> for Refuse {
        type Result = Result<bytes::Bytes, WireError>;
        fn handle(&mut self, msg: Incoming, _: &mut actix::Context<Self>) -> Self::Result {
            Err(WireError::new(
                ErrorCode(4242),
                format!("{} may not do that", msg.peer.unwrap()),
            ))
        }
    }
    let net = Net::new();
    let routes = Routes::new().handle(Channel::IamSecure, Refuse.start().recipient());
    let (_server, _pool, link, _) = connected(&net, routes).await;

    let err = link
        .request(Channel::IamSecure, b"x".to_vec())
        .await
        .unwrap_err();
    match err {
        LinkError::Remote(wire) => {
            assert_eq!(wire.code, ErrorCode(4242));
            assert_eq!(wire.message, "urn:aos:unit1:n1:sm may not do that");
        }
        other => panic!("{other:?}"),
    }
    let err = link
        .request(Channel::CmOpen, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LinkError::Remote(w) if w.code == ErrorCode::NO_HANDLER),
        "{err:?}"
    );
    assert!(matches!(
        link.request(Channel::Control, vec![]).await,
        Err(LinkError::ReservedChannel)
    ));
    let too_big = vec![0; Net::config().max_frame_size];
    assert!(matches!(
        link.request(Channel::CmOpen, too_big).await,
        Err(LinkError::TooLarge { .. })
    ));
}

#[actix_rt::test]
async fn events_reach_the_subscribers_of_their_channel_with_the_senders_identity() {
    let net = Net::new();
    let (iam_events, mut iam_rx) = forward::<Event>();
    let (cm_events, mut cm_rx) = forward::<Event>();
    let routes = echo_routes()
        .subscribe(Channel::IamSecure, iam_events)
        .subscribe(Channel::CmSecure, cm_events);
    let (_server, _pool, link, _) = connected(&net, routes).await;

    link.publish(Channel::CmSecure, b"cert renewed".to_vec())
        .await
        .unwrap();
    for i in 0..100u8 {
        link.publish(Channel::IamSecure, vec![i]).await.unwrap();
    }
    let event = within("cm event", cm_rx.recv()).await.unwrap();
    assert_eq!(event.channel, Channel::CmSecure);
    assert_eq!(&event.body[..], b"cert renewed");
    assert_eq!(event.peer.as_deref(), Some(&id("n1", Role::Sm)));
    for i in 0..100u8 {
        let event = within("iam event", iam_rx.recv()).await.unwrap();
        assert_eq!(&event.body[..], [i], "events arrive in order");
    }
    // A request after the events still works and nothing else reached the CM subscriber.
    link.request(Channel::IamOpen, vec![]).await.unwrap();
    assert!(cm_rx.try_recv().is_err());
}

#[actix_rt::test]
async fn a_request_times_out_the_late_answer_is_dropped_and_the_link_stays_usable() {
    let net = Net::new();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let gate = Gate { held: held_tx }.start().recipient();
    let routes = echo_routes().handle(Channel::IamSecure, gate);
    let (_server, _pool, link, _) = connected(&net, routes).await;

    let timeout = Duration::from_millis(150);
    let err = link
        .request_within(Channel::IamSecure, b"slow".to_vec(), timeout)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::Timeout { channel: Channel::IamSecure, after } if after == timeout),
        "{err:?}"
    );
    // The handler got the request; answer it now, too late.
    let (body, answer) = within("held request", held.recv()).await.unwrap();
    assert_eq!(body, b"slow");
    answer.send(Ok(b"late".to_vec().into())).unwrap();

    // The next requests get their own answers, not the late one.
    for channel in [Channel::IamOpen, Channel::CmSecure] {
        let answer = link.request(channel, b"next".to_vec()).await.unwrap();
        assert_eq!(answer.to_vec(), [&[channel.id()][..], b"next"].concat());
    }
    let pending = link.request(Channel::IamSecure, b"second".to_vec());
    let answer_it = async {
        let (body, answer) = held.recv().await.unwrap();
        answer
            .send(Ok([b"re:".as_slice(), &body].concat().into()))
            .unwrap();
    };
    let (answer, ()) = within("gated answer", async { tokio::join!(pending, answer_it) }).await;
    assert_eq!(&answer.unwrap()[..], b"re:second");
    assert_eq!(
        link.status().await.unwrap().in_flight,
        0,
        "the timed-out waiter was forgotten"
    );
}

#[actix_rt::test]
async fn links_run_on_worker_arbiters_and_refuse_requests_while_not_connected() {
    let net = Net::new();
    // A port nobody listens on: bind, note it, close.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = net.dial(&pool, closed, Routes::new().watch_state(watch));
    let reason = states.disconnected().await;
    assert!(matches!(reason, DisconnectReason::Dial(_)), "{reason:?}");
    assert!(matches!(
        link.request(Channel::IamOpen, vec![]).await,
        Err(LinkError::NotConnected)
    ));
    assert!(matches!(
        link.publish(Channel::IamOpen, vec![]).await,
        Err(LinkError::NotConnected)
    ));
    let status = link.status().await.unwrap();
    assert_ne!(status.thread, std::thread::current().id());
    assert_eq!(&*status.remote, format!("tcp://{closed}"));
    // It keeps trying (backoff), and a closed link stops for good.
    states
        .until(
            "another attempt",
            |s| matches!(s, LinkState::Connecting { attempt } if *attempt >= 2),
        )
        .await;
    link.close("test over").await;
    assert!(matches!(link.status().await, Err(LinkError::Stopped)));
}
