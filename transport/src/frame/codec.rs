//! The length-prefixed frame codec for `tokio_util::codec::Framed`.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::body::{decode_envelope, encode_envelope, encode_envelope_head};
use super::read_buffers::ReadBuffers;
use super::{Envelope, FrameError};

/// Size of the big-endian `u32` length prefix in front of every frame.
pub const LENGTH_PREFIX_LEN: usize = 4;
/// Maximum frame size (bincode bytes after the prefix) when none is configured: 1 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 1 << 20;
/// The largest maximum frame size that can be configured: 16 MiB.
pub const MAX_FRAME_SIZE_CEILING: usize = 1 << 24;

/// Encoder and decoder of [`Envelope`] frames: `u32` big-endian length, then that many bincode bytes.
///
/// The decoder checks the announced length against `max_frame_size` as soon as the 4 prefix bytes are in,
/// before buffering any of the body, so a hostile length costs nothing. Any error poisons the codec: later
/// calls return [`FrameError::Poisoned`], so a caller that keeps polling a failed `Framed` cannot resume in
/// the middle of a bad frame.
///
/// Decoded frames are slices of the read buffer (no copy). A connection that carries large frames reads
/// into big buffers of the codec's own, reused once their frames are dropped (see `read_buffers.rs`). A
/// clone gets buffers of its own.
#[derive(Debug)]
pub struct FrameCodec {
    max_frame_size: usize,
    poisoned: bool,
    buffers: ReadBuffers,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            poisoned: false,
            buffers: ReadBuffers::default(),
        }
    }
}

