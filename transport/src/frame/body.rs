//! Every bincode call of the workspace lives in this file.
//!
//! bincode runs in serde mode with the standard configuration (little-endian varints) and a byte limit. The
//! limit is a type parameter in bincode 2, so decoding picks one of eight compile-time limits from the length
//! of the input: inputs up to `T` bytes decode with a limit of `16 × T`, where `T` is the smallest of
//! 1 KiB, 4 KiB, … 16 MiB that fits. bincode counts decoded sizes against the limit before it allocates (a
//! string or byte buffer of `n` bytes counts `n`; a varint counts the size of its Rust type, at most 16), so a
//! valid value never reaches the limit, and a hostile length field fails with an error instead of allocating
//! gigabytes: one decode never allocates more than 16 KiB or `64 ×` its input, whichever is larger (at
//! most 256 MiB).

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec::MAX_FRAME_SIZE_CEILING;
use super::{Channel, Envelope, FrameError, MessageKind, PROTOCOL_VERSION};

/// How many bytes bincode may count against its limit per input byte (a 1-byte varint of a `u128`
/// counts 16).
const CLAIM_FACTOR: usize = 16;

/// Runs `$body` with `$cfg` bound to a bincode configuration whose limit fits an input of `$len` bytes.
macro_rules! with_limit_for {
    ($len:expr, |$cfg:ident| $body:expr) => {{
        let len: usize = $len;
        with_limit_for!(@tier len, $cfg, $body;
            10, 12, 14, 16, 18, 20, 22, 24)
    }};
    (@tier $len:ident, $cfg:ident, $body:expr; $($shift:literal),*) => {{
        $(
            if $len <= (1usize << $shift) {
                let $cfg = bincode::config::standard()
                    .with_limit::<{ (1usize << $shift) * CLAIM_FACTOR }>();
                return $body;
            }
        )*
        Err(FrameError::BodyTooLarge { len: $len, max: MAX_FRAME_SIZE_CEILING })
    }};
}

/// The envelope as bincode sees it: ids as plain bytes, the body borrowed from the frame.
#[derive(Serialize, Deserialize)]
struct WireEnvelope<'a> {
    version: u16,
    channel: u8,
    correlation: u64,
    kind: u8,
    #[serde(borrow, with = "serde_bytes")]
    body: &'a [u8],
}

/// The envelope header as bincode sees it: the body replaced by its length. bincode writes a byte string as
/// its length (a `u64` varint) followed by the bytes, so this encoding followed by the body bytes is exactly
/// the encoding of the whole [`WireEnvelope`].
#[derive(Serialize)]
struct WireHead {
    version: u16,
    channel: u8,
    correlation: u64,
    kind: u8,
    body_len: u64,
}

/// Appends the bincode encoding of `env` without its body bytes to `dst`; returns the bytes written.
pub(super) fn encode_envelope_head(
    env: &Envelope,
    dst: &mut BytesMut,
) -> Result<usize, FrameError> {
    let head = WireHead {
        version: env.version,
        channel: env.channel.id(),
        correlation: env.correlation,
        kind: env.kind.id(),
        body_len: env.body.len() as u64,
    };
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(&head, &mut writer, bincode::config::standard())
        .map_err(|e| FrameError::Encode(e.to_string()))
}

/// Appends the bincode encoding of `env` to `dst`; returns the number of bytes written.
pub(super) fn encode_envelope(env: &Envelope, dst: &mut BytesMut) -> Result<usize, FrameError> {
    let wire = WireEnvelope {
        version: env.version,
        channel: env.channel.id(),
        correlation: env.correlation,
        kind: env.kind.id(),
        body: &env.body,
    };
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(&wire, &mut writer, bincode::config::standard())
        .map_err(|e| FrameError::Encode(e.to_string()))
}

/// Decodes one envelope that must fill `frame` exactly.
///
/// The version is read first, so a frame of another protocol version fails with
/// [`FrameError::UnknownVersion`] whatever follows it.
pub(super) fn decode_envelope(frame: &Bytes) -> Result<Envelope, FrameError> {
    let version: u16 = decode_borrowed_prefix(frame)?.0;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnknownVersion {
            version,
            supported: PROTOCOL_VERSION,
        });
    }
    let (wire, used): (WireEnvelope<'_>, usize) = decode_borrowed_prefix(frame)?;
    if used != frame.len() {
        return Err(FrameError::TrailingBytes {
            extra: frame.len() - used,
        });
    }
    Ok(Envelope {
        version: wire.version,
        channel: Channel::try_from(wire.channel)?,
        correlation: wire.correlation,
        kind: MessageKind::try_from(wire.kind)?,
        // Zero copy: the body is a slice of the frame buffer.
        body: frame.slice_ref(wire.body),
    })
}

