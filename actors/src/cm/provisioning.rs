//! The provisioning driver: what the CM does on the cloud's `StartProvisioning` and `FinishProvisioning`
//! for one node, through [`IamAccess`] (requests for a secondary node are forwarded by the main node's IAM).
//!
//! Start: StartProvisioning → GetCertTypes → CreateKey per type → the CSRs go to the cloud.
//! Finish: ApplyCert per signed chain, `iam` last (applying it changes the TLS identity of the node's IAM) →
//! FinishProvisioning.

use crate::api::cloud::{CmFailure, CmStep, CsrRequest, IssuedCert, NodeStatus, UnitStatus};
use crate::api::{
    ApiError, ErrorCode, ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse,
    WirePassword,
};
use crate::iam::cert_module::CertInfo;

use super::iam_access::IamAccess;
use super::renewal::{create_csrs, install};

/// The unit as IAM knows it: its id, the main node and every reachable node with its state, the main node
/// first. A node that is not registered at this moment is left out (the cloud sees it at its next query).
pub async fn unit_status(iam: &dyn IamAccess) -> Result<UnitStatus, CmFailure> {
    let fail = |error| CmFailure {
        node_id: String::new(),
        step: CmStep::UnitStatus,
        error,
    };
    let (main_node_id, unit_id) = match iam.public(PublicRequest::GetSystemInfo).await {
        Ok(PublicResponse::SystemInfo { node_id, unit_id }) => (node_id, unit_id),
        Ok(other) => return Err(fail(unexpected("GetSystemInfo", &other))),
        Err(e) => return Err(fail(e)),
    };
    let ids = match iam.public(PublicRequest::GetAllNodeIds).await {
        Ok(PublicResponse::NodeIds(ids)) => ids,
        Ok(other) => return Err(fail(unexpected("GetAllNodeIds", &other))),
        Err(e) => return Err(fail(e)),
    };
    let mut nodes = Vec::with_capacity(ids.len());
    for node_id in ids {
        let request = PublicRequest::GetNodeInfo {
            node_id: node_id.clone(),
        };
        match iam.public(request).await {
            Ok(PublicResponse::NodeInfo(info)) => nodes.push(NodeStatus {
                node_id,
                state: info.state,
            }),
            Ok(other) => return Err(fail(unexpected("GetNodeInfo", &other))),
            // A secondary that is registering again at this moment (its MP link handshaking anew, a
            // restart) is left out of this answer rather than failing the whole unit's status.
            Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::Unavailable) => {
                tracing::info!(node = %node_id, "unit status: node not reachable now ({e}); left out");
            }
            Err(e) => return Err(fail(e)),
        }
    }
    nodes.sort_by_key(|n| n.node_id != main_node_id);
    Ok(UnitStatus {
        unit_id,
        main_node_id,
        nodes,
    })
}

/// Start provisioning `node_id` and create a key for each of its cert types; returns one CSR per type.
pub async fn start(
    iam: &dyn IamAccess,
    node_id: &str,
    password: &WirePassword,
) -> Result<Vec<CsrRequest>, CmFailure> {
    let fail = |step: CmStep| {
        let node_id = node_id.to_owned();
        move |error| CmFailure {
            node_id,
            step,
            error,
        }
    };
    let request = ProtectedRequest::StartProvisioning {
        node_id: node_id.to_owned(),
        password: password.clone(),
    };
    match iam.protected(request).await {
        Ok(ProtectedResponse::State(state)) => {
            tracing::info!(node = node_id, %state, "provisioning started")
        }
        Ok(other) => {
            return Err(fail(CmStep::StartProvisioning)(unexpected(
                "StartProvisioning",
                &other,
            )))
        }
        Err(e) => return Err(fail(CmStep::StartProvisioning)(e)),
    }
    let request = ProtectedRequest::GetCertTypes {
        node_id: node_id.to_owned(),
    };
    let cert_types = match iam.protected(request).await {
        Ok(ProtectedResponse::CertTypes(types)) => types,
        Ok(other) => {
            return Err(fail(CmStep::GetCertTypes)(unexpected(
                "GetCertTypes",
                &other,
            )))
        }
        Err(e) => return Err(fail(CmStep::GetCertTypes)(e)),
    };
    create_csrs(iam, node_id, &cert_types, password).await
}

