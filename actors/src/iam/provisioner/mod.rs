//! The provisioner: the node state machine unprovisioned → provisioned ⇄ paused, persisted atomically.
//!
//! | operation | allowed in | leads to |
//! |---|---|---|
//! | `StartProvisioning(pw)` | unprovisioned, starting (after a crash) | provisioning |
//! | `FinishProvisioning(pw)` | provisioning (every CA-signed module has a certificate) | provisioned |
//! | `Deprovision(pw)` | every state but unprovisioned | unprovisioned |
//! | `Pause` / `Resume` | provisioned / paused | paused / provisioned |
//!
//! The password is the SO PIN of every token; the state file keeps only a PBKDF2 verifier of it. After three
//! wrong passwords each further attempt must wait exponentially longer (1 s, 2 s, 4 s … 1 h); the counter is
//! in the state file, so a restart does not reset it. One operation runs at a time; another one meanwhile
//! gets [`ProvisionError::Busy`].

mod core;
mod error;
mod hooks;
mod password;
mod state;

use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use aos_config::ProvisioningConfig;

pub use self::core::{ProvisionerOptions, Step};
pub use error::ProvisionError;
pub use hooks::run_hook;
pub use password::{
    backoff, Password, PasswordMemo, Verifier, BACKOFF_BASE, BACKOFF_MAX, FREE_ATTEMPTS,
};
pub use state::{NodeState, StateFile, StateRecord};

use self::core::ProvisionerCore;
use crate::clock::Clock;
use crate::iam::cert_handler::CertHandler;

/// The provisioner actor.
pub struct Provisioner {
    core: Arc<tokio::sync::Mutex<ProvisionerCore>>,
}

impl Provisioner {
    /// A provisioner over `handler`'s modules; reads the state file now (an unreadable one is an error).
    pub fn new(
        state_file: StateFile,
        hooks: ProvisioningConfig,
        handler: Addr<CertHandler>,
        clock: Arc<dyn Clock>,
        options: ProvisionerOptions,
    ) -> Result<Self, ProvisionError> {
        let core = ProvisionerCore::new(state_file, hooks, handler, clock, options)?;
        Ok(Provisioner {
            core: Arc::new(tokio::sync::Mutex::new(core)),
        })
    }

    fn run<F, T>(&self, op: F) -> ResponseFuture<Result<T, ProvisionError>>
    where
        F: for<'a> FnOnce(
                &'a mut ProvisionerCore,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, ProvisionError>> + 'a>,
            > + 'static,
        T: 'static,
    {
        let core = self.core.clone();
        Box::pin(async move {
            let mut guard = core.try_lock().map_err(|_| ProvisionError::Busy)?;
            op(&mut guard).await
        })
    }
}

impl Actor for Provisioner {
    type Context = Context<Self>;
}

macro_rules! password_op {
    ($(#[$doc:meta])* $name:ident => $method:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Message)]
        #[rtype(result = "Result<(), ProvisionError>")]
        pub struct $name {
            /// The provisioning password.
            pub password: Password,
        }

        impl Handler<$name> for Provisioner {
            type Result = ResponseFuture<Result<(), ProvisionError>>;

            fn handle(&mut self, msg: $name, _: &mut Context<Self>) -> Self::Result {
                self.run(move |core| Box::pin(core.$method(msg.password)))
            }
        }
    };
}

password_op!(
    /// Take ownership of the tokens and create self-signed certificates.
    StartProvisioning => start
);
password_op!(
    /// Complete provisioning once every module has its certificate.
    FinishProvisioning => finish
);
password_op!(
    /// Remove every certificate and key of the node and return to unprovisioned.
    Deprovision => deprovision
);

/// Check the provisioning password (with the same attempt limiting) for a protected operation.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ProvisionError>")]
pub struct CheckPassword {
    /// The password.
    pub password: Password,
}

impl Handler<CheckPassword> for Provisioner {
    type Result = ResponseFuture<Result<(), ProvisionError>>;

    fn handle(&mut self, msg: CheckPassword, _: &mut Context<Self>) -> Self::Result {
        self.run(move |core| Box::pin(async move { core.check_password(&msg.password).await }))
    }
}

/// Provisioned → paused.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), ProvisionError>")]
pub struct PauseNode;

impl Handler<PauseNode> for Provisioner {
    type Result = ResponseFuture<Result<(), ProvisionError>>;

    fn handle(&mut self, _: PauseNode, _: &mut Context<Self>) -> Self::Result {
        self.run(|core| Box::pin(async move { core.pause().await }))
    }
}

/// Paused → provisioned.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), ProvisionError>")]
pub struct ResumeNode;

impl Handler<ResumeNode> for Provisioner {
    type Result = ResponseFuture<Result<(), ProvisionError>>;

    fn handle(&mut self, _: ResumeNode, _: &mut Context<Self>) -> Self::Result {
        self.run(|core| Box::pin(async move { core.resume().await }))
    }
}

/// The node's state (waits for a running operation to end).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "NodeState")]
pub struct GetNodeState;

impl Handler<GetNodeState> for Provisioner {
    type Result = ResponseFuture<NodeState>;

    fn handle(&mut self, _: GetNodeState, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.state() })
    }
}

#[cfg(test)]
mod tests;
