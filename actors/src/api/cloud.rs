//! The CM ⇄ cloud protocol, on [`CLOUD_CHANNEL`] of the cloud link (TLS; the CM authenticates with its `cm`
//! certificate once it has one).
//!
//! The cloud drives: it sends [`CloudRequest`]s and the CM answers each with a [`CloudResult`]. Provisioning
//! and renewal are two steps per node, as in AosCore's cloud protocol:
//!
//! | cloud sends | CM does | CM answers |
//! |---|---|---|
//! | `GetUnitStatus` | asks IAM for every node | `UnitStatus` |
//! | `StartProvisioning { node, password }` | StartProvisioning, GetCertTypes, CreateKey per type | `Csrs` |
//! | `FinishProvisioning { node, password, certs }` | ApplyCert per type (`iam` last), FinishProvisioning | `Installed` |
//! | `RenewCerts { node, cert_types, password }` | CreateKey per type | `Csrs` |
//! | `InstallCerts { node, certs }` | ApplyCert per type (`iam` last) | `Installed` |
//!
//! The CM also asks on its own ([`CmRequest::SignCsr`], the validator's renewal thresholds) and the cloud
//! answers a [`SignResult`]. Bodies are `aos_transport::frame::encode_body` of these types.

use aos_transport::frame::Channel;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::iam::WirePassword;
use crate::iam::cert_module::CertInfo;
use crate::iam::provisioner::NodeState;

/// The channel the cloud link carries this protocol on (both directions).
pub const CLOUD_CHANNEL: Channel = Channel::CmSecure;

/// Cloud → CM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloudRequest {
    /// The unit's id, its main node and every node with its state.
    GetUnitStatus,
    /// Start provisioning `node_id` and create a key and CSR for each of its cert types.
    StartProvisioning {
        /// The node to provision.
        node_id: String,
        /// The node's provisioning password (becomes the SO PIN of its tokens).
        password: WirePassword,
    },
    /// Apply the signed chains (`iam` last) and finish provisioning `node_id`.
    FinishProvisioning {
        /// The node.
        node_id: String,
        /// The node's provisioning password.
        password: WirePassword,
        /// One signed chain per cert type the CM sent a CSR for.
        certs: Vec<IssuedCert>,
    },
    /// Create new keys and CSRs for `cert_types` of `node_id` (cloud-driven renewal).
    RenewCerts {
        /// The node.
        node_id: String,
        /// The cert types to renew.
        cert_types: Vec<String>,
        /// The node's provisioning password (authorises CreateKey).
        password: WirePassword,
    },
    /// Apply renewed chains (`iam` last) on `node_id`.
    InstallCerts {
        /// The node.
        node_id: String,
        /// The signed chains.
        certs: Vec<IssuedCert>,
    },
}

/// What the CM answers to a [`CloudRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloudAnswer {
    /// `GetUnitStatus`.
    UnitStatus(UnitStatus),
    /// `StartProvisioning` / `RenewCerts`: one CSR per cert type.
    Csrs(Vec<CsrRequest>),
    /// `FinishProvisioning` / `InstallCerts`: the applied certificates, in the order they were applied.
    Installed(Vec<CertInfo>),
}

/// The body of the CM's answer to a [`CloudRequest`].
pub type CloudResult = Result<CloudAnswer, CmFailure>;

/// The unit as the CM sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    /// The unit id.
    pub unit_id: String,
    /// The main node (the CM's own node).
    pub main_node_id: String,
    /// Every node of the unit, the main node first.
    pub nodes: Vec<NodeStatus>,
}

/// One node of a [`UnitStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node id.
    pub node_id: String,
    /// Its provisioning state.
    pub state: NodeState,
}

/// A CSR for one cert type of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsrRequest {
    /// The node the key lives on.
    pub node_id: String,
    /// The cert type (= the role in the CSR's identity URI).
    pub cert_type: String,
    /// The PEM CSR, signed inside the node's token.
    pub csr_pem: String,
}

/// A chain the cloud signed for one cert type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// The cert type.
    pub cert_type: String,
    /// PEM chain, leaf first, up to the root.
    pub chain_pem: String,
}

/// Which step of a cloud request failed on the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CmStep {
    /// Reading the unit's nodes.
    UnitStatus,
    /// IAM's StartProvisioning.
    StartProvisioning,
    /// IAM's GetCertTypes.
    GetCertTypes,
    /// IAM's CreateKey for a cert type.
    CreateKey(String),
    /// IAM's ApplyCert for a cert type (also: the cloud sent a chain twice, or for a type the node lacks).
    ApplyCert(String),
    /// IAM's FinishProvisioning.
    FinishProvisioning,
}

