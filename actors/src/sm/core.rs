//! The SM's instance table: applying a desired set (register → start; stop → unregister), instances that
//! end by themselves, and reconciliation with IAM.
//!
//! **Reconciliation.** IAM keeps registrations in its permission store; if that store is lost (recreated,
//! restored from an old backup), the secrets of running instances stop validating. Each pass asks IAM
//! `GetPermissions(secret, one of the instance's functional servers)` for every instance that has a secret
//! and permissions; `NotFound` means IAM no longer knows the secret, so the SM registers the instance again
//! and restarts it with the new secret (a running process cannot be handed a new environment). Instances
//! whose registration or start failed are tried again. Instances without any permission cannot be checked
//! this way and need none: their secret grants nothing. Unregistrations that failed are retried.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::runner::{Ended, ExitReporter, InstanceRunner, RunningInstance};
use crate::api::sm::{InstanceSpec, InstanceState, InstanceStatus, StatusReport};
use crate::api::{
    ApiError, ErrorCode, ProtectedRequest, ProtectedResponse, PublicRequest, WireSecret,
};
use crate::cm::IamAccess;
use crate::iam::permissions::{InstanceIdent, Secret};

/// Extra registration attempts per pass while the link to IAM is unavailable (delays 50, 100, … 400 ms:
/// 1.8 s at most per `apply` or `reconcile`, however many instances it registers).
const REGISTER_RETRIES: u32 = 8;
const REGISTER_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// One instance the SM looks after.
struct Instance {
    spec: InstanceSpec,
    secret: Option<Secret>,
    running: Option<RunningInstance>,
    state: InstanceState,
    generation: u64,
}

/// How a change of permissions alone was handled.
enum PermissionUpdate {
    /// Registered; IAM kept the secret, so the instance keeps running.
    Kept,
    /// Registered, but IAM issued a new secret: restart with it.
    NewSecret(Secret),
    /// Not a permissions-only change of a running instance, or the registration failed: restart.
    NotApplicable,
}

/// What one reconciliation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Instances IAM had lost, registered again (and restarted if they were running).
    pub reregistered: Vec<InstanceIdent>,
    /// Instances that had failed and were tried again (whatever the outcome).
    pub retried: Vec<InstanceIdent>,
    /// Unregistrations that had failed and now succeeded.
    pub unregistered: Vec<InstanceIdent>,
}

impl Reconciled {
    /// Whether the pass changed anything.
    pub fn changed(&self) -> bool {
        !(self.reregistered.is_empty() && self.retried.is_empty())
    }
}

/// The instance table and what it needs.
pub(super) struct SmCore {
    iam: Arc<dyn IamAccess>,
    runner: Arc<dyn InstanceRunner>,
    exits: mpsc::UnboundedSender<Ended>,
    instances: BTreeMap<InstanceIdent, Instance>,
    /// Instances removed whose unregistration failed (IAM unreachable): retried at reconciliation.
    orphans: BTreeSet<InstanceIdent>,
    next_generation: u64,
    /// Revision of the last status report.
    revision: u64,
    /// Waits for an unreachable IAM left in the current pass (`apply` or `reconcile`): the first
    /// registrations of a pass wait for IAM, the rest of the pass fails at once if it stays away.
    unavailable_retries: u32,
}

// === impl SmCore ===

impl SmCore {
    pub(super) fn new(
        iam: Arc<dyn IamAccess>,
        runner: Arc<dyn InstanceRunner>,
        exits: mpsc::UnboundedSender<Ended>,
    ) -> SmCore {
        SmCore {
            iam,
            runner,
            exits,
            instances: BTreeMap::new(),
            orphans: BTreeSet::new(),
            next_generation: 1,
            revision: 0,
            unavailable_retries: REGISTER_RETRIES,
        }
    }

    /// The status of every instance, sorted by ident.
    pub(super) fn statuses(&self) -> Vec<InstanceStatus> {
        self.instances
            .iter()
            .map(|(ident, i)| InstanceStatus {
                ident: ident.clone(),
                state: i.state.clone(),
                pid: i.running.as_ref().and_then(|r| r.pid()),
            })
            .collect()
    }

    /// A status report with the next revision (reports are made under the table's lock, so a higher
    /// revision always shows a later state).
    pub(super) fn report(&mut self) -> StatusReport {
        self.revision += 1;
        StatusReport {
            revision: self.revision,
            instances: self.statuses(),
        }
    }

