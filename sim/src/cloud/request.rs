//! What a node asks the CA for ([`SignRequest`]) and what it gets back ([`IssuedChain`]).

use std::time::{Duration, SystemTime};

use aos_transport::tls::PeerIdentity;
use rustls_pki_types::CertificateDer;

/// A request to sign one CSR for one node and cert type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The node the request comes from (the server fills this from the authenticated peer later).
    pub node_id: String,
    /// The cert type, which is the role in the identity URI (`iam`, `sm`, `cm`, `mp`, `online`, `offline`).
    pub cert_type: String,
    /// The PEM CSR, as IAM's `CreateKey` returns it.
    pub csr_pem: String,
    /// Lifetime of the certificate; `None` takes the CA's default.
    pub lifetime: Option<Duration>,
}

impl SignRequest {
    /// A request with the CA's default lifetime.
    pub fn new(
        node_id: impl Into<String>,
        cert_type: impl Into<String>,
        csr_pem: impl Into<String>,
    ) -> SignRequest {
        SignRequest {
            node_id: node_id.into(),
            cert_type: cert_type.into(),
            csr_pem: csr_pem.into(),
            lifetime: None,
        }
    }

    /// The same request asking for `lifetime`.
    pub fn with_lifetime(mut self, lifetime: Duration) -> SignRequest {
        self.lifetime = Some(lifetime);
        self
    }
}

/// A signed certificate and the chain up to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChain {
    /// PEM chain, leaf first, then the intermediate (if any), then the root: what IAM's `ApplyCert` takes.
    pub chain_pem: String,
    /// The leaf certificate, DER.
    pub leaf: CertificateDer<'static>,
    /// The identity the leaf vouches for.
    pub identity: PeerIdentity,
    /// Serial number, big-endian bytes.
    pub serial: Vec<u8>,
    /// Start of validity (the signing time, in whole seconds, minus the policy's backdate).
    pub not_before: SystemTime,
    /// End of validity (the signing time, in whole seconds, plus the lifetime).
    pub not_after: SystemTime,
}

impl IssuedChain {
    /// The serial number as lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
}
