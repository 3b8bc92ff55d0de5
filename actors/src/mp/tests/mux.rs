//! The multiplexer alone, over in-memory pipes: flow control, half close, resets, and hostile frames.

use aos_transport::frame::{Envelope, FrameCodec, MessageKind};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;

use super::*;
use crate::mp::mux::{Mux, MuxRole, PendingOpen};
use crate::mp::protocol::{encode_window, OpenRefusal};
use crate::mp::stream::TunnelEnd;

/// An opener and an acceptor joined by a pipe; the acceptor's open requests.
fn pair(settings: MuxSettings) -> (Mux, Mux, mpsc::UnboundedReceiver<PendingOpen>) {
    pair_with(settings.clone(), settings)
}

/// The same with different settings on each side.
fn pair_with(
    opener: MuxSettings,
    settings: MuxSettings,
) -> (Mux, Mux, mpsc::UnboundedReceiver<PendingOpen>) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let opener = Mux::start(Box::new(a), opener, MuxRole::Opener, "opener".into()).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let acceptor = Mux::start(
        Box::new(b),
        settings,
        MuxRole::Acceptor(tx),
        "acceptor".into(),
    )
    .unwrap();
    (opener, acceptor, rx)
}

/// Accept every open and echo its bytes (through an in-memory echo), until the queue closes.
fn echo_all(mut opens: mpsc::UnboundedReceiver<PendingOpen>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(open) = opens.recv().await {
            tokio::spawn(async move {
                let (near, far) = tokio::io::duplex(4096);
                tokio::spawn(async move {
                    let (mut rd, mut wr) = tokio::io::split(far);
                    if tokio::io::copy(&mut rd, &mut wr).await.is_ok() {
                        let _ = wr.shutdown().await;
                    }
                });
                open.stream.accept();
                open.stream.pump(near).await
            });
        }
    })
}

/// Pump a new stream of `opener` on `channel` with a pipe; the test's end of the pipe.
async fn open_pipe(
    opener: &Mux,
    channel: Channel,
    capacity: usize,
) -> (DuplexStream, JoinHandle<TunnelEnd>) {
    let stream = opener.open(channel).await.unwrap();
    let (near, far) = tokio::io::duplex(capacity);
    (far, tokio::spawn(stream.pump(near)))
}

/// Open a stream on `channel` and accept it on the other side (without pumping it there yet).
async fn open_accepted(
    opener: &Mux,
    opens: &mut mpsc::UnboundedReceiver<PendingOpen>,
    channel: Channel,
    capacity: usize,
) -> (
    DuplexStream,
    JoinHandle<TunnelEnd>,
    crate::mp::stream::StreamHandle,
) {
    let accept = async {
        let open = opens.recv().await.unwrap();
        open.stream.accept();
        open.stream
    };
    let (opened, accepted) = within("an open", async {
        tokio::join!(opener.open(channel), accept)
    })
    .await;
    let (near, far) = tokio::io::duplex(capacity);
    (far, tokio::spawn(opened.unwrap().pump(near)), accepted)
}

