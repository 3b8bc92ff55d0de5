//! The on-disk form of the permission store: one JSON document, replaced atomically (mode 0600) on every
//! change. It holds identities, secret digests and permissions, never a plaintext secret.
//!
//! ```json
//! {"version":1,"instances":[{"ident":{"item_id":"svc","subject_id":"subj","instance":0,"kind":"service"},
//!   "secret_digests":["<64 hex>"],"permissions":{"vis":{"*":"rw"}}}]}
//! ```

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::secret::SecretDigest;
use super::{InstanceIdent, PermissionError, Permissions};
use crate::persist;

/// The format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// File mode of the store: owner read/write only.
pub(crate) const FILE_MODE: u32 = 0o600;

/// One instance as written: borrowed from the live table.
#[derive(Serialize)]
pub(crate) struct StoredRef<'a> {
    pub ident: &'a InstanceIdent,
    pub secret_digests: &'a [SecretDigest],
    pub permissions: &'a Permissions,
}

/// One instance as read back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stored {
    pub ident: InstanceIdent,
    pub secret_digests: Vec<SecretDigest>,
    pub permissions: Permissions,
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: u64,
    instances: Vec<StoredRef<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[allow(dead_code)] // checked through `Header` before the full parse
    version: u64,
    instances: Vec<Stored>,
}

/// Read first, so a file from another version is reported as such rather than as corrupt.
#[derive(Deserialize)]
struct Header {
    version: u64,
}

/// Load the store at `path`; a missing file is an empty store. Anything else that prevents reading every
/// registration is an error: nothing is dropped silently.
pub(crate) fn load(path: &Path) -> Result<Vec<Stored>, PermissionError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PermissionError::StoreUnreadable {
                path: path.to_owned(),
                source,
            })
        }
    };
    let corrupt = |e: serde_json::Error| PermissionError::StoreCorrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if header.version != FORMAT_VERSION {
        return Err(PermissionError::StoreVersion {
            path: path.to_owned(),
            found: header.version,
            supported: FORMAT_VERSION,
        });
    }
    let file: FileIn = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(file.instances)
}

/// Replace the store at `path` with `instances`, crash-safely.
pub(crate) fn save(path: &Path, instances: Vec<StoredRef<'_>>) -> Result<(), PermissionError> {
    let write_err = |source| PermissionError::StoreWrite {
        path: path.to_owned(),
        source,
    };
    let file = FileOut {
        version: FORMAT_VERSION,
        instances,
    };
    let mut bytes = serde_json::to_vec(&file).map_err(|e| write_err(io::Error::other(e)))?;
    bytes.push(b'\n');
    persist::write_atomic(path, &bytes, FILE_MODE).map_err(write_err)
}
