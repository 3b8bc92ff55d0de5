//! How CM and SM reach IAM: the [`IamAccess`] seam, and [`LocalIam`], its implementation over this
//! process's [`IamService`].
//!
//! The CM and the SM of the main node run in the same process as the main node's IAM and use [`LocalIam`];
//! requests naming another node are forwarded by the service's node forwarder. The networked IAM client
//! (an SM on a secondary node, through the MP bridge) implements the same trait.

use std::sync::Arc;

use aos_transport::tls::{IdentityError, PeerIdentity, Role};

use crate::api::{ApiError, ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse};
use crate::iam::service::{BoxFuture, Caller, IamService};

/// Executes IAM requests for a component (CM or SM).
pub trait IamAccess: Send + Sync + 'static {
    /// Execute a protected request (provisioning, keys, certificates, instance registration).
    fn protected(
        &self,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>>;

    /// Execute a public request (node info, certificates, GetPermissions).
    fn public(&self, request: PublicRequest) -> BoxFuture<Result<PublicResponse, ApiError>>;
}

/// [`IamAccess`] over the [`IamService`] of this process, as the component `role` of this node.
///
/// The caller is this node's own component, so it is authorised as a peer holding that role's certificate
/// would be: a CM may provision (also before the node has certificates), an SM may register instances.
#[derive(Clone)]
pub struct LocalIam {
    service: IamService,
    caller: Arc<Caller>,
}

// === impl LocalIam ===

impl LocalIam {
    /// Access `service` as component `role` of unit `unit_id` (the node is the service's node).
    pub fn new(service: IamService, unit_id: &str, role: Role) -> Result<LocalIam, IdentityError> {
        let identity = PeerIdentity::new(unit_id, service.node_id(), role)?;
        Ok(LocalIam {
            service,
            caller: Arc::new(Caller::Peer(identity)),
        })
    }

    /// The identity requests are made with.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

impl IamAccess for LocalIam {
    fn protected(
        &self,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>> {
        let (service, caller) = (self.service.clone(), self.caller.clone());
        Box::pin(async move { service.protected(&caller, request).await })
    }

    fn public(&self, request: PublicRequest) -> BoxFuture<Result<PublicResponse, ApiError>> {
        let service = self.service.clone();
        Box::pin(async move { service.public(request).await })
    }
}

/// [`IamAccess`] over the network: the requests go to another node's IAM (the main node's, from an SM on a
/// secondary through the MP bridge) and are authorised by the client's certificate there.
impl IamAccess for crate::iam::client::IamClient {
    fn protected(
        &self,
        request: ProtectedRequest,
    ) -> BoxFuture<Result<ProtectedResponse, ApiError>> {
        let client = self.clone();
        Box::pin(async move { client.protected(request).await })
    }

    fn public(&self, request: PublicRequest) -> BoxFuture<Result<PublicResponse, ApiError>> {
        let client = self.clone();
        Box::pin(async move { client.public(request).await })
    }
}

impl std::fmt::Debug for LocalIam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIam")
            .field("node", &self.service.node_id())
            .field("caller", &self.caller)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::WireSecret;
    use crate::iam::permissions::{InstanceIdent, InstanceKind};
    use crate::iam::server::testing::{password, ready, TestUnit};

    /// The networked client works wherever an `IamAccess` is expected: provisioning over the pinned public
    /// endpoint, then instance registration as an SM over the protected endpoint.
    #[actix_rt::test]
    async fn the_iam_client_is_an_iam_access() {
        let unit = TestUnit::new();
        let node = unit.node("main", true).await;
        let anonymous: Arc<dyn IamAccess> = Arc::new(ready(node.pinned_client()).await);
        let types = ProtectedRequest::GetCertTypes {
            node_id: String::new(),
        };
        assert!(matches!(
            anonymous.protected(types).await.unwrap(),
            ProtectedResponse::CertTypes(types) if types.contains(&"iam".to_owned())
        ));
        node.provision().await;
        // Provisioned: the anonymous access is refused now, typed.
        let start = ProtectedRequest::StartProvisioning {
            node_id: String::new(),
            password: password(),
        };
        let refused = anonymous.protected(start).await.unwrap_err();
        assert_eq!(
            refused.code,
            crate::api::ErrorCode::Unauthorized,
            "{refused:?}"
        );

        let sm_creds = unit.client_creds("main", Role::Sm);
        let sm: Arc<dyn IamAccess> = Arc::new(ready(node.protected_client(Some(&sm_creds))).await);
        let instance = InstanceIdent {
            item_id: "svc".into(),
            subject_id: "subject".into(),
            instance: 1,
            kind: InstanceKind::Service,
        };
        let permissions = BTreeMap::from([(
            "vis".to_owned(),
            BTreeMap::from([("get".to_owned(), "r".to_owned())]),
        )]);
        let ProtectedResponse::Secret(secret) = sm
            .protected(ProtectedRequest::RegisterInstance {
                instance: instance.clone(),
                permissions,
            })
            .await
            .unwrap()
        else {
            panic!("no secret")
        };
        let grant = sm
            .public(PublicRequest::GetPermissions {
                secret: WireSecret(secret.0.clone()),
                functional_server_id: "vis".into(),
            })
            .await
            .unwrap();
        assert!(matches!(grant, PublicResponse::Permissions(g) if g.ident == instance));
    }
}
