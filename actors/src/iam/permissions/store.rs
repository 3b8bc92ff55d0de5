//! The permission table: instance → secret digests + permissions, persisted on every change.
//! A plain struct (no actix) so the lookup path can be measured and reused on its own.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aos_config::PermissionLimits;

use super::secret::SecretDigest;
use super::store_file::{self, StoredRef};
use super::{limits, InstanceIdent, PermissionError, PermissionGrant, Permissions, Secret};

/// Most secrets valid at once for one instance: the current one and the one it replaced (see
/// `docs/permissions.md`, "Re-registration").
pub const MAX_SECRETS_PER_INSTANCE: usize = 2;

/// The registered instances of one node, looked up by secret digest.
///
/// Every change is written to the store file before it takes effect in memory: when the write fails, the
/// call fails and the table is unchanged.
pub struct PermissionStore {
    path: PathBuf,
    limits: PermissionLimits,
    /// The hot path: digest → instance, one hash lookup.
    by_digest: HashMap<SecretDigest, Arc<Instance>>,
    /// Everything about each registered instance.
    by_ident: BTreeMap<InstanceIdent, Record>,
}

/// What a lookup answers from: shared by every digest of the instance.
struct Instance {
    ident: InstanceIdent,
    permissions: Permissions,
}

struct Record {
    /// Digests of the valid secrets, newest first; 1..=MAX_SECRETS_PER_INSTANCE of them.
    digests: Vec<SecretDigest>,
    /// The plaintext of the newest secret, when it was issued by this process (so a re-register can return
    /// it). Never persisted; `None` after a restart.
    live_secret: Option<Secret>,
    instance: Arc<Instance>,
}

// === impl PermissionStore ===