fn decode_borrowed_prefix<'a, T: Deserialize<'a>>(
    input: &'a [u8],
) -> Result<(T, usize), FrameError> {
    with_limit_for!(input.len(), |cfg| bincode::serde::borrow_decode_from_slice(
        input, cfg
    )
    .map_err(malformed))
}

/// Encodes `value` with the frame module's bincode configuration.
///
/// Use it for every API type that travels in an [`Envelope`] body, so that bincode stays inside this module.
/// Fails with [`FrameError::BodyTooLarge`] when the encoding is longer than `limit` bytes, and with
/// [`FrameError::Encode`] when serde cannot encode the value.
pub fn encode_body<T: Serialize + ?Sized>(value: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    if bytes.len() > limit {
        return Err(FrameError::BodyTooLarge {
            len: bytes.len(),
            max: limit,
        });
    }
    Ok(bytes)
}

/// Decodes a value written by [`encode_body`]; the value must use every byte.
///
/// Inputs longer than `limit` (or than [`MAX_FRAME_SIZE_CEILING`](super::MAX_FRAME_SIZE_CEILING)) fail with
/// [`FrameError::BodyTooLarge`] before decoding; leftover bytes fail with [`FrameError::TrailingBytes`];
/// anything else that is not a valid encoding fails with [`FrameError::Malformed`]. Hostile length fields
/// never allocate more than a bounded multiple of the input (see the module documentation).
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, FrameError> {
    if bytes.len() > limit {
        return Err(FrameError::BodyTooLarge {
            len: bytes.len(),
            max: limit,
        });
    }
    let (value, used): (T, usize) = decode_owned(bytes)?;
    if used != bytes.len() {
        return Err(FrameError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

fn decode_owned<T: DeserializeOwned>(input: &[u8]) -> Result<(T, usize), FrameError> {
    with_limit_for!(input.len(), |cfg| bincode::serde::decode_from_slice(
        input, cfg
    )
    .map_err(malformed))
}

fn malformed(e: bincode::error::DecodeError) -> FrameError {
    match e {
        bincode::error::DecodeError::LimitExceeded => {
            FrameError::Malformed("a length field claims more bytes than the input holds".into())
        }
        bincode::error::DecodeError::UnexpectedEnd { additional } => FrameError::Malformed(
            format!("value ends {additional} bytes past the end of its input"),
        ),
        other => FrameError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        ids: Vec<u64>,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        attrs: BTreeMap<String, u128>,
    }

    fn sample() -> Sample {
        Sample {
            name: "node-1".into(),
            ids: (0..2000).collect(),
            blob: vec![7; 300],
            attrs: [("a".to_string(), 1u128), ("b".to_string(), u128::MAX)].into(),
        }
    }

    #[test]
    fn body_round_trips_through_the_one_bincode_config() {
        let bytes = encode_body(&sample(), 1 << 20).unwrap();
        let back: Sample = decode_body(&bytes, 1 << 20).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn many_small_varints_decode_within_the_claim_limit() {
        // 4096 zeros of u128: one byte each on the wire, 16 bytes each counted against the limit.
        let v = vec![0u128; 4096];
        let bytes = encode_body(&v, usize::MAX).unwrap();
        assert!(bytes.len() < 4200);
        let back: Vec<u128> = decode_body(&bytes, usize::MAX).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn encode_refuses_a_body_over_the_limit() {
        let err = encode_body(&sample(), 100).unwrap_err();
        assert!(matches!(err, FrameError::BodyTooLarge { max: 100, len } if len > 100));
    }

    #[test]
    fn decode_refuses_input_over_the_limit_before_decoding() {
        let bytes = encode_body(&sample(), usize::MAX).unwrap();
        let err = decode_body::<Sample>(&bytes, 10).unwrap_err();
        assert!(matches!(err, FrameError::BodyTooLarge { max: 10, .. }));
    }

    #[test]
    fn hostile_string_length_fails_without_allocating() {
        // A String whose varint length says u64::MAX / 2 (0xFD = u64 follows), then nothing.
        let mut hostile = vec![0xFD];
        hostile.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let err = decode_body::<String>(&hostile, 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        // The same for a byte buffer inside a struct.
        let mut hostile = vec![1, 0xFC];
        hostile.extend_from_slice(&(u32::MAX).to_le_bytes());
        let err = decode_body::<(u8, serde_bytes::ByteBuf)>(&hostile, 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[test]
    fn trailing_bytes_in_a_body_are_refused() {
        let mut bytes = encode_body(&42u32, 16).unwrap();
        bytes.push(0);
        let err = decode_body::<u32>(&bytes, 16).unwrap_err();
        assert!(matches!(err, FrameError::TrailingBytes { extra: 1 }));
    }
}