impl std::fmt::Display for CmStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CmStep::UnitStatus => f.write_str("unit status"),
            CmStep::StartProvisioning => f.write_str("StartProvisioning"),
            CmStep::GetCertTypes => f.write_str("GetCertTypes"),
            CmStep::CreateKey(t) => write!(f, "CreateKey({t})"),
            CmStep::ApplyCert(t) => write!(f, "ApplyCert({t})"),
            CmStep::FinishProvisioning => f.write_str("FinishProvisioning"),
        }
    }
}

/// A cloud request the CM could not carry out: on which node, at which step, and IAM's typed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("node {node_id:?}, step {step}: {error}")]
pub struct CmFailure {
    /// The node.
    pub node_id: String,
    /// The step.
    pub step: CmStep,
    /// What IAM (or the CM) answered.
    pub error: ApiError,
}

/// CM → cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CmRequest {
    /// Sign a CSR the unit made on its own (renewal threshold reached). Only an authenticated CM may ask.
    SignCsr(CsrRequest),
}

/// What the cloud answers to a [`CmRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CmAnswer {
    /// `SignCsr`: the PEM chain, leaf first.
    Chain(String),
}

/// The body of the cloud's answer to a [`CmRequest`].
pub type SignResult = Result<CmAnswer, CloudFault>;

/// Why the cloud did not do what the CM asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CloudFault {
    /// The CA's policy refused the CSR; `label` is the CA's stable refusal label (e.g. `wrong_node`).
    #[error("the cloud CA refused the CSR ({label}): {message}")]
    Refused {
        /// Stable label of the refusal.
        label: String,
        /// The CA's explanation.
        message: String,
    },
    /// The CM is not authenticated (no `cm` certificate of this unit yet) or may not ask this.
    #[error("the cloud does not accept this from the CM: {0}")]
    Unauthorized(String),
    /// The node is not a node of this unit as the cloud knows it.
    #[error("the cloud knows no node {0:?} in this unit")]
    UnknownNode(String),
    /// The request does not decode or makes no sense.
    #[error("the cloud could not read the request: {0}")]
    BadRequest(String),
    /// The cloud failed internally; retrying may help.
    #[error("the cloud failed: {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aos_transport::frame::{decode_body, encode_body};

    use super::*;
    use crate::api::ErrorCode;
    use crate::iam::provisioner::Password;

    fn round_trip<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = encode_body(value, 64 * 1024).unwrap();
        assert_eq!(&decode_body::<T>(&bytes, 64 * 1024).unwrap(), value);
    }

    #[test]
    fn every_message_round_trips_and_passwords_stay_out_of_debug() {
        let password = WirePassword(Password::new("s3cret-pw"));
        let csr = CsrRequest {
            node_id: "main".into(),
            cert_type: "iam".into(),
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
        };
        let issued = IssuedCert {
            cert_type: "iam".into(),
            chain_pem: "-----BEGIN CERTIFICATE-----".into(),
        };
        let requests = [
            CloudRequest::GetUnitStatus,
            CloudRequest::StartProvisioning {
                node_id: "main".into(),
                password: password.clone(),
            },
            CloudRequest::FinishProvisioning {
                node_id: "main".into(),
                password: password.clone(),
                certs: vec![issued.clone()],
            },
            CloudRequest::RenewCerts {
                node_id: "n1".into(),
                cert_types: vec!["sm".into()],
                password,
            },
            CloudRequest::InstallCerts {
                node_id: "n1".into(),
                certs: vec![issued],
            },
        ];
        for request in &requests {
            round_trip(request);
            assert!(!format!("{request:?}").contains("s3cret-pw"));
        }
        round_trip::<CloudResult>(&Ok(CloudAnswer::Csrs(vec![csr.clone()])));
        round_trip::<CloudResult>(&Ok(CloudAnswer::UnitStatus(UnitStatus {
            unit_id: "u".into(),
            main_node_id: "main".into(),
            nodes: vec![NodeStatus {
                node_id: "main".into(),
                state: NodeState::Provisioned,
            }],
        })));
        round_trip::<CloudResult>(&Err(CmFailure {
            node_id: "n1".into(),
            step: CmStep::ApplyCert("iam".into()),
            error: ApiError::new(ErrorCode::ChainRefused, "expired"),
        }));
        round_trip(&CmRequest::SignCsr(csr));
        round_trip::<SignResult>(&Ok(CmAnswer::Chain("pem".into())));
        round_trip::<SignResult>(&Err(CloudFault::Refused {
            label: "wrong_node".into(),
            message: "CSR is for node `x`".into(),
        }));
    }

    #[test]
    fn a_failure_names_node_step_and_cause() {
        let failure = CmFailure {
            node_id: "n1".into(),
            step: CmStep::CreateKey("online".into()),
            error: ApiError::new(ErrorCode::WrongPassword, "wrong password"),
        };
        let shown = failure.to_string();
        assert!(
            shown.contains("n1")
                && shown.contains("CreateKey(online)")
                && shown.contains("wrong password"),
            "{shown}"
        );
    }
}