    /// Run exactly `desired`: stop and unregister what is no longer listed, register and start what is
    /// new, re-register and restart what changed or failed before. Instances that fail get the `Failed`
    /// state; the rest go on.
    pub(super) async fn apply(
        &mut self,
        desired: Vec<InstanceSpec>,
    ) -> Result<StatusReport, ApiError> {
        self.unavailable_retries = REGISTER_RETRIES;
        let mut wanted = BTreeMap::new();
        for spec in desired {
            if wanted.contains_key(&spec.ident) {
                return Err(ApiError::new(
                    ErrorCode::InvalidArgument,
                    format!("instance {} is listed twice", spec.ident),
                ));
            }
            wanted.insert(spec.ident.clone(), spec);
        }
        let gone: Vec<InstanceIdent> = self
            .instances
            .keys()
            .filter(|ident| !wanted.contains_key(*ident))
            .cloned()
            .collect();
        for ident in gone {
            self.remove(&ident).await;
        }
        for (ident, spec) in wanted {
            let keep = self
                .instances
                .get(&ident)
                .is_some_and(|i| i.spec == spec && !matches!(i.state, InstanceState::Failed(_)));
            if keep {
                continue;
            }
            let secret = match self.update_permissions(&spec).await {
                PermissionUpdate::Kept => continue,
                PermissionUpdate::NewSecret(secret) => Some(secret),
                PermissionUpdate::NotApplicable => None,
            };
            if let Some(mut old) = self.instances.remove(&ident) {
                if let Some(running) = old.running.take() {
                    running.stop().await;
                }
            }
            self.orphans.remove(&ident);
            let instance = self.launch(spec, secret).await;
            self.instances.insert(ident, instance);
        }
        Ok(self.report())
    }

    /// A running instance whose spec differs only in its permissions: register the new permissions and keep
    /// it running when IAM keeps its secret; with a new secret (IAM restarted) it must be restarted.
    async fn update_permissions(&mut self, spec: &InstanceSpec) -> PermissionUpdate {
        let Some(current) = self.instances.get(&spec.ident) else {
            return PermissionUpdate::NotApplicable;
        };
        let only_permissions = current.spec.run == spec.run
            && current.state == InstanceState::Running
            && current.running.is_some();
        let (true, Some(held)) = (only_permissions, current.secret.clone()) else {
            return PermissionUpdate::NotApplicable;
        };
        match self.register(spec).await {
            Ok(secret) if secret == held => {
                if let Some(current) = self.instances.get_mut(&spec.ident) {
                    current.spec = spec.clone();
                }
                tracing::info!(instance = %spec.ident, "permissions updated; instance keeps running");
                PermissionUpdate::Kept
            }
            Ok(secret) => PermissionUpdate::NewSecret(secret),
            Err(err) => {
                tracing::warn!(instance = %spec.ident, "cannot register the new permissions: {err}");
                PermissionUpdate::NotApplicable
            }
        }
    }

    /// Register `spec` (unless `secret` is given) and start it.
    async fn launch(&mut self, spec: InstanceSpec, secret: Option<Secret>) -> Instance {
        let generation = self.next_generation;
        self.next_generation += 1;
        let secret = match secret {
            Some(secret) => Ok(secret),
            None => self.register(&spec).await,
        };
        let (secret, running, state) = match secret {
            Ok(secret) => {
                let exit = ExitReporter::new(spec.ident.clone(), generation, self.exits.clone());
                match self.runner.start(&spec, &secret, exit) {
                    Ok(running) => (Some(secret), Some(running), InstanceState::Running),
                    Err(err) => {
                        tracing::warn!(instance = %spec.ident, "cannot start: {err}");
                        (Some(secret), None, InstanceState::Failed(err.to_string()))
                    }
                }
            }
            Err(err) => {
                tracing::warn!(instance = %spec.ident, "cannot register with IAM: {err}");
                (
                    None,
                    None,
                    InstanceState::Failed(format!("registration: {err}")),
                )
            }
        };
        Instance {
            spec,
            secret,
            running,
            state,
            generation,
        }
    }

    async fn register(&mut self, spec: &InstanceSpec) -> Result<Secret, ApiError> {
        let request = ProtectedRequest::RegisterInstance {
            instance: spec.ident.clone(),
            permissions: spec.permissions.clone(),
        };
        // The link to IAM may be between two connections (it reconnects when a certificate is applied):
        // wait for it a little before reporting the instance failed, within the pass's budget (see
        // `unavailable_retries`). Reconciliation retries what still fails.
        let answer = loop {
            match self.iam.protected(request.clone()).await {
                Err(e) if e.code == ErrorCode::Unavailable => {
                    let left = self.unavailable_retries;
                    if left == 0 {
                        return Err(e);
                    }
                    self.unavailable_retries = left - 1;
                    let attempt = REGISTER_RETRIES - left + 1;
                    tracing::debug!(instance = %spec.ident, attempt, "IAM unreachable; registering again shortly: {e}");
                    tokio::time::sleep(REGISTER_RETRY_DELAY * attempt).await;
                }
                other => break other?,
            }
        };
        match answer {
            ProtectedResponse::Secret(WireSecret(secret)) => {
                tracing::info!(instance = %spec.ident, "registered with IAM");
                Ok(secret)
            }
            other => Err(ApiError::new(
                ErrorCode::Internal,
                format!("IAM answered RegisterInstance with {other:?}"),
            )),
        }
    }

