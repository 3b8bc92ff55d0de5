//! Every link kind end to end: mTLS with SoftHSM keys over TCP, a Unix socket, the vchan ring between
//! "processes" (a `/dev/shm` file) and in process; concurrent requests and a reconnect after a server
//! restart on each.

use std::sync::Arc;

use aos_transport::frame::Channel;
use aos_transport::link::{LinkAddr, Listener};
use futures_util::future::join_all;

use super::*;

struct KindServer {
    task: Option<JoinHandle<()>>,
    _pool: ArbiterPool,
}

impl Drop for KindServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(net: &Net, addr: &LinkAddr) -> KindServer {
    let listener = Listener::bind(addr).await.unwrap();
    let pool = ArbiterPool::new(1);
    let acceptor =
        LinkAcceptor::new(pool.clone(), Net::config(), net.server_tls(), echo_routes()).unwrap();
    KindServer {
        task: Some(serve_link(listener, acceptor)),
        _pool: pool,
    }
}

async fn exercise(addr: LinkAddr) {
    let net = Net::new();
    let server = serve(&net, &addr).await;
    let pool = ArbiterPool::new(1);
    let (watch, mut states) = super::states();
    let link = LinkActor::dial(
        &pool,
        Net::config(),
        Arc::new(LinkDialer::new(addr.clone())),
        net.client_tls(),
        Routes::new().watch_state(watch),
    )
    .unwrap();
    let connected = states.connected().await;
    assert!(
        matches!(connected.state, LinkState::Connected { .. }),
        "{addr}"
    );

    // 200 concurrent requests, each answered with its own body.
    let answers = join_all((0..200u32).map(|i| {
        let link = link.clone();
        async move {
            (
                i,
                link.request(Channel::IamSecure, i.to_be_bytes().to_vec())
                    .await,
            )
        }
    }))
    .await;
    for (i, answer) in answers {
        let answer = answer.unwrap_or_else(|e| panic!("{addr}: request {i}: {e}"));
        assert_eq!(
            answer[..],
            [&[Channel::IamSecure.id()][..], &i.to_be_bytes()].concat()[..],
            "{addr}"
        );
    }

    // The server goes away and comes back on the same address: the link reconnects.
    drop(server);
    states.disconnected().await;
    let _server = serve(&net, &addr).await;
    within("reconnect", states.connected()).await;
    let again = within(
        "request after reconnect",
        link.request(Channel::CmOpen, b"again".to_vec()),
    )
    .await;
    assert_eq!(again.unwrap()[1..], b"again"[..], "{addr}");
    assert!(
        net.server_key.sign_count() >= 2,
        "{addr}: the token signed both handshakes"
    );
}

#[actix_rt::test]
async fn tcp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    exercise(format!("tcp://{port}").parse().unwrap()).await;
}

#[actix_rt::test]
async fn unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    exercise(
        format!("unix://{}", dir.path().join("mp.sock").display())
            .parse()
            .unwrap(),
    )
    .await;
}

#[actix_rt::test]
async fn vchan_ring_in_shared_memory() {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    exercise(
        format!("vchan://{}", dir.path().join("ring").display())
            .parse()
            .unwrap(),
    )
    .await;
}

#[actix_rt::test]
async fn vchan_ring_in_process() {
    let name = format!("link-kinds-{}", std::process::id());
    exercise(format!("vchan-mem://{name}").parse().unwrap()).await;
}
