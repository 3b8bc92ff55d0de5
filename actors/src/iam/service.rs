//! `IamService`: executes IAM API requests on this node (or forwards them to another node), whatever
//! endpoint or link they arrived on. A cheap `Clone` handle, usable from any arbiter.
//!
//! Authorisation of protected operations by caller:
//!
//! | operation | allowed for |
//! |---|---|
//! | provisioning (start, finish, deprovision, create key, apply cert, cert types, pause, resume) | role `cm` or `iam`, or a forwarded request (the main node, authenticated as `mp`), or — while the node is not provisioned — an anonymous caller on the provisioning endpoint (the password guards these) |
//! | register / unregister instance | role `sm`, or a forwarded request |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::Addr;
use aos_transport::tls::{PeerIdentity, Role};

use super::cert_handler::{CertHandler, ForType, GetCertTypes};
use super::cert_module;
use super::permissions::{
    PermissionHandler, PermissionReader, RegisterInstance, UnregisterInstance,
};
use super::provisioner::{
    CheckPassword, Deprovision, FinishProvisioning, GetNodeState, NodeState, PauseNode,
    Provisioner, ResumeNode, StartProvisioning,
};
use crate::api::{
    ApiError, ErrorCode, NodeInfo, ProtectedRequest, ProtectedResponse, PublicRequest,
    PublicResponse, WireSecret,
};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No client certificate (public endpoint, provisioning endpoint).
    Anonymous,
    /// An mTLS peer.
    Peer(PeerIdentity),
    /// The main node, forwarding over the authenticated node link.
    Forwarded,
}

impl Caller {
    fn has_role(&self, roles: &[Role]) -> bool {
        match self {
            Caller::Peer(p) => roles.contains(&p.role),
            Caller::Forwarded => true,
            Caller::Anonymous => false,
        }
    }
}

/// Reaches other nodes of the unit (the main node's node controller implements it).
pub trait NodeForwarder: Send + Sync + 'static {
    /// Execute a public request on `node_id`.
    fn public(
        &self,
        node_id: String,
        request: PublicRequest,
    ) -> BoxFuture<Result<PublicResponse, ApiError>>;
    /// Execute a protected request on `node_id`.
    fn protected(
        &self,
        node_id: String,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>>;
    /// Every known node other than this one.
    fn nodes(&self) -> BoxFuture<Vec<NodeInfo>>;
    /// The known node `node_id` (`GetNodeInfo` asks once per node, so a unit's status must not list the
    /// whole unit per node).
    fn node(&self, node_id: String) -> BoxFuture<Option<NodeInfo>>;
}

/// The actors a service needs.
#[derive(Clone)]
pub struct IamService {
    info: NodeInfo,
    certs: Addr<CertHandler>,
    provisioner: Addr<Provisioner>,
    permissions: Option<(Addr<PermissionHandler>, PermissionReader)>,
    forwarder: Option<Arc<dyn NodeForwarder>>,
}

fn mailbox(what: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("{what} is not running"))
}

fn unauthorized(caller: &Caller, what: &str) -> ApiError {
    let who = match caller {
        Caller::Peer(p) => format!("{} of node {}", p.role, p.node),
        Caller::Anonymous => "an anonymous caller".to_owned(),
        Caller::Forwarded => "a forwarded request".to_owned(),
    };
    ApiError::new(ErrorCode::Unauthorized, format!("{who} may not {what}"))
}

// === impl IamService ===

impl IamService {
    /// A service for this node. `info.state` is refreshed from the provisioner on every query.
    pub fn new(
        info: NodeInfo,
        certs: Addr<CertHandler>,
        provisioner: Addr<Provisioner>,
        permissions: Option<(Addr<PermissionHandler>, PermissionReader)>,
    ) -> Self {
        IamService {
            info,
            certs,
            provisioner,
            permissions,
            forwarder: None,
        }
    }

