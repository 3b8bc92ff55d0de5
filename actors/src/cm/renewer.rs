//! [`CloudRenewer`]: the cert validator's [`Renewer`] seam implemented by the CM, so that a certificate
//! reaching its local renewal threshold gets its CSR signed by the cloud.

use crate::api::cloud::CsrRequest;
use crate::iam::validator::{BoxFuture, RenewError, RenewalRequest, Renewer};

use super::cloud_link::CloudClient;
use super::error::CloudCallError;

/// Gets the renewal CSRs of one node signed by the cloud.
///
/// A [`RenewalRequest`] names no node: each validator renews its own node's certificates, so a renewer is
/// made for one node (the CM's own node here; a secondary's validator reaches the CM through the MP bridge
/// and gets a renewer for its node id there).
///
/// Errors: a refusal by the cloud CA, an unknown node or a malformed request are
/// [`RenewError::Fatal`] (asking again would be refused again); link trouble, timeouts, an unavailable
/// cloud or a CM not yet authenticated are [`RenewError::Retryable`].
#[derive(Debug, Clone)]
pub struct CloudRenewer {
    client: CloudClient,
    node_id: String,
}

impl CloudRenewer {
    /// A renewer for the certificates of `node_id`.
    pub fn new(client: CloudClient, node_id: impl Into<String>) -> CloudRenewer {
        CloudRenewer {
            client,
            node_id: node_id.into(),
        }
    }
}

impl Renewer for CloudRenewer {
    fn renew(&self, request: RenewalRequest) -> BoxFuture<Result<String, RenewError>> {
        let client = self.client.clone();
        let csr = CsrRequest {
            node_id: self.node_id.clone(),
            cert_type: request.cert_type,
            csr_pem: request.csr,
        };
        Box::pin(async move { client.sign(csr).await.map_err(renew_error) })
    }
}

/// How a failed cloud call counts for the validator.
pub fn renew_error(err: CloudCallError) -> RenewError {
    if err.is_retryable() {
        RenewError::Retryable(err.to_string())
    } else {
        RenewError::Fatal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cloud::CloudFault;
    use crate::net::LinkError;

    #[test]
    fn refusals_are_fatal_and_link_trouble_is_retryable() {
        let refused = CloudCallError::Cloud(CloudFault::Refused {
            label: "wrong_node".into(),
            message: "CSR is for node `x`".into(),
        });
        assert_eq!(refused.refusal_label(), Some("wrong_node"));
        assert!(matches!(renew_error(refused), RenewError::Fatal(m) if m.contains("wrong_node")));
        let unknown = CloudCallError::Cloud(CloudFault::UnknownNode("n9".into()));
        assert!(matches!(renew_error(unknown), RenewError::Fatal(_)));
        for retryable in [
            CloudCallError::Link(LinkError::NotConnected),
            CloudCallError::Cloud(CloudFault::Unavailable("busy".into())),
            CloudCallError::Cloud(CloudFault::Unauthorized("no cm certificate".into())),
        ] {
            assert!(matches!(renew_error(retryable), RenewError::Retryable(_)));
        }
    }
}