#[tokio::test]
async fn bytes_cross_both_ways_with_half_close_and_the_streams_are_cleaned_up() {
    let (opener, acceptor, opens) = pair(mux_settings());
    let _echo = echo_all(opens);
    let mut pumps = Vec::new();
    let mut jobs = Vec::new();
    for (i, channel) in protocol::TUNNEL_CHANNELS.into_iter().enumerate() {
        let (pipe, pump) = open_pipe(&opener, channel, 8192).await;
        pumps.push(pump);
        jobs.push(async move {
            let data = random_bytes(300_000, i as u64 + 7);
            (round_trip(pipe, &data).await == data, channel)
        });
    }
    for (same, channel) in within("four echoes", futures_util::future::join_all(jobs)).await {
        assert!(same, "{channel:?}: the bytes differ");
    }
    for pump in pumps {
        assert!(matches!(
            within("the pump", pump).await.unwrap(),
            TunnelEnd::Finished
        ));
    }
    within("streams removed", async {
        while opener.stream_count() + acceptor.stream_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn windows_of_different_sizes_carry_everything_both_ways() {
    // Each side acknowledges a quarter of the window in use (the smaller one), or the side with the
    // larger window would wait for more than its peer may ever send.
    let small = MuxSettings {
        stream_window: 4096,
        ..mux_settings()
    };
    for (opener, acceptor) in [
        (small.clone(), mux_settings()),
        (mux_settings(), small.clone()),
    ] {
        let (opener, _acceptor, opens) = pair_with(opener, acceptor);
        let _echo = echo_all(opens);
        let (pipe, pump) = open_pipe(&opener, Channel::IamOpen, 2048).await;
        let data = random_bytes(300_000, 12);
        assert!(round_trip(pipe, &data).await == data);
        assert!(matches!(
            within("the pump", pump).await.unwrap(),
            TunnelEnd::Finished
        ));
    }
}

#[tokio::test]
async fn a_stalled_tunnel_buffers_at_most_its_window_and_does_not_stall_the_others() {
    let settings = mux_settings();
    let window = settings.stream_window as usize;
    let (opener, acceptor, mut opens) = pair(settings);

    // Stream A: its consumer on the accepting side never reads.
    let (mut a_local, a_pump, a_stream) =
        open_accepted(&opener, &mut opens, Channel::CmSecure, 1024).await;
    let (a_target, mut a_consumer) = tokio::io::duplex(1024);
    let a_target_pump = tokio::spawn(a_stream.pump(a_target));
    let data = random_bytes(1 << 20, 3);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        a_local.write_all(&sent).await.unwrap();
        a_local.shutdown().await.unwrap();
        a_local
    });

    // Wait until A's window is full at the accepting side.
    within("A's window to fill", async {
        while acceptor.buffered() + 1024 < window {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Stream B on the same link still works.
    let _echo = echo_all(opens);
    let (b, _b_pump) = open_pipe(&opener, Channel::IamOpen, 8192).await;
    let data_b = random_bytes(300_000, 4);
    assert!(within("B's echo while A is stalled", round_trip(b, &data_b)).await == data_b);

    // A is still stuck: its sender waits for credit, and nothing beyond the window was buffered.
    assert!(
        !writer.is_finished(),
        "A's writer cannot have sent 1 MiB into a 64 KiB window"
    );
    assert!(
        acceptor.buffered() <= window,
        "{} buffered",
        acceptor.buffered()
    );

    // Once A's consumer reads, A completes, byte for byte.
    let mut got = Vec::new();
    within("A to drain", a_consumer.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    drop(within("A's writer", writer).await.unwrap());
    drop(a_consumer);
    within("A's pumps", async {
        a_target_pump.await.unwrap();
        a_pump.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_failing_connection_resets_the_other_side_and_refusals_arrive_typed() {
    let (opener, _acceptor, mut opens) = pair(mux_settings());
    let (local, pump, stream) = open_accepted(&opener, &mut opens, Channel::IamOpen, 1024).await;
    // The accepting side's connection fails at once: writes to a pipe whose other end is gone.
    let (target, gone) = tokio::io::duplex(16);
    drop(gone);
    let target_pump = tokio::spawn(stream.pump(target));
    let (_, mut local_wr) = tokio::io::split(local);
    local_wr.write_all(b"hello").await.unwrap();
    assert!(matches!(
        within("the target pump", target_pump).await.unwrap(),
        TunnelEnd::Local(_)
    ));
    match within("the reset", pump).await.unwrap() {
        TunnelEnd::PeerReset(error) => assert_eq!(error.code, protocol::code::RESET),
        other => panic!("{other:?}"),
    }

    // A refusal reaches the opener as the typed OpenRefusal.
    let refuser = tokio::spawn(async move {
        let open = opens.recv().await.unwrap();
        let channel = open.channel;
        open.stream.refuse(&OpenRefusal::Unauthenticated(channel));
    });
    let err = opener.open(Channel::IamSecure).await.unwrap_err();
    assert!(
        matches!(
            err,
            MpError::Refused(OpenRefusal::Unauthenticated(Channel::IamSecure))
        ),
        "{err:?}"
    );
    refuser.await.unwrap();
    assert_eq!(opener.stream_count(), 0);
}

#[tokio::test]
async fn closing_the_link_ends_every_stream_and_tells_the_peer() {
    let (opener, acceptor, opens) = pair(mux_settings());
    let _echo = echo_all(opens);
    let (pipe, pump) = open_pipe(&opener, Channel::CmOpen, 1024).await;
    opener.close("maintenance");
    assert!(matches!(
        within("the pump", pump).await.unwrap(),
        TunnelEnd::LinkEnded
    ));
    match within("the peer to see the close", acceptor.closed()).await {
        LinkEnd::PeerClose(reason) => assert!(reason.contains("maintenance"), "{reason}"),
        other => panic!("{other:?}"),
    }
    closed_pipe(pipe).await;
    let err = opener.open(Channel::CmOpen).await.unwrap_err();
    assert!(
        matches!(err, MpError::LinkEnded(LinkEnd::Closed(_))),
        "{err:?}"
    );
}

async fn closed_pipe(mut pipe: DuplexStream) {
    let mut buf = [0u8; 16];
    assert_eq!(
        within("the pipe to close", pipe.read(&mut buf))
            .await
            .unwrap(),
        0
    );
}

// === hostile peers ===

/// What a raw peer sends.
enum Raw {
    Bytes(Vec<u8>),
    Frame(Envelope),
    /// End of stream.
    Eof,
}

fn frame(channel: Channel, id: u64, kind: MessageKind, body: impl Into<Bytes>) -> Raw {
    Raw::Frame(Envelope::new(channel, id, kind, body))
}

fn open_frame(id: u64) -> Raw {
    frame(
        Channel::IamOpen,
        id,
        MessageKind::Request,
        encode_window(65_536),
    )
}

/// Feed `input` to a mux of `role` from a raw peer; why the mux ended the link, and the reason the peer
/// read in its `Close` frame (if one came).
async fn fed(input: Vec<Raw>, opener: bool, settings: MuxSettings) -> (LinkEnd, Option<String>) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (tx, mut opens) = mpsc::unbounded_channel();
    let role = if opener {
        MuxRole::Opener
    } else {
        MuxRole::Acceptor(tx)
    };
    let mux = Mux::start(Box::new(ours), settings, role, "hostile".into()).unwrap();
    // Accept every open (without pumping, so nothing is consumed) and keep the streams.
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Some(open) = opens.recv().await {
            open.stream.accept();
            kept.push(open.stream);
        }
    });
    let mut peer = Framed::new(theirs, FrameCodec::new(16 * 1024).unwrap());
    for raw in input {
        let sent = match raw {
            Raw::Frame(envelope) => peer.send(envelope).await.map_err(|e| e.to_string()),
            Raw::Bytes(bytes) => peer
                .get_mut()
                .write_all(&bytes)
                .await
                .map_err(|e| e.to_string()),
            Raw::Eof => peer.get_mut().shutdown().await.map_err(|e| e.to_string()),
        };
        if sent.is_err() {
            break; // The mux hung up already.
        }
    }
    let _ = peer.get_mut().flush().await;
    let end = within("the mux to end the link", mux.closed()).await;
    let mut reason = None;
    while let Some(Ok(envelope)) = within("the peer's input", peer.next()).await {
        if envelope.channel == Channel::Control && envelope.kind == MessageKind::Close {
            reason = Some(String::from_utf8_lossy(&envelope.body).into_owned());
        }
    }
    (end, reason)
}

async fn protocol_violation(input: Vec<Raw>, expected: &str) {
    let (end, reason) = fed(input, false, mux_settings()).await;
    match &end {
        LinkEnd::Protocol(what) => assert!(what.contains(expected), "{what}"),
        other => panic!("expected a protocol violation ({expected}), got {other:?}"),
    }
    let reason = reason.expect("the peer is told why");
    assert!(reason.contains(expected), "{reason}");
}

#[tokio::test]
async fn undecodable_input_ends_the_link_with_the_frame_error() {
    let (end, reason) = fed(
        vec![Raw::Bytes(u32::MAX.to_be_bytes().to_vec())],
        false,
        mux_settings(),
    )
    .await;
    assert!(
        matches!(&end, LinkEnd::Frame(err) if err.to_string().contains("exceeds")),
        "{end:?}"
    );
    assert!(reason.unwrap().contains("exceeds"));

    let garbage = [&5u32.to_be_bytes()[..], &[9, 9, 9, 9, 9]].concat();
    let (end, _) = fed(vec![Raw::Bytes(garbage)], false, mux_settings()).await;
    assert!(matches!(end, LinkEnd::Frame(_)), "{end:?}");

    let truncated = [&100u32.to_be_bytes()[..], &[1, 0]].concat();
    let (end, _) = fed(vec![Raw::Bytes(truncated), Raw::Eof], false, mux_settings()).await;
    assert!(
        matches!(&end, LinkEnd::Frame(err) if err.to_string().contains("ended inside")),
        "{end:?}"
    );
}

#[tokio::test]
async fn protocol_violations_end_the_link_with_the_reason() {
    protocol_violation(vec![open_frame(1), open_frame(1)], "opened twice").await;
    protocol_violation(
        vec![frame(Channel::IamOpen, 1, MessageKind::Request, vec![0xFF])],
        "open of stream 1",
    )
    .await;
    protocol_violation(
        vec![frame(
            Channel::IamOpen,
            1,
            MessageKind::Request,
            encode_window(0),
        )],
        "zero window",
    )
    .await;
    protocol_violation(vec![open_frame(0)], "stream id 0").await;
    protocol_violation(
        vec![frame(
            Channel::Control,
            0,
            MessageKind::Event,
            b"x".to_vec(),
        )],
        "control channel",
    )
    .await;
    protocol_violation(
        vec![frame(Channel::CmOpen, 3, MessageKind::Ping, Bytes::new())],
        "tunnel channel",
    )
    .await;
    // The window is 64 KiB; frames carry at most 16 KiB.
    let mut over = vec![open_frame(1)];
    over.extend((0..5).map(|_| frame(Channel::IamOpen, 1, MessageKind::Event, vec![7u8; 16_000])));
    protocol_violation(over, "window allows").await;
    protocol_violation(
        vec![
            open_frame(1),
            frame(Channel::IamOpen, 1, MessageKind::Response, encode_window(1)),
        ],
        "only 0 are unacknowledged",
    )
    .await;
    protocol_violation(
        vec![
            open_frame(1),
            frame(Channel::IamOpen, 1, MessageKind::Close, Bytes::new()),
            frame(Channel::IamOpen, 1, MessageKind::Event, b"late".to_vec()),
        ],
        "after its close",
    )
    .await;
}

#[tokio::test]
async fn the_main_side_may_not_open_streams_and_a_peer_close_is_reported() {
    let (end, _) = fed(vec![open_frame(1)], true, mux_settings()).await;
    assert!(
        matches!(&end, LinkEnd::Protocol(what) if what.contains("only the bridge opens")),
        "{end:?}"
    );

    let (end, reason) = fed(
        vec![frame(
            Channel::Control,
            0,
            MessageKind::Close,
            b"bye".to_vec(),
        )],
        false,
        mux_settings(),
    )
    .await;
    assert!(
        matches!(&end, LinkEnd::PeerClose(reason) if reason == "bye"),
        "{end:?}"
    );
    assert!(reason.is_some(), "the mux answers with its own close");
}

#[tokio::test]
async fn a_peer_that_pings_without_reading_is_cut_off() {
    let settings = MuxSettings {
        stream_window: 4096,
        max_streams: 1,
        ..mux_settings()
    };
    // Far more pong bytes than the queue allows (about 1 MiB of 32-byte entries), never read.
    let pings = (0..40_000).map(|i| frame(Channel::Control, i, MessageKind::Ping, Bytes::new()));
    let (end, _) = fed(pings.collect(), false, settings).await;
    assert!(matches!(end, LinkEnd::PeerNotReading(_)), "{end:?}");
}

#[tokio::test]
async fn frames_for_unknown_streams_are_ignored() {
    // Late frames for streams that ended here are normal; they must not end the link.
    let (end, _) = fed(
        vec![
            frame(Channel::CmSecure, 9, MessageKind::Event, b"late".to_vec()),
            frame(Channel::CmSecure, 9, MessageKind::Close, Bytes::new()),
            frame(
                Channel::CmSecure,
                9,
                MessageKind::Response,
                encode_window(5),
            ),
            frame(Channel::CmSecure, 9, MessageKind::Error, Bytes::new()),
            frame(Channel::Control, 0, MessageKind::Close, b"done".to_vec()),
        ],
        false,
        mux_settings(),
    )
    .await;
    assert!(
        matches!(&end, LinkEnd::PeerClose(reason) if reason == "done"),
        "{end:?}"
    );
}