impl PermissionStore {
    /// Open the store at `path`, loading every registration in it; a missing file is an empty store.
    ///
    /// A file that cannot be read or parsed completely is an error: no registration is dropped silently.
    /// A file holding more than the configured limits (they were lowered) is loaded whole, with a warning;
    /// new registrations are refused until it is back under them.
    pub fn open(
        path: impl Into<PathBuf>,
        limits: PermissionLimits,
    ) -> Result<PermissionStore, PermissionError> {
        let path = path.into();
        let stored = store_file::load(&path)?;
        let mut store = PermissionStore {
            path,
            limits,
            by_digest: HashMap::with_capacity(stored.len()),
            by_ident: BTreeMap::new(),
        };
        for entry in stored {
            store.insert_loaded(entry.ident, entry.secret_digests, entry.permissions)?;
        }
        if store.len() > limits.max_instances {
            tracing::warn!(
                path = %store.path.display(),
                instances = store.len(),
                max = limits.max_instances,
                "permission store holds more instances than permissions.limits.max_instances; \
                 new registrations are refused until instances are unregistered"
            );
        }
        tracing::info!(path = %store.path.display(), instances = store.len(), "permission store loaded");
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many instances are registered.
    pub fn len(&self) -> usize {
        self.by_ident.len()
    }

    /// Whether no instance is registered.
    pub fn is_empty(&self) -> bool {
        self.by_ident.is_empty()
    }

    /// Whether `ident` is registered.
    pub fn contains(&self, ident: &InstanceIdent) -> bool {
        self.by_ident.contains_key(ident)
    }

    /// Register `ident` with `permissions` and return its secret.
    ///
    /// Re-registering a registered instance replaces its permissions. Its secret stays the same when this
    /// process issued it; after a restart (only the digest is known) a fresh secret is issued and the
    /// previous one stays valid until unregister, so at most [`MAX_SECRETS_PER_INSTANCE`] are valid at once.
    pub fn register(
        &mut self,
        ident: InstanceIdent,
        permissions: Permissions,
    ) -> Result<Secret, PermissionError> {
        limits::check(&self.limits, &ident, &permissions)?;
        let existing = self.by_ident.get(&ident);
        if existing.is_none() && self.by_ident.len() >= self.limits.max_instances {
            return Err(PermissionError::TooManyInstances {
                ident: ident.to_string(),
                max: self.limits.max_instances,
            });
        }
        let kept = existing.and_then(|r| r.live_secret.clone().map(|s| (s, r.digests.clone())));
        let reissued = existing.is_some() && kept.is_none();
        let (secret, digests) = match kept {
            Some(kept) => kept,
            None => {
                let secret = Secret::generate()?;
                let digest = secret.digest().ok_or_else(|| {
                    PermissionError::Random("a generated secret is not 64 hex characters".into())
                })?;
                if self.by_digest.contains_key(&digest) {
                    return Err(PermissionError::Random(
                        "the OS random number generator repeated a 256-bit value".into(),
                    ));
                }
                let mut digests = vec![digest];
                if let Some(record) = existing {
                    let keep = MAX_SECRETS_PER_INSTANCE - 1;
                    digests.extend(record.digests.iter().take(keep).copied());
                }
                (secret, digests)
            }
        };

        self.persist_with(&ident, Some((&digests, &permissions)))?;

        let servers = permissions.len();
        let instance = Arc::new(Instance {
            ident: ident.clone(),
            permissions,
        });
        let mut revoked = 0;
        if let Some(old) = self.by_ident.get(&ident) {
            for digest in old.digests.iter().filter(|d| !digests.contains(d)) {
                self.by_digest.remove(digest);
                revoked += 1;
            }
        }
        for digest in &digests {
            self.by_digest.insert(*digest, Arc::clone(&instance));
        }
        let valid_secrets = digests.len();
        let replaced = self.by_ident.insert(
            ident,
            Record {
                digests,
                live_secret: Some(secret.clone()),
                instance: Arc::clone(&instance),
            },
        );
        let ident = &instance.ident;
        crate::audit::instance_registered(
            ident,
            servers,
            replaced.is_some(),
            replaced.is_none() || reissued,
        );
        match (replaced.is_some(), reissued) {
            (false, _) => tracing::info!(instance = %ident, servers, "instance registered"),
            (true, false) => tracing::info!(
                instance = %ident,
                servers,
                "instance re-registered: secret kept, permissions replaced"
            ),
            (true, true) => tracing::info!(
                instance = %ident,
                servers,
                valid_secrets,
                revoked,
                "instance re-registered after a restart: new secret issued, the previous one stays valid \
                 until unregister"
            ),
        }
        Ok(secret)
    }

    /// Unregister `ident`: every secret it holds stops being valid.
    pub fn unregister(&mut self, ident: &InstanceIdent) -> Result<(), PermissionError> {
        if !self.by_ident.contains_key(ident) {
            return Err(PermissionError::UnknownInstance {
                ident: ident.to_string(),
            });
        }
        self.persist_with(ident, None)?;
        if let Some(record) = self.by_ident.remove(ident) {
            for digest in &record.digests {
                self.by_digest.remove(digest);
            }
        }
        crate::audit::instance_unregistered(ident);
        Ok(())
    }

    /// Who holds `secret`, and its permissions on `server_id`.
    ///
    /// One hash of the decoded secret and one table lookup; allocates only the answer. An unknown or
    /// malformed secret and a server the instance has no permissions on are the same
    /// [`PermissionError::NotFound`].
    pub fn get(&self, secret: &str, server_id: &str) -> Result<PermissionGrant, PermissionError> {
        let not_found = || PermissionError::NotFound {
            server_id: server_id.to_owned(),
        };
        let digest = SecretDigest::of_text(secret).ok_or_else(not_found)?;
        let instance = self.by_digest.get(&digest).ok_or_else(not_found)?;
        let permissions = instance.permissions.get(server_id).ok_or_else(not_found)?;
        Ok(PermissionGrant {
            ident: instance.ident.clone(),
            permissions: permissions.clone(),
        })
    }

    /// Add one instance read from the store file, refusing what a correct writer cannot have produced.
    fn insert_loaded(
        &mut self,
        ident: InstanceIdent,
        digests: Vec<SecretDigest>,
        permissions: Permissions,
    ) -> Result<(), PermissionError> {
        let corrupt = |reason: String| PermissionError::StoreCorrupt {
            path: self.path.clone(),
            reason,
        };
        if digests.is_empty() || digests.len() > MAX_SECRETS_PER_INSTANCE {
            return Err(corrupt(format!(
                "instance {ident} has {} secret digests; expected 1 to {MAX_SECRETS_PER_INSTANCE}",
                digests.len()
            )));
        }
        if self.by_ident.contains_key(&ident) {
            return Err(corrupt(format!("instance {ident} appears twice")));
        }
        if digests
            .iter()
            .enumerate()
            .any(|(i, d)| self.by_digest.contains_key(d) || digests[..i].contains(d))
        {
            return Err(corrupt(format!(
                "a secret digest of instance {ident} appears more than once"
            )));
        }
        let instance = Arc::new(Instance {
            ident: ident.clone(),
            permissions,
        });
        for digest in &digests {
            self.by_digest.insert(*digest, Arc::clone(&instance));
        }
        self.by_ident.insert(
            ident,
            Record {
                digests,
                live_secret: None,
                instance,
            },
        );
        Ok(())
    }

    /// Write the table as it will be once `changed` is replaced by `replacement` (or removed, for `None`).
    fn persist_with(
        &self,
        changed: &InstanceIdent,
        replacement: Option<(&[SecretDigest], &Permissions)>,
    ) -> Result<(), PermissionError> {
        let mut out: Vec<StoredRef<'_>> = self
            .by_ident
            .iter()
            .filter(|(ident, _)| *ident != changed)
            .map(|(ident, record)| StoredRef {
                ident,
                secret_digests: &record.digests,
                permissions: &record.instance.permissions,
            })
            .collect();
        if let Some((secret_digests, permissions)) = replacement {
            let at = out.partition_point(|s| s.ident < changed);
            out.insert(
                at,
                StoredRef {
                    ident: changed,
                    secret_digests,
                    permissions,
                },
            );
        }
        store_file::save(&self.path, out)
    }
}

impl fmt::Debug for PermissionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermissionStore")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .field("instances", &self.by_ident.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
