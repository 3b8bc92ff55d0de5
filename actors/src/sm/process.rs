//! [`ProcessRunner`]: an instance as a child process, its secret in its environment.
//!
//! - No shell: the program and its arguments are passed as they are. The secret is **never** an argument.
//! - A clean environment: `PATH` (the SM's, or `/usr/bin:/bin`), the spec's variables, and
//!   [`SECRET_ENV`](super::runner::SECRET_ENV). Nothing else of the SM's environment (which may hold its own
//!   settings) is passed on.
//! - stdin is `/dev/null`; stdout and stderr are the SM's, so the instance's output reaches the node's log.
//! - Stopping kills the process (SIGKILL) and reaps it; dropping the handle does the same, and so does the
//!   SM's exit (`kill_on_drop`).

use std::process::Stdio;

use tokio::process::Command;
use tokio::sync::oneshot;

use super::error::RunError;
use super::runner::{ExitReporter, InstanceRunner, RunningInstance, SECRET_ENV};
use crate::api::sm::{InstanceSpec, RunSpec};
use crate::iam::permissions::Secret;

/// `PATH` of instances when the SM has none.
pub const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// Runs [`RunSpec::Command`] instances as child processes.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    path: String,
}

impl ProcessRunner {
    /// A runner giving instances `path` as `PATH`.
    pub fn with_path(path: impl Into<String>) -> ProcessRunner {
        ProcessRunner { path: path.into() }
    }
}

impl Default for ProcessRunner {
    /// Instances get the SM's `PATH`, or [`DEFAULT_PATH`].
    fn default() -> Self {
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
        ProcessRunner::with_path(path)
    }
}

impl InstanceRunner for ProcessRunner {
    fn start(
        &self,
        spec: &InstanceSpec,
        secret: &Secret,
        exit: ExitReporter,
    ) -> Result<RunningInstance, RunError> {
        let RunSpec::Command { program, args, env } = &spec.run else {
            return Err(RunError::Unsupported("simulated"));
        };
        if let Some(reserved) = env.keys().find(|k| k.as_str() == SECRET_ENV) {
            return Err(RunError::ReservedVariable(reserved.clone()));
        }
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", &self.path)
            .envs(env)
            .env(SECRET_ENV, secret.expose())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
        drop(command);
        let pid = child.id();
        tracing::info!(instance = %spec.ident, program = %program, pid, "instance started");
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let ident = spec.ident.clone();
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let code = status.ok().and_then(|s| s.code());
                    tracing::info!(instance = %ident, ?code, "instance exited");
                    exit.ended(code);
                }
                _ = stop_rx => {
                    if let Err(err) = child.kill().await {
                        tracing::warn!(instance = %ident, "cannot kill the instance: {err}");
                    }
                    tracing::info!(instance = %ident, "instance stopped");
                }
            }
            let _ = done_tx.send(());
        });
        Ok(RunningInstance::new(pid, stop_tx, done_rx))
    }
}
