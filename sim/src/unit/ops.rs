//! What the simulator does to a running unit: provision, deploy, renew, deprovision, pause and resume
//! through the cloud and the main node; crash, cut and token faults; and a functional server's view.

use std::sync::Arc;
use std::time::Duration;

use aos_actors::api::sm::{InstanceSpec, InstanceState, InstanceStatus, RunSpec};
use aos_actors::api::{ProtectedRequest, ProtectedResponse, WirePassword};
use aos_actors::cm::{IamAccess, LocalIam, SmController};
use aos_actors::iam::client::{client_tls, IamClient, IamServerAuth, PermissionChecker};
use aos_actors::iam::permissions::{InstanceIdent, InstanceKind, Permissions};
use aos_actors::iam::provisioner::NodeState;
use aos_actors::iam::server::EndpointKind;
use aos_actors::net::{LinkConfig, TcpDialer};
use aos_transport::tls::{Policy, Role, TlsOptions};
use futures_util::StreamExt;

use super::{SimUnit, UnitError, UNIT_ID};
use crate::tokens::{TokenContents, TokenFault};

/// Longest wait for one operation of the unit (reached only when something hangs).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often the cloud tries to provision a node before it reports the failure.
const PROVISION_ATTEMPTS: u32 = 10;

/// Await `fut` for at most `limit`, else an error naming `node` and `what`.
pub(crate) async fn within<T>(
    node: &str,
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, UnitError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| UnitError::op(node, format!("{what}: no answer within {limit:?}")))
}

/// The ident of a simulated service instance.
pub fn service_ident(service: &str) -> InstanceIdent {
    InstanceIdent {
        item_id: service.to_owned(),
        subject_id: "sim".to_owned(),
        instance: 0,
        kind: InstanceKind::Service,
    }
}

/// The spec of a simulated service with `grant` on functional server `server`.
pub fn service_spec(service: &str, server: &str, grant: &[(String, String)]) -> InstanceSpec {
    let permissions: Permissions = [(server.to_owned(), grant.iter().cloned().collect())]
        .into_iter()
        .collect();
    InstanceSpec {
        ident: service_ident(service),
        permissions,
        run: RunSpec::Simulated,
    }
}

// === impl SimUnit (operations) ===

impl SimUnit {
    fn name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// The main node's IAM as its CM sees it (requests for secondaries are forwarded over their links).
    pub fn cm_iam(&self) -> Result<LocalIam, UnitError> {
        let main = &self.nodes[0];
        let service = main
            .with_node(|n| n.iam().service.clone())
            .ok_or_else(|| UnitError::op(&main.name, "the main node is down"))?;
        LocalIam::new(service, UNIT_ID, Role::Cm).map_err(|e| UnitError::op(&main.name, e))
    }

    /// The CM's SM controller on the main node.
    pub fn sm_controller(&self) -> Result<SmController, UnitError> {
        let main = &self.nodes[0];
        main.with_node(|n| n.cm().and_then(|cm| cm.sm_controller()).cloned())
            .flatten()
            .ok_or_else(|| UnitError::op(&main.name, "the main node (and its CM) is down"))
    }

