//! How instances run: the [`InstanceRunner`] seam, the handle of a running instance ([`RunningInstance`]),
//! how an instance that ends by itself is reported ([`ExitReporter`]), and [`Runners`], which picks the
//! process or the simulated runner by the spec.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::error::RunError;
use super::process::ProcessRunner;
use super::simulated::SimulatedRunner;
use crate::api::sm::{InstanceSpec, RunSpec};
use crate::iam::permissions::{InstanceIdent, Secret};

/// The environment variable an instance finds its secret in.
pub const SECRET_ENV: &str = "AOS_SECRET";

/// Starts instances. Implementations spawn their work on the current tokio runtime and return at once.
pub trait InstanceRunner: Send + Sync + 'static {
    /// Start `spec` with `secret`. The instance reports through `exit` if it ends by itself; it is stopped
    /// through the returned handle (or when the handle is dropped).
    fn start(
        &self,
        spec: &InstanceSpec,
        secret: &Secret,
        exit: ExitReporter,
    ) -> Result<RunningInstance, RunError>;
}

/// A running instance: stop it with [`RunningInstance::stop`]; dropping the handle stops it too.
#[derive(Debug)]
pub struct RunningInstance {
    pid: Option<u32>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

// === impl RunningInstance ===

impl RunningInstance {
    /// A handle whose task stops the instance when `stop` fires (or is dropped) and then sends on `done`.
    pub fn new(
        pid: Option<u32>,
        stop: oneshot::Sender<()>,
        done: oneshot::Receiver<()>,
    ) -> RunningInstance {
        RunningInstance {
            pid,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// The process id, for a child process.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Stop the instance and wait until it is gone.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

/// An instance ended by itself.
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct Ended {
    /// Which instance.
    pub ident: InstanceIdent,
    /// Which start of it (a restarted instance has a new generation; reports of old ones are ignored).
    pub generation: u64,
    /// Its exit code; `None` when a signal ended it or it is simulated.
    pub code: Option<i32>,
}

/// Tells the SM that an instance ended by itself.
#[derive(Debug, Clone)]
pub struct ExitReporter {
    ident: InstanceIdent,
    generation: u64,
    tx: mpsc::UnboundedSender<Ended>,
}

impl ExitReporter {
    /// A reporter for start `generation` of `ident`, sending on `tx`.
    pub fn new(
        ident: InstanceIdent,
        generation: u64,
        tx: mpsc::UnboundedSender<Ended>,
    ) -> ExitReporter {
        ExitReporter {
            ident,
            generation,
            tx,
        }
    }

    /// Report the end with exit `code`.
    pub fn ended(self, code: Option<i32>) {
        let _ = self.tx.send(Ended {
            ident: self.ident,
            generation: self.generation,
            code,
        });
    }
}

/// Runs [`RunSpec::Command`] with a [`ProcessRunner`] and [`RunSpec::Simulated`] with a
/// [`SimulatedRunner`] (when there is one).
#[derive(Debug, Clone, Default)]
pub struct Runners {
    /// Child processes.
    pub process: ProcessRunner,
    /// Simulated instances; `None` refuses them.
    pub simulated: Option<SimulatedRunner>,
}

impl Runners {
    /// Processes only.
    pub fn processes() -> Runners {
        Runners::default()
    }

    /// Processes, and simulated instances with `simulated`.
    pub fn with_simulated(simulated: SimulatedRunner) -> Runners {
        Runners {
            process: ProcessRunner::default(),
            simulated: Some(simulated),
        }
    }

    /// As a shared runner.
    pub fn shared(self) -> Arc<dyn InstanceRunner> {
        Arc::new(self)
    }
}

impl InstanceRunner for Runners {
    fn start(
        &self,
        spec: &InstanceSpec,
        secret: &Secret,
        exit: ExitReporter,
    ) -> Result<RunningInstance, RunError> {
        match (&spec.run, &self.simulated) {
            (RunSpec::Simulated, Some(simulated)) => simulated.start(spec, secret, exit),
            (RunSpec::Simulated, None) => Err(RunError::Unsupported("simulated")),
            _ => self.process.start(spec, secret, exit),
        }
    }
}