    /// Forward requests for other nodes through `forwarder` (main node).
    pub fn with_forwarder(mut self, forwarder: Arc<dyn NodeForwarder>) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.info.node_id
    }

    /// This node's information with its current state.
    pub async fn node_info(&self) -> NodeInfo {
        let mut info = self.info.clone();
        if let Ok(state) = self.provisioner.send(GetNodeState).await {
            info.state = state;
        }
        info
    }

    fn is_local(&self, node_id: &str) -> bool {
        node_id.is_empty() || node_id == self.info.node_id
    }

    fn forwarder(&self, node_id: &str) -> Result<Arc<dyn NodeForwarder>, ApiError> {
        self.forwarder
            .clone()
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("unknown node {node_id:?}")))
    }

    /// Execute a public request.
    pub async fn public(&self, request: PublicRequest) -> Result<PublicResponse, ApiError> {
        match request {
            PublicRequest::GetSystemInfo => Ok(PublicResponse::SystemInfo {
                node_id: self.info.node_id.clone(),
                unit_id: self.info.unit_id.clone(),
            }),
            PublicRequest::GetCurrentNodeInfo => {
                Ok(PublicResponse::NodeInfo(self.node_info().await))
            }
            PublicRequest::GetCert {
                node_id,
                cert_type,
                issuer,
                serial,
            } => {
                if !self.is_local(&node_id) {
                    let forwarded = PublicRequest::GetCert {
                        node_id: node_id.clone(),
                        cert_type,
                        issuer,
                        serial,
                    };
                    return self.forwarder(&node_id)?.public(node_id, forwarded).await;
                }
                let info = self
                    .certs
                    .send(ForType::new(
                        cert_type,
                        cert_module::GetCert { issuer, serial },
                    ))
                    .await
                    .map_err(|_| mailbox("cert handler"))??;
                Ok(PublicResponse::Cert(info))
            }
            PublicRequest::GetPermissions {
                secret,
                functional_server_id,
            } => {
                let WireSecret(secret) = secret;
                let (_, reader) = self.permissions.as_ref().ok_or_else(|| {
                    ApiError::new(ErrorCode::NotFound, "permission handler is disabled")
                })?;
                let grant = reader.get(&secret, &functional_server_id);
                crate::telemetry::permission_check(grant.is_ok());
                Ok(PublicResponse::Permissions(grant?))
            }
            PublicRequest::GetAllNodeIds => {
                let mut ids = vec![self.info.node_id.clone()];
                if let Some(f) = &self.forwarder {
                    ids.extend(f.nodes().await.into_iter().map(|n| n.node_id));
                }
                Ok(PublicResponse::NodeIds(ids))
            }
            PublicRequest::GetNodeInfo { node_id } if self.is_local(&node_id) => {
                Ok(PublicResponse::NodeInfo(self.node_info().await))
            }
            PublicRequest::GetNodeInfo { node_id } => {
                let f = self.forwarder(&node_id)?;
                f.node(node_id.clone())
                    .await
                    .map(PublicResponse::NodeInfo)
                    .ok_or_else(|| {
                        ApiError::new(ErrorCode::NotFound, format!("unknown node {node_id:?}"))
                    })
            }
            PublicRequest::SubscribeCertChanged { .. } | PublicRequest::SubscribeNodeChanged => {
                Err(ApiError::new(
                    ErrorCode::InvalidArgument,
                    "subscriptions are handled by the endpoint, not the service",
                ))
            }
        }
    }

    /// Execute a protected request for `caller`.
    pub async fn protected(
        &self,
        caller: &Caller,
        request: ProtectedRequest,
    ) -> Result<ProtectedResponse, ApiError> {
        if let Some(node_id) = target_node(&request) {
            if !self.is_local(node_id) {
                self.authorize_provisioning(caller).await?;
                let node_id = node_id.to_owned();
                return self.forwarder(&node_id)?.protected(node_id, request).await;
            }
        }
        match request {
            ProtectedRequest::RegisterInstance {
                instance,
                permissions,
            } => {
                if !caller.has_role(&[Role::Sm]) {
                    return Err(unauthorized(caller, "register instances"));
                }
                let (addr, _) = self.permission_actor()?;
                let secret = addr
                    .send(RegisterInstance {
                        ident: instance,
                        permissions,
                    })
                    .await
                    .map_err(|_| mailbox("permission handler"))??;
                Ok(ProtectedResponse::Secret(WireSecret(secret)))
            }
            ProtectedRequest::UnregisterInstance { instance } => {
                if !caller.has_role(&[Role::Sm]) {
                    return Err(unauthorized(caller, "unregister instances"));
                }
                let (addr, _) = self.permission_actor()?;
                addr.send(UnregisterInstance { ident: instance })
                    .await
                    .map_err(|_| mailbox("permission handler"))??;
                Ok(ProtectedResponse::Done)
            }
            other => {
                self.authorize_provisioning(caller).await?;
                self.provisioning(other).await
            }
        }
    }

    fn permission_actor(&self) -> Result<&(Addr<PermissionHandler>, PermissionReader), ApiError> {
        self.permissions
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "permission handler is disabled"))
    }

    async fn authorize_provisioning(&self, caller: &Caller) -> Result<(), ApiError> {
        if caller.has_role(&[Role::Cm, Role::Iam]) {
            return Ok(());
        }
        if *caller == Caller::Anonymous {
            let state = self
                .provisioner
                .send(GetNodeState)
                .await
                .map_err(|_| mailbox("provisioner"))?;
            if matches!(
                state,
                NodeState::Unprovisioned | NodeState::Starting | NodeState::Provisioning
            ) {
                return Ok(());
            }
        }
        Err(unauthorized(caller, "run provisioning operations"))
    }

    async fn provisioning(&self, request: ProtectedRequest) -> Result<ProtectedResponse, ApiError> {
        let p = &self.provisioner;
        let gone = |_| mailbox("provisioner");
        let state = |r: Result<(), super::provisioner::ProvisionError>| async move {
            r?;
            let s = p
                .send(GetNodeState)
                .await
                .map_err(|_| mailbox("provisioner"))?;
            Ok::<_, ApiError>(ProtectedResponse::State(s))
        };
        match request {
            ProtectedRequest::StartProvisioning { password, .. } => {
                state(
                    p.send(StartProvisioning {
                        password: password.0,
                    })
                    .await
                    .map_err(gone)?,
                )
                .await
            }
            ProtectedRequest::FinishProvisioning { password, .. } => {
                state(
                    p.send(FinishProvisioning {
                        password: password.0,
                    })
                    .await
                    .map_err(gone)?,
                )
                .await
            }
            ProtectedRequest::Deprovision { password, .. } => {
                state(
                    p.send(Deprovision {
                        password: password.0,
                    })
                    .await
                    .map_err(gone)?,
                )
                .await
            }
            ProtectedRequest::PauseNode { .. } => {
                state(p.send(PauseNode).await.map_err(gone)?).await
            }
            ProtectedRequest::ResumeNode { .. } => {
                state(p.send(ResumeNode).await.map_err(gone)?).await
            }
            ProtectedRequest::GetCertTypes { .. } => Ok(ProtectedResponse::CertTypes(
                self.certs
                    .send(GetCertTypes)
                    .await
                    .map_err(|_| mailbox("cert handler"))?,
            )),
            ProtectedRequest::CreateKey {
                cert_type,
                subject,
                password,
                ..
            } => {
                p.send(CheckPassword {
                    password: password.0,
                })
                .await
                .map_err(gone)??;
                let csr = self
                    .certs
                    .send(ForType::new(cert_type, cert_module::CreateKey { subject }))
                    .await
                    .map_err(|_| mailbox("cert handler"))??;
                Ok(ProtectedResponse::Csr(csr))
            }
            ProtectedRequest::ApplyCert { cert_type, pem, .. } => {
                let applied = self
                    .certs
                    .send(ForType::new(
                        cert_type,
                        cert_module::ApplyCert {
                            pem: pem.into_bytes(),
                        },
                    ))
                    .await
                    .map_err(|_| mailbox("cert handler"))??;
                Ok(ProtectedResponse::Cert(applied.info))
            }
            _ => Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "unsupported request",
            )),
        }
    }
}

