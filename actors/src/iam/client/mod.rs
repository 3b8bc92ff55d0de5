//! IAM clients: typed requests to an IAM endpoint, the secondary node's registration with the main node,
//! and the permission checker of functional servers.
//!
//! - [`IamClient`]: one link to one endpoint (public: [`IamServerAuth::Pinned`] while the node is
//!   unprovisioned, [`IamServerAuth::Identity`] after; protected: identity plus a client certificate), with
//!   [`IamClient::public`], [`IamClient::protected`] and subscriptions.
//! - [`Registration`]: a secondary node's registration stream to the main node (see [`registration`]).
//! - [`PermissionChecker`]: `GetPermissions` for functional servers.

mod connection;
mod dial;
mod error;
mod events;
mod permission;
pub mod registration;
mod tls;

#[cfg(test)]
mod tests;

pub use connection::{IamClient, ServerSeen};
pub use dial::dialer_for;
pub use error::ClientError;
pub use permission::{Authorized, PermissionChecker};
pub use registration::{NodeRegistration, Registration, RegistrationConfig, RegistrationState};
pub use tls::{client_tls, IamServerAuth, IAM_SERVER_NAME};
