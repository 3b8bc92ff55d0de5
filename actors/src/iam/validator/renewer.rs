//! The seam through which a CSR gets signed during renewal (the CM implements it towards the cloud; tests
//! use an in-process CA).

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What to get signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalRequest {
    /// Cert type.
    pub cert_type: String,
    /// PEM CSR, signed inside the token.
    pub csr: String,
}

/// Why a renewal failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewError {
    /// Try again after the retry interval (network down, CA busy).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Stop renewing this cert type until restarted (refused by the CA); reported.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// Gets CSRs signed.
pub trait Renewer: Send + Sync + 'static {
    /// Sign `request.csr`; returns the PEM chain (leaf first).
    fn renew(&self, request: RenewalRequest) -> BoxFuture<Result<String, RenewError>>;
}
