//! Requests and responses of IAM's public (TLS) and protected (mTLS) endpoints, and of the node registration
//! stream. Every request names its target node: empty or the server's own id is handled locally, another id
//! is forwarded by the main node to that secondary.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::node::{NodeEvent, NodeInfo};
use crate::iam::cert_module::CertInfo;
use crate::iam::permissions::{InstanceIdent, PermissionGrant, Permissions};
use crate::iam::provisioner::NodeState;

/// A password as carried on the wire (only ever inside TLS). Zeroized on drop; `Debug` prints nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WirePassword(#[serde(with = "password_serde")] pub crate::iam::provisioner::Password);

impl std::fmt::Debug for WirePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WirePassword(<redacted>)")
    }
}

mod password_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::iam::provisioner::Password;

    pub fn serialize<S: Serializer>(p: &Password, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Password, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        Ok(Password::new(text.as_str()))
    }
}

/// A secret as carried on the wire (GetPermissions). `Debug` prints nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WireSecret(pub crate::iam::permissions::Secret);

impl std::fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireSecret(<redacted>)")
    }
}

/// Operations of the public endpoint (server-authenticated TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PublicRequest {
    /// The serving node's system id and unit id.
    GetSystemInfo,
    /// The serving node's information.
    GetCurrentNodeInfo,
    /// A certificate of a node (current one when issuer and serial are empty).
    GetCert {
        /// Target node (empty = this node).
        node_id: String,
        /// Cert type.
        cert_type: String,
        /// Issuer DER (optional).
        #[serde(with = "serde_bytes")]
        issuer: Vec<u8>,
        /// Serial hex (optional).
        serial: String,
    },
    /// Validate a service's secret for one functional server.
    GetPermissions {
        /// The secret the service presented.
        secret: WireSecret,
        /// The functional server asking.
        functional_server_id: String,
    },
    /// Ids of every node of the unit.
    GetAllNodeIds,
    /// One node's information.
    GetNodeInfo {
        /// The node.
        node_id: String,
    },
    /// Subscribe to the current certificate of a type (events follow on the same channel).
    SubscribeCertChanged {
        /// Cert type.
        cert_type: String,
    },
    /// Subscribe to node events.
    SubscribeNodeChanged,
}

/// Answers of the public endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PublicResponse {
    /// GetSystemInfo.
    SystemInfo {
        /// Node id.
        node_id: String,
        /// Unit id.
        unit_id: String,
    },
    /// GetCurrentNodeInfo / GetNodeInfo.
    NodeInfo(NodeInfo),
    /// GetCert.
    Cert(CertInfo),
    /// GetPermissions.
    Permissions(PermissionGrant),
    /// GetAllNodeIds.
    NodeIds(Vec<String>),
    /// A subscription was accepted; events follow.
    Subscribed,
}

/// Operations of the protected endpoint (mutual TLS, role-authorised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProtectedRequest {
    /// Provisioned → paused.
    PauseNode {
        /// Target node.
        node_id: String,
    },
    /// Paused → provisioned.
    ResumeNode {
        /// Target node.
        node_id: String,
    },
    /// Cert types of a node (all but self-signed).
    GetCertTypes {
        /// Target node.
        node_id: String,
    },
    /// Begin provisioning.
    StartProvisioning {
        /// Target node.
        node_id: String,
        /// Provisioning password.
        password: WirePassword,
    },
    /// Complete provisioning.
    FinishProvisioning {
        /// Target node.
        node_id: String,
        /// Provisioning password.
        password: WirePassword,
    },
    /// Remove the node's identity.
    Deprovision {
        /// Target node.
        node_id: String,
        /// Provisioning password.
        password: WirePassword,
    },
    /// New key pair and CSR.
    CreateKey {
        /// Target node.
        node_id: String,
        /// Cert type.
        cert_type: String,
        /// CSR subject (CN); the node id when empty.
        subject: String,
        /// Provisioning password.
        password: WirePassword,
    },
    /// Store a signed chain.
    ApplyCert {
        /// Target node.
        node_id: String,
        /// Cert type.
        cert_type: String,
        /// PEM chain, leaf first.
        pem: String,
    },
    /// Register a service instance with its permissions; returns its secret.
    RegisterInstance {
        /// The instance.
        instance: InstanceIdent,
        /// Functional server → function → permissions.
        permissions: Permissions,
    },
    /// Forget an instance; its secret stops validating.
    UnregisterInstance {
        /// The instance.
        instance: InstanceIdent,
    },
}

/// Answers of the protected endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProtectedResponse {
    /// The operation succeeded and returns nothing.
    Done,
    /// GetCertTypes.
    CertTypes(Vec<String>),
    /// CreateKey: the PEM CSR.
    Csr(String),
    /// ApplyCert.
    Cert(CertInfo),
    /// RegisterInstance: the instance's secret.
    Secret(WireSecret),
    /// The node's state after a state-changing operation.
    State(NodeState),
}

/// Events pushed on the public channel after a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IamEvent {
    /// The current certificate of a type changed.
    CertChanged(CertInfo),
    /// A node event.
    Node(NodeEvent),
}

/// Messages of the node registration stream (secondary ⇄ main).
///
/// The stream is the secondary's IAM link to the main node. `Register` travels as a request from the
/// secondary; `ForwardPublic` / `ForwardProtected` travel as requests from the main node down the same link,
/// each with its own correlation id, and are answered like any request on an IAM channel (an [`IamAnswer`]
/// holding [`IamResponse::Public`] / [`IamResponse::Protected`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeStreamMessage {
    /// Secondary → main: the secondary's information (first message, and on every change).
    Register(NodeInfo),
    /// Main → secondary: execute a public request locally.
    ForwardPublic(PublicRequest),
    /// Main → secondary: execute a protected request locally.
    ForwardProtected(ProtectedRequest),
    /// Not sent by this implementation: answers to forwarded requests are the answer frames of those
    /// requests. Kept so the variant numbering of the wire enum stays stable.
    PublicAnswer(Result<PublicResponse, ApiError>),
    /// Not sent by this implementation (see [`NodeStreamMessage::PublicAnswer`]).
    ProtectedAnswer(Result<ProtectedResponse, ApiError>),
}

/// The body of every request on an IAM channel (`Channel::IamOpen` on the public endpoint,
/// `Channel::IamSecure` on the protected one), encoded with `aos_transport::frame::encode_body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IamRequest {
    /// An operation of the public API.
    Public(PublicRequest),
    /// An operation of the protected API (authorised by the caller's identity, see `IamService`).
    Protected(ProtectedRequest),
    /// A message of the node registration stream.
    Stream(NodeStreamMessage),
}

/// A successful answer on an IAM channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IamResponse {
    /// The answer to a public request.
    Public(PublicResponse),
    /// The answer to a protected request.
    Protected(ProtectedResponse),
    /// A `Register` was accepted: the main node now forwards this node's requests down this link.
    Registered,
}

/// The body of every answer on an IAM channel: the typed result, so an [`ApiError`] crosses the wire with its
/// code and message. (Link-level failures, such as an undecodable request, come back as the link's own
/// `WireError` instead.)
pub type IamAnswer = Result<IamResponse, ApiError>;