/// The node a protected request targets (`None` for instance operations, which are always local).
pub fn target_node(request: &ProtectedRequest) -> Option<&str> {
    match request {
        ProtectedRequest::PauseNode { node_id }
        | ProtectedRequest::ResumeNode { node_id }
        | ProtectedRequest::GetCertTypes { node_id }
        | ProtectedRequest::StartProvisioning { node_id, .. }
        | ProtectedRequest::FinishProvisioning { node_id, .. }
        | ProtectedRequest::Deprovision { node_id, .. }
        | ProtectedRequest::CreateKey { node_id, .. }
        | ProtectedRequest::ApplyCert { node_id, .. } => Some(node_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use actix::Actor;
    use aos_config::{KeyAlgorithm, PermissionLimits, ProvisioningConfig};

    use super::*;
    use crate::api::{WirePassword, WireSecret};
    use crate::iam::permissions::{InstanceIdent, InstanceKind, PermissionStore, Secret};
    use crate::iam::provisioner::{Password, ProvisionerOptions, StateFile};
    use crate::iam::test_support::{Fixture, PASSWORD};

    fn peer(role: Role) -> Caller {
        Caller::Peer(PeerIdentity::new("unit-1", "node-x", role).unwrap())
    }

    async fn service(fx: &Fixture) -> IamService {
        let modules = vec![fx.module_config("iam", KeyAlgorithm::EccP256, "aoscore")];
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(fx.clock.clone());
        let certs =
            CertHandler::new(&modules, fx.node.clone(), fx.roots.clone(), clock.clone()).start();
        let provisioner = Provisioner::new(
            StateFile::new(fx.hsm.dir().join("state")),
            ProvisioningConfig::default(),
            certs.clone(),
            clock,
            ProvisionerOptions::default(),
        )
        .unwrap()
        .start();
        let store =
            PermissionStore::open(fx.hsm.dir().join("perm.json"), PermissionLimits::default())
                .unwrap();
        let handler = PermissionHandler::new(store);
        let reader = handler.reader();
        let info = NodeInfo {
            node_id: "node-0".into(),
            unit_id: "unit-1".into(),
            name: "node-0".into(),
            node_type: "test".into(),
            is_main: true,
            state: NodeState::Unprovisioned,
            attrs: BTreeMap::new(),
        };
        IamService::new(info, certs, provisioner, Some((handler.start(), reader)))
    }

    fn pw() -> WirePassword {
        WirePassword(Password::new(PASSWORD))
    }

    #[actix_rt::test]
    async fn anonymous_provisioning_only_until_provisioned_then_roles_rule() {
        let fx = Fixture::new();
        let svc = service(&fx).await;
        let anon = Caller::Anonymous;
        let r = svc.protected(
            &anon,
            ProtectedRequest::StartProvisioning {
                node_id: String::new(),
                password: pw(),
            },
        );
        assert_eq!(
            r.await.unwrap(),
            ProtectedResponse::State(NodeState::Provisioning)
        );
        let csr = match svc
            .protected(
                &anon,
                ProtectedRequest::CreateKey {
                    node_id: "node-0".into(),
                    cert_type: "iam".into(),
                    subject: String::new(),
                    password: pw(),
                },
            )
            .await
            .unwrap()
        {
            ProtectedResponse::Csr(csr) => csr,
            other => panic!("{other:?}"),
        };
        // CreateKey with a wrong password is refused as such.
        let wrong = svc
            .protected(
                &anon,
                ProtectedRequest::CreateKey {
                    node_id: String::new(),
                    cert_type: "iam".into(),
                    subject: String::new(),
                    password: WirePassword(Password::new("wrong-password")),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(wrong.code, ErrorCode::WrongPassword);
        let pem = fx.sign(&csr, 30);
        let applied = svc.protected(
            &anon,
            ProtectedRequest::ApplyCert {
                node_id: String::new(),
                cert_type: "iam".into(),
                pem,
            },
        );
        assert!(matches!(applied.await.unwrap(), ProtectedResponse::Cert(_)));
        let done = svc.protected(
            &anon,
            ProtectedRequest::FinishProvisioning {
                node_id: String::new(),
                password: pw(),
            },
        );
        assert_eq!(
            done.await.unwrap(),
            ProtectedResponse::State(NodeState::Provisioned)
        );

        // Provisioned: anonymous callers are out, cm is in, sm may not provision.
        let types = || ProtectedRequest::GetCertTypes {
            node_id: String::new(),
        };
        assert_eq!(
            svc.protected(&anon, types()).await.unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            svc.protected(&peer(Role::Sm), types())
                .await
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            svc.protected(&peer(Role::Cm), types()).await.unwrap(),
            ProtectedResponse::CertTypes(vec!["iam".into()])
        );
        // Requests for an unknown node fail fast.
        let other = ProtectedRequest::PauseNode {
            node_id: "node-9".into(),
        };
        assert_eq!(
            svc.protected(&peer(Role::Cm), other)
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        let info = svc.public(PublicRequest::GetCurrentNodeInfo).await.unwrap();
        assert!(matches!(
            info,
            PublicResponse::NodeInfo(NodeInfo {
                state: NodeState::Provisioned,
                ..
            })
        ));
    }

    #[actix_rt::test]
    async fn instances_register_only_for_sm_and_secrets_validate_per_server() {
        let fx = Fixture::new();
        let svc = service(&fx).await;
        let instance = InstanceIdent {
            item_id: "svc".into(),
            subject_id: "subj".into(),
            instance: 0,
            kind: InstanceKind::Service,
        };
        let perms = BTreeMap::from([(
            "vis".to_owned(),
            BTreeMap::from([("get".to_owned(), "r".to_owned())]),
        )]);
        let register = || ProtectedRequest::RegisterInstance {
            instance: instance.clone(),
            permissions: perms.clone(),
        };
        assert_eq!(
            svc.protected(&peer(Role::Cm), register())
                .await
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        let ProtectedResponse::Secret(secret) =
            svc.protected(&peer(Role::Sm), register()).await.unwrap()
        else {
            panic!("no secret")
        };
        let ask = |secret: WireSecret, server: &str| PublicRequest::GetPermissions {
            secret,
            functional_server_id: server.into(),
        };
        match svc.public(ask(secret.clone(), "vis")).await.unwrap() {
            PublicResponse::Permissions(grant) => assert_eq!(grant.ident, instance),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            svc.public(ask(secret.clone(), "other"))
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        let forged = WireSecret(Secret::generate().unwrap());
        assert_eq!(
            svc.public(ask(forged, "vis")).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        svc.protected(
            &peer(Role::Sm),
            ProtectedRequest::UnregisterInstance {
                instance: instance.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            svc.public(ask(secret, "vis")).await.unwrap_err().code,
            ErrorCode::NotFound
        );
    }
}
