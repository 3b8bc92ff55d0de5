//! [`SimulatedRunner`]: instances that are not processes (the simulator). Each holds its secret while it
//! runs, so the simulator can act as the service (present the secret to a functional server), and an
//! optional closure is called at each start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::error::RunError;
use super::runner::{ExitReporter, InstanceRunner, RunningInstance};
use crate::api::sm::InstanceSpec;
use crate::iam::permissions::{InstanceIdent, Secret};

/// Called when a simulated instance starts, with its ident and secret.
pub type OnStart = Arc<dyn Fn(&InstanceIdent, &Secret) + Send + Sync>;

/// Runs simulated instances: holds each running one's secret.
#[derive(Clone, Default)]
pub struct SimulatedRunner {
    running: Arc<Mutex<BTreeMap<InstanceIdent, Secret>>>,
    on_start: Option<OnStart>,
}

impl SimulatedRunner {
    /// A runner that calls `on_start` at each start.
    pub fn with_on_start(on_start: OnStart) -> SimulatedRunner {
        SimulatedRunner {
            running: Arc::default(),
            on_start: Some(on_start),
        }
    }

    /// The secret a running instance holds.
    pub fn secret_of(&self, ident: &InstanceIdent) -> Option<Secret> {
        self.lock().get(ident).cloned()
    }

    /// The running instances.
    pub fn running(&self) -> Vec<InstanceIdent> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<InstanceIdent, Secret>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl InstanceRunner for SimulatedRunner {
    fn start(
        &self,
        spec: &InstanceSpec,
        secret: &Secret,
        _exit: ExitReporter,
    ) -> Result<RunningInstance, RunError> {
        let ident = spec.ident.clone();
        self.lock().insert(ident.clone(), secret.clone());
        if let Some(on_start) = &self.on_start {
            on_start(&ident, secret);
        }
        tracing::info!(instance = %ident, "simulated instance started");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel();
        let running = self.running.clone();
        tokio::spawn(async move {
            let _ = stop_rx.await;
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ident);
            tracing::info!(instance = %ident, "simulated instance stopped");
            let _ = done_tx.send(());
        });
        Ok(RunningInstance::new(None, stop_tx, done_rx))
    }
}

impl std::fmt::Debug for SimulatedRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedRunner")
            .field("running", &self.running())
            .field("on_start", &self.on_start.is_some())
            .finish()
    }
}
