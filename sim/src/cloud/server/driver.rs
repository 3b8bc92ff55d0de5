//! What the cloud drives on a unit through its CM: provisioning and renewal, each CSR signed by the CA.

use aos_actors::api::cloud::{
    CloudAnswer, CloudRequest, CloudResult, CsrRequest, IssuedCert, UnitStatus, CLOUD_CHANNEL,
};
use aos_actors::api::WirePassword;
use aos_actors::iam::cert_module::CertInfo;
use aos_actors::iam::provisioner::{NodeState, Password};
use aos_transport::frame::{decode_body, encode_body};

use super::actor::{CurrentCm, KnowNodes};
use super::error::DriveError;
use super::CloudServer;
use crate::cloud::{CloudError, SignRequest};

/// One node the cloud provisioned, and its certificates in the order the CM applied them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedNode {
    /// The node.
    pub node_id: String,
    /// The applied certificates (`iam` last).
    pub certs: Vec<CertInfo>,
}

// === impl CloudServer (drivers) ===

impl CloudServer {
    /// Send `request` to the newest CM connection and wait for its answer.
    async fn call(&self, request: &CloudRequest) -> Result<CloudAnswer, DriveError> {
        let unit = || DriveError::NoCm(self.ca.unit_id().to_owned());
        let link = self
            .actor
            .send(CurrentCm)
            .await
            .map_err(|_| unit())?
            .ok_or_else(unit)?;
        let body = encode_body(request, usize::MAX)?;
        let answer = link
            .request_within(CLOUD_CHANNEL, body, self.request_timeout)
            .await?;
        let result: CloudResult = decode_body(&answer, answer.len())?;
        result.map_err(|failure| {
            self.count(|s| s.cm_failures += 1);
            DriveError::Cm(failure)
        })
    }

    fn count(&self, f: impl FnOnce(&mut super::CloudServerStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The unit as its CM reports it (the cloud also learns its nodes from this).
    pub async fn unit_status(&self) -> Result<UnitStatus, DriveError> {
        match self.call(&CloudRequest::GetUnitStatus).await? {
            CloudAnswer::UnitStatus(status) => {
                let nodes = status.nodes.iter().map(|n| n.node_id.clone()).collect();
                self.actor.do_send(KnowNodes(nodes));
                Ok(status)
            }
            other => Err(unexpected("GetUnitStatus", &other)),
        }
    }

    /// Provision `nodes` of the unit (every node not yet provisioned when `None`, the main node first) with
    /// `password`: for each, the CM starts provisioning and sends a CSR per cert type, the CA signs each (it
    /// checks the CSR's node and role), the CM applies them (`iam` last) and finishes. Stops at the first
    /// failure: a CA refusal leaves that node provisioning (start again to retry).
    pub async fn provision(
        &self,
        password: &Password,
        nodes: Option<&[&str]>,
    ) -> Result<Vec<ProvisionedNode>, DriveError> {
        let status = self.unit_status().await?;
        let targets: Vec<String> = match nodes {
            Some(nodes) => {
                for node in nodes {
                    if !status.nodes.iter().any(|n| n.node_id == *node) {
                        return Err(DriveError::UnknownNode((*node).to_owned()));
                    }
                }
                nodes.iter().map(|n| (*n).to_owned()).collect()
            }
            None => status
                .nodes
                .iter()
                .filter(|n| !matches!(n.state, NodeState::Provisioned | NodeState::Paused))
                .map(|n| n.node_id.clone())
                .collect(),
        };
        let password = WirePassword(password.clone());
        let mut done = Vec::with_capacity(targets.len());
        for node_id in targets {
            let start = CloudRequest::StartProvisioning {
                node_id: node_id.clone(),
                password: password.clone(),
            };
            let csrs = match self.call(&start).await? {
                CloudAnswer::Csrs(csrs) => csrs,
                other => return Err(unexpected("StartProvisioning", &other)),
            };
            let certs = self.sign_all(&node_id, csrs)?;
            let finish = CloudRequest::FinishProvisioning {
                node_id: node_id.clone(),
                password: password.clone(),
                certs,
            };
            let certs = match self.call(&finish).await? {
                CloudAnswer::Installed(certs) => certs,
                other => return Err(unexpected("FinishProvisioning", &other)),
            };
            tracing::info!(node = %node_id, certs = certs.len(), "node provisioned by the cloud");
            self.count(|s| s.nodes_provisioned += 1);
            done.push(ProvisionedNode { node_id, certs });
        }
        Ok(done)
    }

    /// Renew `cert_types` of `node_id`: the CM makes new keys and CSRs, the CA signs them, the CM applies
    /// them (`iam` last). Returns the applied certificates in that order.
    pub async fn renew(
        &self,
        node_id: &str,
        cert_types: &[&str],
        password: &Password,
    ) -> Result<Vec<CertInfo>, DriveError> {
        let renew = CloudRequest::RenewCerts {
            node_id: node_id.to_owned(),
            cert_types: cert_types.iter().map(|t| (*t).to_owned()).collect(),
            password: WirePassword(password.clone()),
        };
        let csrs = match self.call(&renew).await? {
            CloudAnswer::Csrs(csrs) => csrs,
            other => return Err(unexpected("RenewCerts", &other)),
        };
        let certs = self.sign_all(node_id, csrs)?;
        let install = CloudRequest::InstallCerts {
            node_id: node_id.to_owned(),
            certs,
        };
        match self.call(&install).await? {
            CloudAnswer::Installed(certs) => {
                self.count(|s| s.certs_renewed += certs.len() as u64);
                Ok(certs)
            }
            other => Err(unexpected("InstallCerts", &other)),
        }
    }

    /// Sign every CSR of `node_id` (the node the cloud asked, whatever the CM's answer says).
    fn sign_all(
        &self,
        node_id: &str,
        csrs: Vec<CsrRequest>,
    ) -> Result<Vec<IssuedCert>, DriveError> {
        let mut certs = Vec::with_capacity(csrs.len());
        for csr in csrs {
            let mut request = SignRequest::new(node_id, &csr.cert_type, csr.csr_pem);
            request.lifetime = self.lifetime;
            match self.ca.sign(&request) {
                Ok(chain) => certs.push(IssuedCert {
                    cert_type: csr.cert_type,
                    chain_pem: chain.chain_pem,
                }),
                Err(CloudError::Refused(refusal)) => {
                    return Err(DriveError::Refused {
                        node_id: node_id.to_owned(),
                        cert_type: csr.cert_type,
                        refusal,
                    })
                }
                Err(err) => return Err(DriveError::Ca(err)),
            }
        }
        Ok(certs)
    }
}

fn unexpected(what: &str, answer: &CloudAnswer) -> DriveError {
    DriveError::Protocol(format!("the CM answered {what} with {answer:?}"))
}
