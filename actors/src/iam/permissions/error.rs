//! What can go wrong in the permission handler. No variant ever carries a secret.

use std::path::PathBuf;

/// An error of the permission handler or its store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// The secret is unknown, or its instance has no permissions on the asked functional server.
    /// Deliberately one answer for both, so a caller cannot probe which secrets exist.
    #[error("no permissions on functional server {server_id:?} for this secret (unknown secret, or the server is not granted)")]
    NotFound {
        /// The functional server that was asked about.
        server_id: String,
    },
    /// `UnregisterInstance` named an instance that is not registered.
    #[error("instance {ident} is not registered")]
    UnknownInstance {
        /// The instance, as `kind:item/subject#instance`.
        ident: String,
    },
    /// Registering one more instance would exceed `permissions.limits.max_instances`.
    #[error("cannot register instance {ident}: {max} instances are registered already (permissions.limits.max_instances)")]
    TooManyInstances {
        /// The instance that was refused.
        ident: String,
        /// The configured limit.
        max: usize,
    },
    /// The permissions name more functional servers than `permissions.limits.max_servers_per_instance`.
    #[error("instance {ident} asks for {count} functional servers, more than {max} (permissions.limits.max_servers_per_instance)")]
    TooManyServers {
        /// The instance that was refused.
        ident: String,
        /// How many servers it asked for.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// An identifier, function name or permission string is longer than `permissions.limits.max_string_len`.
    #[error("{what} is {len} bytes long, more than {max} (permissions.limits.max_string_len)")]
    StringTooLong {
        /// Which string, e.g. `item id` or `function name on server "vis"`.
        what: String,
        /// Its length in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The OS random number generator failed; no secret was issued.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    /// The store file exists but cannot be read.
    #[error("cannot read the permission store {path}: {source}")]
    StoreUnreadable {
        /// The store file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store file is not a valid permission store; nothing was loaded. Restore it from a backup or,
    /// to start over (every running instance then needs to be registered again), move it away.
    #[error("the permission store {path} is corrupt: {reason}; restore it, or move it away to start with no registrations")]
    StoreCorrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The store file was written by a different format version.
    #[error("the permission store {path} has format version {found}; this build reads version {supported}")]
    StoreVersion {
        /// The store file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// Writing the store file failed; the change was not made.
    #[error("cannot write the permission store {path} (the change was not made): {source}")]
    StoreWrite {
        /// The store file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