    async fn unregister(&self, ident: &InstanceIdent) -> Result<(), ApiError> {
        let request = ProtectedRequest::UnregisterInstance {
            instance: ident.clone(),
        };
        match self.iam.protected(request).await {
            Ok(_) => {
                tracing::info!(instance = %ident, "unregistered from IAM");
                Ok(())
            }
            // Not registered (any more): the goal is reached.
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stop an instance and unregister it (its secret stops validating).
    async fn remove(&mut self, ident: &InstanceIdent) {
        let Some(mut instance) = self.instances.remove(ident) else {
            return;
        };
        if let Some(running) = instance.running.take() {
            running.stop().await;
        }
        if let Err(err) = self.unregister(ident).await {
            tracing::warn!(instance = %ident, "cannot unregister; will retry: {err}");
            self.orphans.insert(ident.clone());
        }
    }

    /// Stop and unregister every instance (the SM is shutting down).
    pub(super) async fn stop_all(&mut self) {
        let all: Vec<InstanceIdent> = self.instances.keys().cloned().collect();
        for ident in all {
            self.remove(&ident).await;
        }
    }

    /// Record that start `generation` of an instance ended by itself; returns whether it changed a status.
    pub(super) fn ended(&mut self, ended: Ended) -> bool {
        let Some(instance) = self.instances.get_mut(&ended.ident) else {
            return false;
        };
        if instance.generation != ended.generation {
            return false;
        }
        instance.running = None;
        instance.state = InstanceState::Exited { code: ended.code };
        true
    }

    /// One reconciliation pass (see the module documentation).
    pub(super) async fn reconcile(&mut self) -> Reconciled {
        self.unavailable_retries = REGISTER_RETRIES;
        let mut report = Reconciled::default();
        let orphans: Vec<InstanceIdent> = self.orphans.iter().cloned().collect();
        for ident in orphans {
            if self.unregister(&ident).await.is_ok() {
                self.orphans.remove(&ident);
                report.unregistered.push(ident);
            }
        }
        let idents: Vec<InstanceIdent> = self.instances.keys().cloned().collect();
        for ident in idents {
            let Some(instance) = self.instances.get(&ident) else {
                continue;
            };
            if matches!(instance.state, InstanceState::Failed(_)) {
                let spec = instance.spec.clone();
                let secret = instance.secret.clone();
                let relaunched = self.launch(spec, secret).await;
                self.instances.insert(ident.clone(), relaunched);
                report.retried.push(ident);
                continue;
            }
            if !self.lost_by_iam(instance).await {
                continue;
            }
            tracing::warn!(instance = %ident, "IAM no longer knows this instance's secret; registering it again");
            let Some(mut instance) = self.instances.remove(&ident) else {
                continue;
            };
            let was_running = instance.running.is_some();
            if let Some(running) = instance.running.take() {
                running.stop().await;
            }
            let relaunched = if was_running {
                self.launch(instance.spec, None).await
            } else {
                // It had exited by itself: keep it stopped, with a secret IAM knows for its next start.
                match self.register(&instance.spec).await {
                    Ok(secret) => Instance {
                        secret: Some(secret),
                        ..instance
                    },
                    Err(err) => Instance {
                        state: InstanceState::Failed(format!("registration: {err}")),
                        secret: None,
                        ..instance
                    },
                }
            };
            self.instances.insert(ident.clone(), relaunched);
            report.reregistered.push(ident);
        }
        report
    }

    /// Whether IAM answers `NotFound` for the instance's secret on one of its functional servers.
    async fn lost_by_iam(&self, instance: &Instance) -> bool {
        let (Some(secret), Some(server)) =
            (&instance.secret, instance.spec.permissions.keys().next())
        else {
            return false;
        };
        let request = PublicRequest::GetPermissions {
            secret: WireSecret(secret.clone()),
            functional_server_id: server.clone(),
        };
        match self.iam.public(request).await {
            Ok(_) => false,
            Err(e) if e.code == ErrorCode::NotFound => true,
            Err(e) => {
                tracing::debug!(instance = %instance.spec.ident, "cannot check the registration now: {e}");
                false
            }
        }
    }
}
