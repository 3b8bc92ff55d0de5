//! Errors that cross the wire: the body of a `MessageKind::Error` frame.

use std::fmt;

use aos_transport::frame::{decode_body, encode_body};
use serde::{Deserialize, Serialize};

/// Longest message kept in a [`WireError`]; longer ones are cut (on a character boundary).
pub const MAX_WIRE_MESSAGE: usize = 1024;

/// What kind of failure a [`WireError`] reports. An open set of numbers, so a newer peer's codes still decode;
/// the constants are the codes this build sends itself. Services define their own codes from 1000 up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ErrorCode(pub u16);

/// The answer to a request the peer could not handle.
///
/// Handlers return it (`Err(WireError)` from an [`Incoming`](super::Incoming) handler); the requester gets it
/// back as [`LinkError::Remote`](super::LinkError::Remote). Encoded with `aos_transport::frame::encode_body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// A human-readable explanation (no secrets: it goes to the peer).
    pub message: String,
}

// === impl ErrorCode ===

impl ErrorCode {
    /// Nothing handles requests on this channel at the peer.
    pub const NO_HANDLER: ErrorCode = ErrorCode(1);
    /// The peer's handler is gone (its actor stopped) or dropped the request.
    pub const HANDLER_GONE: ErrorCode = ErrorCode(2);
    /// The request is not valid (undecodable body, reserved channel, ...).
    pub const BAD_REQUEST: ErrorCode = ErrorCode(3);
    /// The peer is not allowed to do this.
    pub const PERMISSION_DENIED: ErrorCode = ErrorCode(4);
    /// The thing asked for does not exist.
    pub const NOT_FOUND: ErrorCode = ErrorCode(5);
    /// The handler failed.
    pub const INTERNAL: ErrorCode = ErrorCode(6);
    /// The error body itself did not decode (set locally, never sent).
    pub const UNDECODABLE: ErrorCode = ErrorCode(7);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::NO_HANDLER => "no_handler",
            ErrorCode::HANDLER_GONE => "handler_gone",
            ErrorCode::BAD_REQUEST => "bad_request",
            ErrorCode::PERMISSION_DENIED => "permission_denied",
            ErrorCode::NOT_FOUND => "not_found",
            ErrorCode::INTERNAL => "internal",
            ErrorCode::UNDECODABLE => "undecodable",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "code {}", self.0),
        }
    }
}

// === impl WireError ===

impl WireError {
    /// An error with `code` and `message` (cut to [`MAX_WIRE_MESSAGE`] bytes).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_WIRE_MESSAGE {
            let mut end = MAX_WIRE_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        WireError { code, message }
    }

    /// The frame body of this error.
    pub fn encode(&self) -> Vec<u8> {
        // A u16 and a string of at most MAX_WIRE_MESSAGE bytes always encode; an empty body (decoded as
        // UNDECODABLE by the peer) is the fallback should that ever change.
        encode_body(self, usize::MAX).unwrap_or_default()
    }

    /// The error in a received `Error` frame body; a body that does not decode becomes an
    /// [`ErrorCode::UNDECODABLE`] error saying so, since the request failed either way.
    pub fn decode(body: &[u8]) -> Self {
        decode_body(body, 2 * MAX_WIRE_MESSAGE + 16).unwrap_or_else(|err| {
            WireError::new(
                ErrorCode::UNDECODABLE,
                format!("the peer answered with an error this build cannot decode ({err})"),
            )
        })
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_unknown_codes_survive() {
        for code in [ErrorCode::NOT_FOUND, ErrorCode(4242)] {
            let err = WireError::new(code, "no such cert `online`");
            assert_eq!(WireError::decode(&err.encode()), err);
        }
        assert_eq!(ErrorCode::NO_HANDLER.to_string(), "no_handler (1)");
        assert_eq!(ErrorCode(4242).to_string(), "code 4242");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_and_garbage_is_undecodable() {
        let err = WireError::new(ErrorCode::INTERNAL, "é".repeat(MAX_WIRE_MESSAGE));
        assert!(err.message.len() <= MAX_WIRE_MESSAGE);
        assert!(err.message.chars().all(|c| c == 'é'));
        assert_eq!(WireError::decode(&err.encode()), err);
        let garbage = WireError::decode(&[0xFF, 0xFF, 0xFF]);
        assert_eq!(garbage.code, ErrorCode::UNDECODABLE);
    }
}
