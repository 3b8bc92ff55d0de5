//! Errors that cross the wire: a code a program can match and a message a person can read.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::iam::cert_module::{CertError, ChainError};
use crate::iam::permissions::PermissionError;
use crate::iam::provisioner::ProvisionError;

/// What kind of failure an API call met. Stable on the wire (append only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Nothing matches (unknown cert type, secret, node, instance).
    NotFound,
    /// The provisioning password is wrong.
    WrongPassword,
    /// Too many wrong passwords; the message says when to retry.
    TooManyAttempts,
    /// The operation is not allowed in the node's state.
    WrongState,
    /// Another operation is running.
    Busy,
    /// A certificate chain was refused.
    ChainRefused,
    /// The request is malformed or exceeds a limit.
    InvalidArgument,
    /// The caller's identity may not do this.
    Unauthorized,
    /// A token, a node or a service is not reachable now; retrying may help.
    Unavailable,
    /// No answer in time.
    Timeout,
    /// Anything else; see the message.
    Internal,
}

/// A typed error on the wire. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Human explanation.
    pub message: String,
    /// When the caller may retry (for `TooManyAttempts`).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<CertError> for ApiError {
    fn from(e: CertError) -> Self {
        let code = match &e {
            CertError::UnknownCertType(_) | CertError::NotFound(_) => ErrorCode::NotFound,
            CertError::Chain { reason, .. } => match reason {
                ChainError::Malformed(_) => ErrorCode::InvalidArgument,
                _ => ErrorCode::ChainRefused,
            },
            CertError::Token { .. } | CertError::Mailbox(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        let e = match e {
            ProvisionError::Cert(inner) => return inner.into(),
            other => other,
        };
        let mut retry_after = None;
        let code = match &e {
            ProvisionError::WrongPassword => ErrorCode::WrongPassword,
            ProvisionError::TooManyAttempts { retry_after: after } => {
                retry_after = Some(*after);
                ErrorCode::TooManyAttempts
            }
            ProvisionError::WrongState { .. } | ProvisionError::MissingCertificates(_) => {
                ErrorCode::WrongState
            }
            ProvisionError::Busy => ErrorCode::Busy,
            ProvisionError::Token { .. }
            | ProvisionError::Mailbox
            | ProvisionError::PasswordCheck(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        ApiError {
            code,
            message: e.to_string(),
            retry_after,
        }
    }
}

impl From<PermissionError> for ApiError {
    fn from(e: PermissionError) -> Self {
        let code = match &e {
            PermissionError::NotFound { .. } | PermissionError::UnknownInstance { .. } => {
                ErrorCode::NotFound
            }
            PermissionError::TooManyInstances { .. }
            | PermissionError::TooManyServers { .. }
            | PermissionError::StringTooLong { .. } => ErrorCode::InvalidArgument,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}
