//! Frames: the wire format of every aos-edge link.
//!
//! A frame is a 4-byte big-endian length prefix followed by that many bytes of a bincode-encoded
//! [`Envelope`] {protocol version, channel, correlation id, message kind, body}. bincode runs in serde mode
//! with the standard configuration (varint integers) and an explicit byte limit; this module is the only place
//! in the workspace that calls bincode (see `docs/transport-frames.md`), so later API types are encoded with
//! [`encode_body`] / [`decode_body`].
//!
//! [`FrameCodec`] is a [`tokio_util::codec`] `Encoder`/`Decoder` pair. Every hostile input ends the
//! connection with a typed [`FrameError`]: a length over the maximum (refused from the prefix, before any byte
//! of the body is buffered), a truncated frame at end of stream, trailing bytes after the envelope, an unknown
//! protocol version, channel or message kind, or undecodable bytes. The decoder never skips a frame, so the
//! stream cannot desynchronise, and once it has reported an error it refuses to decode anything else.

mod body;
mod codec;
mod envelope;
mod error;
mod fuzzing;
#[cfg(test)]
mod proptests;
mod read_buffers;

pub use body::{decode_body, encode_body};
pub use codec::{FrameCodec, DEFAULT_MAX_FRAME_SIZE, LENGTH_PREFIX_LEN, MAX_FRAME_SIZE_CEILING};
pub use envelope::{Channel, Envelope, MessageKind, PROTOCOL_VERSION};
pub use error::FrameError;
pub use fuzzing::check_decoder;
