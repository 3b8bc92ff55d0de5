//! The service manager (SM) of a node: runs the node's service instances.
//!
//! The SM connects to the CM's SM controller (mutual TLS with its `sm` certificate; on a secondary node
//! through the MP bridge's local `CmSecure` listener) and receives the desired instances of its node
//! ([`crate::api::sm`]). For each it registers the declared permissions with the main node's IAM
//! (`RegisterInstance` through [`IamAccess`](crate::cm::IamAccess)) and starts it with the secret IAM
//! returned:
//! - [`ProcessRunner`]: a child process with the secret in `AOS_SECRET` (never in its arguments, never
//!   logged), killed when it is no longer desired;
//! - [`SimulatedRunner`]: a simulated instance that holds the secret (the simulator).
//!
//! An instance that is no longer desired is stopped and unregistered, so its secret stops validating.
//! Reconciliation ([`Reconcile`], every `sm.reconcile_interval`) registers again what IAM lost and restarts
//! it with its new secret. See `docs/sm.md`.

mod core;
mod error;
mod process;
mod runner;
mod service;
mod simulated;

pub use self::core::Reconciled;
pub use error::{RunError, SmError};
pub use process::{ProcessRunner, DEFAULT_PATH};
pub use runner::{Ended, ExitReporter, InstanceRunner, Runners, RunningInstance, SECRET_ENV};
pub use service::{Reconcile, Sm, SmHandle, SmOptions, SmParts};
pub use simulated::{OnStart, SimulatedRunner};

#[cfg(test)]
mod tests;
