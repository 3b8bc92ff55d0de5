//! The permission handler: which service instance may use which functional server.
//!
//! The SM registers each instance it starts with its declared permissions and receives a secret
//! ([`RegisterInstance`]), which it hands to the instance. The instance presents the secret to a functional
//! server (e.g. `vis`), which asks [`GetPermissions`] what that secret may do there.
//!
//! - [`Secret`]: 256 bits from the OS CSPRNG as 64 lowercase hex characters; zeroized, never logged.
//! - [`PermissionStore`]: the table, keyed by SHA-256 digests of secrets only, persisted atomically
//!   (mode 0600) on every change.
//! - [`PermissionHandler`]: the actor owning the store.
//!
//! Decisions (re-registration, restart, limits) are in `docs/permissions.md`.

mod actor;
mod error;
mod limits;
mod secret;
mod store;
mod store_file;
mod types;

pub use actor::{
    GetPermissions, PermissionHandler, PermissionReader, RegisterInstance, UnregisterInstance,
};
pub use error::PermissionError;
pub use secret::{Secret, SECRET_BYTES, SECRET_TEXT_LEN};
pub use store::{PermissionStore, MAX_SECRETS_PER_INSTANCE};
pub use types::{InstanceIdent, InstanceKind, PermissionGrant, Permissions, ServerPermissions};