impl Clone for FrameCodec {
    fn clone(&self) -> Self {
        FrameCodec {
            max_frame_size: self.max_frame_size,
            poisoned: self.poisoned,
            buffers: ReadBuffers::default(),
        }
    }
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_frame_size` bytes (prefix not counted), in both
    /// directions. `max_frame_size` must lie in `1..=MAX_FRAME_SIZE_CEILING`.
    pub fn new(max_frame_size: usize) -> Result<Self, FrameError> {
        if max_frame_size == 0 || max_frame_size > MAX_FRAME_SIZE_CEILING {
            return Err(FrameError::InvalidMaxFrameSize {
                requested: max_frame_size,
                ceiling: MAX_FRAME_SIZE_CEILING,
            });
        }
        Ok(FrameCodec {
            max_frame_size,
            poisoned: false,
            buffers: ReadBuffers::default(),
        })
    }

    /// The configured maximum frame size in bytes.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The most body bytes an envelope can carry within the maximum frame size (the envelope header takes
    /// at most 25 bytes: version 3, channel 1, correlation 9, kind 1, body length 9, rounded up).
    pub fn max_body_size(&self) -> usize {
        self.max_frame_size.saturating_sub(ENVELOPE_HEADER_MAX)
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.poisoned = true;
        err
    }
}

/// Upper bound of the bincode bytes of an envelope apart from its body.
const ENVELOPE_HEADER_MAX: usize = 25;

impl Decoder for FrameCodec {
    type Item = Envelope;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        if self.poisoned {
            return Err(FrameError::Poisoned);
        }
        let Some(len) = announced_len(src) else {
            return Ok(None);
        };
        if len > self.max_frame_size {
            return Err(self.fail(FrameError::TooLarge {
                len,
                max: self.max_frame_size,
            }));
        }
        let total = LENGTH_PREFIX_LEN + len;
        if src.len() < total {
            if self.buffers.should_switch(src, total) {
                self.buffers.switch(src);
            } else {
                src.reserve(total - src.len());
            }
            return Ok(None);
        }
        let frame = src.split_to(total).freeze().slice(LENGTH_PREFIX_LEN..);
        match decode_envelope(&frame) {
            Ok(env) => Ok(Some(env)),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        match self.decode(src)? {
            Some(env) => Ok(Some(env)),
            None if src.is_empty() => Ok(None),
            None => {
                let expected = LENGTH_PREFIX_LEN + announced_len(src).unwrap_or(0);
                let available = src.len();
                Err(self.fail(FrameError::Truncated {
                    expected,
                    available,
                }))
            }
        }
    }
}

impl Encoder<&Envelope> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, env: &Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        let start = dst.len();
        dst.reserve(LENGTH_PREFIX_LEN + ENVELOPE_HEADER_MAX + env.body.len());
        dst.put_u32(0);
        let written = match encode_envelope(env, dst) {
            Ok(n) => n,
            Err(e) => {
                dst.truncate(start);
                return Err(e);
            }
        };
        if written > self.max_frame_size {
            dst.truncate(start);
            return Err(FrameError::TooLarge {
                len: written,
                max: self.max_frame_size,
            });
        }
        // `written <= max_frame_size <= MAX_FRAME_SIZE_CEILING`, so it fits in the u32 prefix.
        let prefix = (written as u32).to_be_bytes();
        dst[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&prefix);
        Ok(())
    }
}

impl FrameCodec {
    /// Appends the frame of `env` *without its body bytes* to `dst`: the length prefix, the envelope header
    /// and the body length. Writing `env.body` right after it gives exactly the bytes [`Encoder::encode`]
    /// writes, so a writer can hand a large body to the stream without copying it into the frame buffer.
    pub fn encode_head(&mut self, env: &Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        let start = dst.len();
        dst.reserve(LENGTH_PREFIX_LEN + ENVELOPE_HEADER_MAX);
        dst.put_u32(0);
        let head = match encode_envelope_head(env, dst) {
            Ok(n) => n,
            Err(e) => {
                dst.truncate(start);
                return Err(e);
            }
        };
        let written = head + env.body.len();
        if written > self.max_frame_size {
            dst.truncate(start);
            return Err(FrameError::TooLarge {
                len: written,
                max: self.max_frame_size,
            });
        }
        // `written <= max_frame_size <= MAX_FRAME_SIZE_CEILING`, so it fits in the u32 prefix.
        let prefix = (written as u32).to_be_bytes();
        dst[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&prefix);
        Ok(())
    }
}

impl Encoder<Envelope> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, env: Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&env, dst)
    }
}

/// The length announced by the prefix at the start of `buf`, once all four prefix bytes are there.
fn announced_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; LENGTH_PREFIX_LEN] = buf.get(..LENGTH_PREFIX_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Channel, MessageKind};
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::{Framed, FramedRead};

    fn env(body: Vec<u8>) -> Envelope {
        Envelope::new(Channel::IamSecure, 42, MessageKind::Request, body)
    }

    fn encoded(e: &Envelope) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode(e, &mut buf).unwrap();
        buf
    }

    /// A frame whose prefix says `payload.len()`, around arbitrary payload bytes.
    fn raw_frame(payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(payload.len() as u32);
        buf.extend_from_slice(payload);
        buf
    }

    /// Feed `stream` to `codec` in reads of `chunk` bytes (as `FramedRead` would: into whatever buffer the
    /// decoder left in place), decoding after each read; `keep` frames are held, the rest dropped at once.
    fn decode_in_reads(
        codec: &mut FrameCodec,
        stream: &[u8],
        chunk: usize,
        keep: bool,
    ) -> (usize, Vec<Envelope>) {
        let mut src = BytesMut::with_capacity(16 * 1024);
        let (mut count, mut kept) = (0, Vec::new());
        for piece in stream.chunks(chunk) {
            src.extend_from_slice(piece);
            while let Some(e) = codec.decode(&mut src).unwrap() {
                count += 1;
                if keep {
                    kept.push(e);
                }
            }
        }
        assert!(src.is_empty());
        (count, kept)
    }

    #[test]
    fn large_frames_are_cut_from_reused_buffers_and_small_ones_in_between_still_decode() {
        let sizes = [70_000usize, 10, 16 * 1024, 64 * 1024, 3, 500_000];
        let bodies: Vec<Vec<u8>> = (0..120)
            .map(|i| {
                let n = sizes[i % sizes.len()];
                (0..n).map(|j| (i * 7 + j) as u8).collect()
            })
            .collect();
        let mut stream = BytesMut::new();
        for b in &bodies {
            stream.extend_from_slice(&encoded(&env(b.clone())));
        }
        // Frames held: every byte is right, whatever buffers they were cut from.
        let mut codec = FrameCodec::default();
        let (count, kept) = decode_in_reads(&mut codec, &stream, 9_000, true);
        assert_eq!(count, bodies.len());
        for (e, b) in kept.iter().zip(&bodies) {
            assert_eq!(e.body.as_ref(), b.as_slice());
            assert_eq!((e.correlation, e.kind), (42, MessageKind::Request));
        }
        // Frames dropped as they arrive: 27 MB go through a handful of big buffers, reused.
        let mut codec = FrameCodec::default();
        let (count, _) = decode_in_reads(&mut codec, &stream, 9_000, false);
        assert_eq!(count, bodies.len());
        assert!(
            (1..super::super::read_buffers::MAX_BUFFERS).contains(&codec.buffers.allocated()),
            "{:?}",
            codec.buffers
        );
    }

    #[test]
    fn envelope_round_trips_and_prefix_is_big_endian_length() {
        let e = env(b"hello".to_vec());
        let mut buf = encoded(&e);
        assert_eq!(announced_len(&buf), Some(buf.len() - LENGTH_PREFIX_LEN));
        assert_eq!(&buf[..2], &[0, 0]);
        let back = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(back, e);
        assert!(buf.is_empty());
    }

    #[test]
    fn head_plus_body_is_the_whole_frame() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let e = env(vec![0x5a; len]);
            let mut head = BytesMut::new();
            FrameCodec::default().encode_head(&e, &mut head).unwrap();
            head.extend_from_slice(&e.body);
            assert_eq!(head, encoded(&e), "body of {len} bytes");
        }
        let mut small = FrameCodec::new(1024).unwrap();
        let mut dst = BytesMut::new();
        assert!(matches!(
            small.encode_head(&env(vec![0; 2000]), &mut dst),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(dst.is_empty(), "nothing written on error");
    }

    #[test]
    fn wire_bytes_match_the_documented_example() {
        // docs/transport-frames.md: a Ping on the control channel, correlation 7, empty body.
        let buf = encoded(&Envelope::new(
            Channel::Control,
            7,
            MessageKind::Ping,
            vec![],
        ));
        assert_eq!(&buf[..], &[0, 0, 0, 5, 1, 0, 7, 4, 0]);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let full = encoded(&env(vec![9; 100]));
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            buf.put_u8(*b);
            let got = codec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i + 1 == full.len(), "byte {i}");
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        let mut codec = FrameCodec::new(1000).unwrap();
        let mut buf = BytesMut::new();
        buf.put_u32(1001);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    len: 1001,
                    max: 1000
                }
            ),
            "{err}"
        );
        assert!(
            buf.capacity() < 1001,
            "the decoder reserved room for a refused frame"
        );
        // Exactly the maximum is accepted (it just needs more bytes).
        let mut codec = FrameCodec::new(1000).unwrap();
        let mut buf = BytesMut::new();
        buf.put_u32(1000);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        // The largest u32 never allocates either.
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn max_frame_size_is_validated() {
        assert!(matches!(
            FrameCodec::new(0),
            Err(FrameError::InvalidMaxFrameSize { .. })
        ));
        assert!(matches!(
            FrameCodec::new(MAX_FRAME_SIZE_CEILING + 1),
            Err(FrameError::InvalidMaxFrameSize { .. })
        ));
        assert_eq!(
            FrameCodec::new(MAX_FRAME_SIZE_CEILING)
                .unwrap()
                .max_frame_size(),
            MAX_FRAME_SIZE_CEILING
        );
        assert_eq!(
            FrameCodec::default().max_frame_size(),
            DEFAULT_MAX_FRAME_SIZE
        );
    }

    #[test]
    fn a_body_of_max_body_size_fits_and_one_more_byte_may_not() {
        let mut codec = FrameCodec::new(4096).unwrap();
        let mut e = env(vec![0xAB; codec.max_body_size()]);
        e.correlation = u64::MAX;
        let mut buf = BytesMut::new();
        codec.encode(&e, &mut buf).unwrap();
        assert!(buf.len() - LENGTH_PREFIX_LEN <= 4096);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), e);

        let too_big = env(vec![0; 4096]);
        let mut buf = BytesMut::from(&b"keep"[..]);
        let err = codec.encode(&too_big, &mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { max: 4096, .. }),
            "{err}"
        );
        assert_eq!(
            &buf[..],
            b"keep",
            "a refused frame must leave the buffer as it was"
        );
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_refused() {
        let good = encoded(&env(b"x".to_vec()));
        let mut payload = good[LENGTH_PREFIX_LEN..].to_vec();
        payload.push(0);
        let err = FrameCodec::default()
            .decode(&mut raw_frame(&payload))
            .unwrap_err();
        assert!(
            matches!(err, FrameError::TrailingBytes { extra: 1 }),
            "{err}"
        );
    }

    #[test]
    fn unknown_version_channel_and_kind_are_typed_errors() {
        let mut e = env(vec![1, 2, 3]);
        e.version = 2;
        let err = FrameCodec::default().decode(&mut encoded(&e)).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::UnknownVersion {
                    version: 2,
                    supported: 1
                }
            ),
            "{err}"
        );

        // version 1, channel 9, correlation 0, kind 0, empty body.
        let err = FrameCodec::default()
            .decode(&mut raw_frame(&[1, 9, 0, 0, 0]))
            .unwrap_err();
        assert!(matches!(err, FrameError::UnknownChannel(9)), "{err}");
        let err = FrameCodec::default()
            .decode(&mut raw_frame(&[1, 1, 0, 200, 0]))
            .unwrap_err();
        assert!(matches!(err, FrameError::UnknownKind(200)), "{err}");
        // A version-2 frame is refused for its version even when the rest would not parse.
        let err = FrameCodec::default()
            .decode(&mut raw_frame(&[2, 0xFF]))
            .unwrap_err();
        assert!(
            matches!(err, FrameError::UnknownVersion { version: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_hostile_body_lengths_are_malformed() {
        for payload in [&[][..], &[1][..], &[1, 1, 0, 0, 0xFF], &[0xFF; 40]] {
            let err = FrameCodec::default()
                .decode(&mut raw_frame(payload))
                .unwrap_err();
            assert!(
                matches!(err, FrameError::Malformed(_)),
                "{payload:?}: {err}"
            );
        }
        // Body length claims 2^62 bytes inside a 14-byte frame.
        let mut payload = vec![1, 1, 0, 0, 0xFD];
        payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
        let err = FrameCodec::default()
            .decode(&mut raw_frame(&payload))
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[test]
    fn after_an_error_the_decoder_is_poisoned() {
        let mut codec = FrameCodec::new(10).unwrap();
        let mut buf = BytesMut::new();
        buf.put_u32(11);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        let mut good = encoded(&Envelope::new(
            Channel::Control,
            0,
            MessageKind::Ping,
            vec![],
        ));
        assert!(matches!(codec.decode(&mut good), Err(FrameError::Poisoned)));
        assert!(matches!(
            codec.decode_eof(&mut good),
            Err(FrameError::Poisoned)
        ));
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error_and_clean_eof_is_not() {
        let full = encoded(&env(vec![5; 50]));
        let mut codec = FrameCodec::default();
        let mut cut = BytesMut::from(&full[..full.len() - 3]);
        assert!(codec.decode(&mut cut).unwrap().is_none());
        let err = codec.decode_eof(&mut cut).unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { expected, available } if expected == full.len() && available == full.len() - 3),
            "{err}"
        );
        let mut partial_prefix = BytesMut::from(&[0u8, 0][..]);
        let err = FrameCodec::default()
            .decode_eof(&mut partial_prefix)
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    expected: 4,
                    available: 2
                }
            ),
            "{err}"
        );
        assert!(FrameCodec::default()
            .decode_eof(&mut BytesMut::new())
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_hostile_connection_ends_alone_and_good_frames_before_it_arrive() {
        let (mut bad_tx, bad_rx) = tokio::io::duplex(1 << 16);
        let (good_tx, good_rx) = tokio::io::duplex(1 << 16);
        let mut good_sender = Framed::new(good_tx, FrameCodec::default());
        let good_reader = FramedRead::new(good_rx, FrameCodec::default());
        let bad_reader = FramedRead::new(bad_rx, FrameCodec::default());

        // The hostile peer: one valid frame, then garbage, then another valid frame.
        let mut bytes = encoded(&env(b"first".to_vec())).to_vec();
        bytes.extend_from_slice(&raw_frame(&[0xFF; 8]));
        bytes.extend_from_slice(&encoded(&env(b"never".to_vec())));
        bad_tx.write_all(&bytes).await.unwrap();
        drop(bad_tx);

        for i in 0..100u64 {
            let e = Envelope::new(Channel::CmOpen, i, MessageKind::Event, vec![i as u8; 300]);
            good_sender.send(e).await.unwrap();
        }
        drop(good_sender);

        let bad: Vec<_> = bad_reader.collect().await;
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(&bad[0].as_ref().unwrap().body[..], b"first");
        assert!(
            matches!(bad[1], Err(FrameError::Malformed(_))),
            "{:?}",
            bad[1]
        );

        let good: Vec<_> = good_reader.collect().await;
        assert_eq!(good.len(), 100);
        for (i, e) in good.into_iter().enumerate() {
            let e = e.unwrap();
            assert_eq!(e.correlation, i as u64);
            assert_eq!(e.body, vec![i as u8; 300]);
        }
    }
}
