//! The wire API: bincode-serialisable requests, responses and stream messages for every IAM operation (public
//! and protected endpoints, node registration stream) and typed errors. Bodies are encoded with
//! `aos_transport::frame::encode_body` / `decode_body` (the one place that calls bincode), through
//! [`wire::encode`] / [`wire::decode`].
//!
//! Also the CM ⇄ cloud protocol ([`cloud`]) and the CM ⇄ SM protocol ([`sm`]).

pub mod cloud;
pub mod error;
pub mod iam;
pub mod node;
pub mod sm;
pub mod wire;

pub use error::{ApiError, ErrorCode};
pub use iam::{
    IamAnswer, IamEvent, IamRequest, IamResponse, NodeStreamMessage, ProtectedRequest,
    ProtectedResponse, PublicRequest, PublicResponse, WirePassword, WireSecret,
};
pub use node::{NodeEvent, NodeInfo};

#[cfg(test)]
mod tests;
