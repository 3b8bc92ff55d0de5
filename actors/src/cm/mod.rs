//! The communication manager (CM) of the main node: the unit's link to the cloud and the SM controller.
//!
//! - [`cloud_link`]: TLS to the cloud (its certificate verified against the unit CA by DNS name), presenting
//!   the `cm` certificate once the node has one and handshaking again whenever it changes
//!   ([`CloudEndpoint`], [`CloudClient`], [`CloudConnection`]).
//! - The cloud **drives** provisioning and renewal (protocol: [`crate::api::cloud`]); the CM carries out each
//!   step through [`IamAccess`] with node ids, so the main node's IAM forwards requests for secondary nodes:
//!   [`provisioning`] (start → cert types → a CSR per type; apply the signed chains, `iam` last → finish) and
//!   [`renewal`] (a CSR per named type; apply, `iam` last).
//! - [`CloudRenewer`]: the validator's `Renewer` seam, so local renewal thresholds get their CSRs signed by
//!   the cloud too.
//! - [`SmController`]: mutual TLS for SMs (role `sm` only), a registry of SMs by node, desired instances
//!   pushed to each, statuses reported back (protocol: [`crate::api::sm`]).
//! - [`CertCredentials`]: keeps the `cm` (or any) TLS credentials equal to the node's current certificate.
//!
//! [`Cm::start`] wires them from [`CmParts`] and [`CmOptions`]. See `docs/cm.md`.

mod cloud_handler;
pub mod cloud_link;
mod credentials;
mod error;
mod iam_access;
pub mod provisioning;
pub mod renewal;
mod renewer;
mod service;
mod sm_controller;

pub use cloud_link::{CloudClient, CloudConnection, CloudEndpoint, CloudLinkOptions, HostDialer};
pub use credentials::CertCredentials;
pub use error::{CloudCallError, CmError, SmControlError};
pub use iam_access::{IamAccess, LocalIam};
pub use renewer::{renew_error, CloudRenewer};
pub use service::{Cm, CmOptions, CmParts};
pub use sm_controller::{SmController, SmNode, SmRegistry};
