//! Property tests of the frame codec: round trips, arbitrary bytes, arbitrary splits.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::{check_decoder, Channel, Envelope, FrameCodec, FrameError, MessageKind};

fn any_envelope(max_body: usize) -> impl Strategy<Value = Envelope> {
    (
        prop::sample::select(Channel::ALL.to_vec()),
        any::<u64>(),
        prop::sample::select(MessageKind::ALL.to_vec()),
        prop::collection::vec(any::<u8>(), 0..=max_body),
    )
        .prop_map(|(c, corr, k, body)| Envelope::new(c, corr, k, body))
}

fn encode_all(codec: &mut FrameCodec, envs: &[Envelope]) -> BytesMut {
    let mut buf = BytesMut::new();
    for e in envs {
        codec.encode(e, &mut buf).unwrap();
    }
    buf
}

proptest! {
    #[test]
    fn arbitrary_envelopes_round_trip(envs in prop::collection::vec(any_envelope(2000), 1..8)) {
        let mut codec = FrameCodec::default();
        let mut buf = encode_all(&mut codec, &envs);
        let mut back = Vec::new();
        while let Some(e) = codec.decode(&mut buf).unwrap() {
            back.push(e);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(back, envs);
    }

    #[test]
    fn max_size_bodies_round_trip(max in 64usize..5000, corr in any::<u64>(), fill in any::<u8>()) {
        let mut codec = FrameCodec::new(max).unwrap();
        let e = Envelope::new(Channel::CmSecure, corr, MessageKind::Response, vec![fill; codec.max_body_size()]);
        let mut buf = BytesMut::new();
        codec.encode(&e, &mut buf).unwrap();
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(e));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_the_same(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert_eq!(check_decoder(&data), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        envs in prop::collection::vec(any_envelope(300), 0..4),
        tail in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut data = encode_all(&mut FrameCodec::default(), &envs).to_vec();
        data.extend_from_slice(&tail);
        prop_assert_eq!(check_decoder(&data), Ok(()));
    }

    #[test]
    fn valid_streams_decode_identically_however_split(
        envs in prop::collection::vec(any_envelope(700), 1..10),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let stream = encode_all(&mut FrameCodec::default(), &envs);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut back = Vec::new();
        for w in points.windows(2) {
            buf.put_slice(&stream[w[0]..w[1]]);
            while let Some(e) = codec.decode(&mut buf).unwrap() {
                back.push(e);
            }
        }
        prop_assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        prop_assert_eq!(back, envs);
    }

    #[test]
    fn a_corrupted_byte_yields_frames_then_at_most_one_typed_error(
        envs in prop::collection::vec(any_envelope(200), 1..6),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut stream = encode_all(&mut FrameCodec::default(), &envs).to_vec();
        let i = at.index(stream.len());
        stream[i] ^= flip;
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&stream[..]);
        let mut decoded = 0;
        let end = loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(_)) => decoded += 1,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        prop_assert!(decoded <= envs.len());
        if let Some(e) = end {
            prop_assert!(!matches!(e, FrameError::Poisoned | FrameError::Io(_)), "{}", e);
        }
    }
}