    /// Wait until the cloud's view of the unit lists every node of `indices`.
    pub async fn wait_registered(&self, indices: &[usize]) -> Result<(), UnitError> {
        let want: Vec<&str> = indices.iter().map(|i| self.name(*i)).collect();
        within(
            "cloud",
            "the nodes registering with the main node",
            PATIENCE,
            async {
                loop {
                    if let Ok(status) = self.cloud.unit_status().await {
                        if want
                            .iter()
                            .all(|w| status.nodes.iter().any(|n| n.node_id == *w))
                        {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        )
        .await
    }

    /// `nodes` in the order the cloud sees them registered with the main node, each as soon as it is, so
    /// provisioning need not wait for the last one (after the main node's provisioning every secondary
    /// registers again). One poller for all, asked only when the consumer wants another node. A node is
    /// given up, with the error, only when a status taken after [`PATIENCE`] still lacks it, or when the
    /// cloud has answered no status for a further [`PATIENCE`] (it fails while any node re-registers).
    fn registered(
        &self,
        nodes: Vec<usize>,
    ) -> impl futures_util::Stream<Item = (usize, Option<UnitError>)> + '_ {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let ready = std::collections::VecDeque::new();
        futures_util::stream::unfold((nodes, ready), move |(mut pending, mut ready)| async move {
            loop {
                if let Some(i) = ready.pop_front() {
                    return Some(((i, None), (pending, ready)));
                }
                if pending.is_empty() {
                    return None;
                }
                let fresh = match self.cloud.unit_status().await {
                    Ok(status) => {
                        pending.retain(|i| {
                            let seen = status.nodes.iter().any(|n| n.node_id == self.name(*i));
                            if seen {
                                ready.push_back(*i);
                            }
                            !seen
                        });
                        true
                    }
                    Err(_) => false,
                };
                if !ready.is_empty() || pending.is_empty() {
                    continue;
                }
                let now = tokio::time::Instant::now();
                if (fresh && now >= deadline) || now >= deadline + PATIENCE {
                    let i = pending.remove(0);
                    let err = UnitError::op(
                        self.name(i),
                        format!("not registered with the main node within {PATIENCE:?}"),
                    );
                    return Some(((i, Some(err)), (pending, ready)));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    /// Provision `indices` through the cloud: the main node first (the secondaries' MP links need its
    /// certificate), then each secondary once the cloud sees it registered, `parallel` at a time. Returns
    /// each node's outcome.
    pub async fn provision(
        &self,
        indices: &[usize],
        parallel: usize,
    ) -> Vec<(usize, Result<(), UnitError>)> {
        let mut out = Vec::new();
        let password = self.password();
        if indices.contains(&0) && !self.nodes[0].is_ready() {
            let result = self.provision_one(0, &password).await;
            let ok = result.is_ok();
            out.push((0, result));
            if !ok {
                return out;
            }
        }
        let rest: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| *i != 0 && !self.nodes[*i].is_ready())
            .collect();
        if rest.is_empty() {
            return out;
        }
        let password = &password;
        let results: Vec<_> = self
            .registered(rest)
            .map(|(i, unregistered)| async move {
                match unregistered {
                    Some(err) => (i, Err(err)),
                    None => (i, self.provision_one(i, password).await),
                }
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        out.extend(results);
        out
    }

    async fn provision_one(
        &self,
        index: usize,
        password: &aos_actors::iam::provisioner::Password,
    ) -> Result<(), UnitError> {
        let name = self.name(index).to_owned();
        if index == 0 {
            self.wait_registered(&[0]).await?;
        }
        // The cloud retries what fails on the way, as a real one would: the CM's unit status fails while
        // any node re-registers (each applied certificate reconnects its links), which is normal churn
        // while many nodes provision at once.
        let target = [name.as_str()];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let provision = self.cloud.provision(password, Some(&target));
            match within(&name, "provisioning", PATIENCE, provision).await? {
                Ok(_) => break,
                // A forwarded FinishProvisioning whose answer was lost to a reconnect is sent again and
                // refused, though the node is provisioned: what counts is the state the node reached.
                Err(e)
                    if self.nodes[index].status().map(|(state, _)| state)
                        == Some(NodeState::Provisioned) =>
                {
                    tracing::info!(node = %name, "provisioned, though the cloud was told: {e}");
                    break;
                }
                // Only a node that has not started provisioning can be asked again: one left half-way
                // refuses StartProvisioning until it is deprovisioned.
                Err(e)
                    if attempt < PROVISION_ATTEMPTS
                        && self.nodes[index].status().map(|(state, _)| state)
                            == Some(NodeState::Unprovisioned) =>
                {
                    tracing::info!(node = %name, attempt, "provisioning failed, retrying: {e}");
                    tokio::time::sleep(
                        (Duration::from_millis(250) * attempt).min(Duration::from_secs(2)),
                    )
                    .await;
                }
                Err(e) => {
                    return Err(UnitError::op(
                        &name,
                        format!("after {attempt} attempts: {e}"),
                    ));
                }
            }
        }
        let ready = within(
            &name,
            "its certificate taking effect",
            PATIENCE,
            self.nodes[index].wait_ready(),
        )
        .await?;
        if !ready {
            return Err(UnitError::op(&name, "went down while provisioning"));
        }
        Ok(())
    }

    /// Make `specs` the instances of node `index` and wait until its SM runs them all (an instance that
    /// failed to start is retried by the SM at its next reconciliation).
    pub async fn deploy(
        &self,
        index: usize,
        specs: Vec<InstanceSpec>,
    ) -> Result<Vec<InstanceStatus>, UnitError> {
        let name = self.name(index).to_owned();
        let controller = self.sm_controller()?;
        within(&name, "its SM running the instances", PATIENCE, async {
            loop {
                let last = match controller.set_desired(&name, specs.clone()).await {
                    Ok(statuses)
                        if statuses.len() == specs.len()
                            && statuses.iter().all(|s| s.state == InstanceState::Running) =>
                    {
                        return Ok(statuses)
                    }
                    Ok(statuses) => {
                        let running = statuses
                            .iter()
                            .filter(|s| s.state == InstanceState::Running);
                        let failed = statuses.iter().find_map(|s| match &s.state {
                            InstanceState::Failed(why) => Some(why.clone()),
                            _ => None,
                        });
                        format!(
                            "{} of {} running{}",
                            running.count(),
                            specs.len(),
                            failed.map_or(String::new(), |why| format!(", last failure: {why}"))
                        )
                    }
                    Err(e) => e.to_string(),
                };
                if !self.nodes[index].is_up() {
                    return Err(UnitError::op(&name, format!("went down ({last})")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?
    }

    /// The cloud renews every certificate of node `index` (`iam` last).
    pub async fn renew(&self, index: usize) -> Result<usize, UnitError> {
        let node = &self.nodes[index];
        let types: Vec<&str> = node.cert_types.iter().map(String::as_str).collect();
        let renewed = within(
            &node.name,
            "renewal",
            PATIENCE,
            self.cloud.renew(&node.name, &types, &self.password()),
        )
        .await?
        .map_err(|e| UnitError::op(&node.name, e))?;
        Ok(renewed.len())
    }

    async fn protected(
        &self,
        index: usize,
        request: ProtectedRequest,
    ) -> Result<ProtectedResponse, UnitError> {
        let name = self.name(index);
        let iam = self.cm_iam()?;
        within(
            name,
            "the main node's answer",
            PATIENCE,
            iam.protected(request),
        )
        .await?
        .map_err(|e| UnitError::op(name, e))
    }

    /// Deprovision secondary `index` through the main node.
    pub async fn deprovision(&self, index: usize) -> Result<(), UnitError> {
        let request = ProtectedRequest::Deprovision {
            node_id: self.name(index).to_owned(),
            password: WirePassword(self.password()),
        };
        self.protected(index, request).await.map(|_| ())
    }

    /// Pause secondary `index`.
    pub async fn pause(&self, index: usize) -> Result<(), UnitError> {
        let node_id = self.name(index).to_owned();
        self.protected(index, ProtectedRequest::PauseNode { node_id })
            .await
            .map(|_| ())
    }

    /// Resume secondary `index`.
    pub async fn resume(&self, index: usize) -> Result<(), UnitError> {
        let node_id = self.name(index).to_owned();
        self.protected(index, ProtectedRequest::ResumeNode { node_id })
            .await
            .map(|_| ())
    }

    /// One message the main node forwards to secondary `index` and back (its cert types).
    pub async fn message(&self, index: usize, timeout: Duration) -> Result<(), UnitError> {
        let node_id = self.name(index).to_owned();
        let iam = self.cm_iam()?;
        match within(
            &node_id,
            "a forwarded message",
            timeout,
            iam.protected(ProtectedRequest::GetCertTypes {
                node_id: node_id.clone(),
            }),
        )
        .await?
        {
            Ok(ProtectedResponse::CertTypes(_)) => Ok(()),
            Ok(other) => Err(UnitError::op(
                &node_id,
                format!("unexpected answer {other:?}"),
            )),
            Err(e) => Err(UnitError::op(&node_id, e)),
        }
    }

    /// A functional server's permission checker on the main node's public endpoint, verifying the main
    /// node's CA-issued `iam` certificate. It reconnects by itself (the port survives restarts) as fast as
    /// the nodes do, and gives up on a request after 2 s.
    pub fn checker(&self) -> Result<PermissionChecker, UnitError> {
        let main = &self.nodes[0];
        let auth = IamServerAuth::Identity {
            roots: self.roots.clone(),
            policy: Policy::roles([Role::Iam])
                .with_unit(UNIT_ID)
                .with_node(main.name.clone()),
        };
        let tls = client_tls(auth, None, &TlsOptions::default())
            .map_err(|e| UnitError::op(&main.name, e))?;
        let client = IamClient::connect(
            &self.pool,
            Arc::new(TcpDialer::new(main.config.iam.public_listen)),
            tls,
            EndpointKind::Public,
            LinkConfig {
                // A functional server answers its callers in time or not at all.
                request_timeout: Duration::from_secs(2),
                ..LinkConfig::from(&main.config.transport)
            },
        )
        .map_err(|e| UnitError::op(&main.name, e))?;
        Ok(PermissionChecker::new(client))
    }

    /// Crash node `index`: stop all its actors at once.
    pub async fn crash(&self, index: usize) {
        self.nodes[index].stop().await;
    }

    /// Start node `index` again from its files and token.
    pub async fn restart(&self, index: usize) -> Result<(), UnitError> {
        let node = &self.nodes[index];
        let name = node.name.clone();
        node.start().await.map_err(|e| UnitError::node(&name, e))
    }

    /// Cut secondary `index`'s MP link.
    pub fn cut(&self, index: usize) {
        if let Some(proxy) = &self.nodes[index].proxy {
            proxy.cut();
        }
    }

    /// Restore secondary `index`'s MP link.
    pub fn restore(&self, index: usize) {
        if let Some(proxy) = &self.nodes[index].proxy {
            proxy.restore();
        }
    }

    /// Make node `index`'s token fail (it must be provisioned: the fault needs its PIN).
    pub fn fail_token(&self, index: usize) -> Result<TokenFault, UnitError> {
        let node = &self.nodes[index];
        let pin = node
            .user_pin()
            .ok_or_else(|| UnitError::op(&node.name, "no token PIN yet (not provisioned)"))?;
        Ok(self.tokens.fail(&node.name, pin)?)
    }

    /// Heal a token fault.
    pub fn heal_token(&self, fault: TokenFault) -> Result<(), UnitError> {
        Ok(self.tokens.heal(fault)?)
    }

    /// What node `index`'s token holds under its cert types.
    pub fn token_contents(&self, index: usize) -> Result<TokenContents, UnitError> {
        let node = &self.nodes[index];
        let types: Vec<String> = node
            .config
            .cert_modules
            .iter()
            .map(|m| m.id.clone())
            .collect();
        Ok(self.tokens.contents(&node.name, node.user_pin(), &types)?)
    }
}
