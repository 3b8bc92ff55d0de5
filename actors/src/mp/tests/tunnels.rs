//! End to end: local clients → bridge → MP link → server → echo targets and back, byte for byte, many
//! tunnels at once on every channel, over every link kind.

use futures_util::future::join_all;

use super::*;
use crate::mp::protocol::TUNNEL_CHANNELS;

async fn tunnels_over(main: LinkAddr) {
    let unit = Unit::new();
    let echoes = echo_targets().await;
    let server_pool = ArbiterPool::new(1);
    let bridge_pool = ArbiterPool::new(1);
    let server = unit
        .server(&server_pool, main.clone(), addrs(&echoes))
        .await;
    let mut events = server.subscribe();
    let bridge = unit
        .bridge(
            &bridge_pool,
            server.local_addr(),
            unit.node_creds(),
            &TUNNEL_CHANNELS,
        )
        .await;
    assert_eq!(connected(&bridge).await, (true, 1), "{main}");
    let (peer, serial) = link_up(&mut events).await;
    assert_eq!(peer, Some(id("n1", Role::Mp)), "{main}");
    assert_eq!(serial.as_deref(), Some("01"));

    // Eight tunnels at once, two per channel, each carrying 512 KiB (eight windows) each way.
    let jobs = (0..8usize).map(|i| {
        let channel = TUNNEL_CHANNELS[i % 4];
        let data = random_bytes(512 * 1024 + i, i as u64 + 1);
        let bridge = &bridge;
        async move {
            let conn = dial_local(bridge, channel).await;
            let back = round_trip(conn, &data).await;
            (channel, data, back)
        }
    });
    let results = within("eight tunnels", join_all(jobs)).await;
    for (channel, sent, back) in results {
        assert_eq!(back.len(), sent.len(), "{main} {channel:?}");
        assert!(back == sent, "{main} {channel:?}: the bytes differ");
    }
    for (channel, echo) in &echoes {
        assert_eq!(
            echo.count(),
            2,
            "{main}: connections to the {channel:?} target"
        );
    }

    // A tunnel opened in process, without a local listener.
    let tunnel = bridge.open(Channel::CmSecure).await.unwrap();
    let data = random_bytes(100_000, 99);
    assert!(within("an in-process tunnel", round_trip(tunnel, &data)).await == data);
    assert_eq!(echoes[&Channel::CmSecure].count(), 3);
    assert_eq!(server.link_count(), 1, "one link carried every tunnel");
}

#[actix_rt::test]
async fn over_tcp() {
    tunnels_over(any_tcp()).await;
}

#[actix_rt::test]
async fn over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix://{}", dir.path().join("mp.sock").display());
    tunnels_over(addr.parse().unwrap()).await;
}

#[actix_rt::test]
async fn over_the_vchan_ring_in_shared_memory() {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let addr = format!("vchan://{}", dir.path().join("mp").display());
    tunnels_over(addr.parse().unwrap()).await;
}

#[actix_rt::test]
async fn over_the_vchan_ring_in_process() {
    let addr = format!("vchan-mem://mp-tunnels-{}", std::process::id());
    tunnels_over(addr.parse().unwrap()).await;
}
