//! Errors of the frame codec.

/// Why a frame (or a body) could not be encoded or decoded.
///
/// Every decoding error ends the connection: the caller drops the `Framed` stream. The codec never skips
/// input, so no variant leaves the stream out of step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more bytes than the configured maximum; nothing of the frame was buffered.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes (raise max_frame_size on both peers if this is a legitimate message)")]
    TooLarge {
        /// Length announced by the prefix (or produced by the encoder).
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {available} of {expected} bytes arrived (the peer closed or crashed mid-message)")]
    Truncated {
        /// Bytes the frame needed, length prefix included.
        expected: usize,
        /// Bytes that arrived before the end of the stream.
        available: usize,
    },
    /// The envelope decoded but did not use the whole frame.
    #[error("{extra} trailing bytes after the envelope inside one frame (peer uses another wire format?)")]
    TrailingBytes {
        /// Bytes left over inside the frame.
        extra: usize,
    },
    /// The envelope carries a protocol version this build does not speak.
    #[error("unknown protocol version {version} (this build speaks version {supported}); upgrade the older peer")]
    UnknownVersion {
        /// Version found on the wire.
        version: u16,
        /// Version this build speaks.
        supported: u16,
    },
    /// The envelope names a channel id this build does not know.
    #[error("unknown channel id {0} in frame envelope")]
    UnknownChannel(u8),
    /// The envelope names a message kind this build does not know.
    #[error("unknown message kind {0} in frame envelope")]
    UnknownKind(u8),
    /// The bytes are not a valid bincode encoding of the expected type.
    #[error("undecodable frame or body: {0}")]
    Malformed(String),
    /// A value could not be encoded (for example a map with a non-string key where serde needs one).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A body to encode or decode is larger than the limit given by the caller.
    #[error("body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Size of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A maximum frame size outside `1..=MAX_FRAME_SIZE_CEILING` was configured.
    #[error("max_frame_size {requested} is outside 1..={ceiling} bytes")]
    InvalidMaxFrameSize {
        /// The value asked for.
        requested: usize,
        /// The largest value accepted.
        ceiling: usize,
    },
    /// The codec already reported an error on this connection and refuses to decode more.
    #[error("frame decoder already failed on this connection; close it")]
    Poisoned,
    /// Reading or writing the underlying link failed.
    #[error("link I/O error: {0}")]
    Io(#[from] std::io::Error),
}