/// Apply the signed chains of `node_id` (`iam` last) and finish its provisioning; returns the applied
/// certificates in the order they were applied.
pub async fn finish(
    iam: &dyn IamAccess,
    node_id: &str,
    password: &WirePassword,
    certs: Vec<IssuedCert>,
) -> Result<Vec<CertInfo>, CmFailure> {
    let applied = install(iam, node_id, certs).await?;
    let request = ProtectedRequest::FinishProvisioning {
        node_id: node_id.to_owned(),
        password: password.clone(),
    };
    let failure = |error| CmFailure {
        node_id: node_id.to_owned(),
        step: CmStep::FinishProvisioning,
        error,
    };
    match iam.protected(request).await {
        Ok(ProtectedResponse::State(state)) => {
            tracing::info!(node = node_id, %state, certs = applied.len(), "provisioning finished");
            Ok(applied)
        }
        Ok(other) => Err(failure(unexpected("FinishProvisioning", &other))),
        Err(e) => Err(failure(e)),
    }
}

/// An IAM answer of the wrong kind (a bug on one side; reported, never acted on).
pub(super) fn unexpected(what: &str, answer: &impl std::fmt::Debug) -> ApiError {
    let mut shown = format!("{answer:?}");
    shown.truncate(120);
    ApiError::new(
        ErrorCode::Internal,
        format!("IAM answered {what} with {shown}"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::api::NodeInfo;
    use crate::iam::provisioner::NodeState;
    use crate::iam::service::BoxFuture;

    /// IAM of a unit with nodes `main`, `away` (re-registering: Unavailable) and `gone` (NotFound), and
    /// `broken` (Internal) when asked.
    struct Unit {
        broken: bool,
    }

    impl IamAccess for Unit {
        fn protected(&self, _: ProtectedRequest) -> BoxFuture<Result<ProtectedResponse, ApiError>> {
            Box::pin(async { Err(ApiError::new(ErrorCode::Internal, "not used")) })
        }

        fn public(&self, request: PublicRequest) -> BoxFuture<Result<PublicResponse, ApiError>> {
            let broken = self.broken;
            Box::pin(async move {
                match request {
                    PublicRequest::GetSystemInfo => Ok(PublicResponse::SystemInfo {
                        node_id: "main".into(),
                        unit_id: "unit".into(),
                    }),
                    PublicRequest::GetAllNodeIds => {
                        let mut ids = vec!["away".to_owned(), "main".into(), "gone".into()];
                        if broken {
                            ids.push("broken".into());
                        }
                        Ok(PublicResponse::NodeIds(ids))
                    }
                    PublicRequest::GetNodeInfo { node_id } => match node_id.as_str() {
                        "away" => Err(ApiError::new(ErrorCode::Unavailable, "re-registering")),
                        "gone" => Err(ApiError::new(ErrorCode::NotFound, "unknown node")),
                        "broken" => Err(ApiError::new(ErrorCode::Internal, "boom")),
                        _ => Ok(PublicResponse::NodeInfo(NodeInfo {
                            node_id,
                            unit_id: "unit".into(),
                            name: "main".into(),
                            node_type: String::new(),
                            is_main: true,
                            state: NodeState::Provisioned,
                            attrs: BTreeMap::new(),
                        })),
                    },
                    _ => Err(ApiError::new(ErrorCode::Internal, "not used")),
                }
            })
        }
    }

    #[actix_rt::test]
    async fn unreachable_nodes_are_left_out_and_other_failures_fail() {
        let status = unit_status(&Unit { broken: false }).await.unwrap();
        let ids: Vec<_> = status.nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["main"]);
        let failure = unit_status(&Unit { broken: true }).await.unwrap_err();
        assert_eq!(failure.error.code, ErrorCode::Internal);
    }
}
