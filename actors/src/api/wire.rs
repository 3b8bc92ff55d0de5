//! How API messages travel on a link: body encoding, and what a failed link operation means as an
//! [`ApiError`].
//!
//! A request body is an [`IamRequest`](super::IamRequest); its answer body is always an
//! [`IamAnswer`](super::IamAnswer), so service errors cross typed (code and message) inside a successful
//! answer frame. The link's own error frames (`WireError`) are left for failures below the API: a body that
//! does not decode, a channel nobody serves, a handler that went away.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{ApiError, ErrorCode};
use crate::net::{self, LinkError, WireError};

/// Largest API body encoded or decoded. Links refuse bodies above their own `max_frame_size` before this.
pub const MAX_BODY: usize = aos_transport::frame::MAX_FRAME_SIZE_CEILING;

/// Encode an API message as a frame body.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    aos_transport::frame::encode_body(value, MAX_BODY)
        .map(Bytes::from)
        .map_err(|err| ApiError::new(ErrorCode::InvalidArgument, format!("cannot encode: {err}")))
}

/// Decode an API message from a frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    aos_transport::frame::decode_body(body, MAX_BODY).map_err(|err| {
        ApiError::new(
            ErrorCode::Internal,
            format!("the peer sent a message this build cannot decode ({err}); are both ends the same version?"),
        )
    })
}

/// Whether a failed request may be sent again: the link was down or dropped, so the peer may never have
/// seen it. Timeouts and the peer's answers (typed errors included) are final.
pub fn is_transport_failure(err: &LinkError) -> bool {
    matches!(
        err,
        LinkError::NotConnected
            | LinkError::Disconnected(_)
            | LinkError::Stopped
            | LinkError::Unsent
            | LinkError::Backlogged { .. }
    )
}

impl From<LinkError> for ApiError {
    fn from(err: LinkError) -> Self {
        let code = match &err {
            LinkError::Remote(wire) => return ApiError::from(wire.clone()),
            LinkError::Timeout { .. } => ErrorCode::Timeout,
            LinkError::TooLarge { .. } => ErrorCode::InvalidArgument,
            e if is_transport_failure(e) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, err.to_string())
    }
}

impl From<WireError> for ApiError {
    fn from(err: WireError) -> Self {
        let code = match err.code {
            net::ErrorCode::NO_HANDLER | net::ErrorCode::HANDLER_GONE => ErrorCode::Unavailable,
            net::ErrorCode::BAD_REQUEST => ErrorCode::InvalidArgument,
            net::ErrorCode::PERMISSION_DENIED => ErrorCode::Unauthorized,
            net::ErrorCode::NOT_FOUND => ErrorCode::NotFound,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, format!("the peer refused the request: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aos_transport::frame::Channel;

    use super::*;
    use crate::api::{IamAnswer, IamRequest, IamResponse, ProtectedResponse, PublicRequest};
    use crate::net::DisconnectReason;

    #[test]
    fn answers_round_trip_with_their_typed_error() {
        let answer: IamAnswer = Err(ApiError::new(ErrorCode::WrongPassword, "wrong"));
        let back: IamAnswer = decode(&encode(&answer).unwrap()).unwrap();
        assert_eq!(back, answer);
        let ok: IamAnswer = Ok(IamResponse::Protected(ProtectedResponse::Done));
        assert_eq!(decode::<IamAnswer>(&encode(&ok).unwrap()).unwrap(), ok);
        let request = IamRequest::Public(PublicRequest::GetAllNodeIds);
        assert_eq!(
            decode::<IamRequest>(&encode(&request).unwrap()).unwrap(),
            request
        );
        let garbage = decode::<IamRequest>(&[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(garbage.code, ErrorCode::Internal);
    }

    #[test]
    fn link_failures_map_to_codes_and_only_transport_ones_are_retried() {
        let timeout = LinkError::Timeout {
            channel: Channel::IamOpen,
            after: Duration::from_secs(1),
        };
        assert!(!is_transport_failure(&timeout));
        assert_eq!(ApiError::from(timeout).code, ErrorCode::Timeout);
        let dropped = LinkError::Disconnected(DisconnectReason::PeerClosed);
        assert!(is_transport_failure(&dropped));
        assert_eq!(ApiError::from(dropped).code, ErrorCode::Unavailable);
        let remote = LinkError::Remote(WireError::new(net::ErrorCode::BAD_REQUEST, "bad"));
        assert!(!is_transport_failure(&remote));
        assert_eq!(ApiError::from(remote).code, ErrorCode::InvalidArgument);
        let gone = WireError::new(net::ErrorCode::NO_HANDLER, "no IAM here");
        assert_eq!(ApiError::from(gone).code, ErrorCode::Unavailable);
    }
}
