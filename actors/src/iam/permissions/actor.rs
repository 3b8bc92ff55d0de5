//! The `PermissionHandler` actor and its messages.
//!
//! Handlers run inline on the actor's arbiter. Register and unregister rewrite the store file (fsynced)
//! before answering, which blocks the arbiter for that write; acceptable for how rarely instances are
//! registered (see `docs/permissions.md`). `GetPermissions` touches no file.

use std::path::Path;
use std::sync::{Arc, RwLock};

use actix::{Actor, Context, Handler, Message};
use aos_config::PermissionsConfig;

use super::{
    InstanceIdent, PermissionError, PermissionGrant, PermissionStore, Permissions, Secret,
};

/// The actor owning a node's [`PermissionStore`]. Writes go through the actor; lookups may also go through
/// a [`PermissionReader`], which any thread can use without a message round trip.
#[derive(Debug)]
pub struct PermissionHandler {
    store: Arc<RwLock<PermissionStore>>,
}

/// Read access to the store from any thread (functional-server lookups on worker arbiters): one read lock
/// and one hash probe, no actor round trip.
#[derive(Debug, Clone)]
pub struct PermissionReader {
    store: Arc<RwLock<PermissionStore>>,
}

impl PermissionReader {
    /// What `secret` may do on `server_id`; `NotFound` for every miss.
    pub fn get(
        &self,
        secret: &Secret,
        server_id: &str,
    ) -> Result<PermissionGrant, PermissionError> {
        self.store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(secret.expose(), server_id)
    }
}

/// Register an instance with its permissions; answers its secret. Sent by the SM.
///
/// Re-registering a registered instance replaces its permissions and, when possible, keeps its secret
/// (see [`PermissionStore::register`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Secret, PermissionError>")]
pub struct RegisterInstance {
    /// The instance.
    pub ident: InstanceIdent,
    /// Functional server → function → permissions.
    pub permissions: Permissions,
}

/// Unregister an instance; its secrets stop being valid. Sent by the SM.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), PermissionError>")]
pub struct UnregisterInstance {
    /// The instance.
    pub ident: InstanceIdent,
}

/// Who holds `secret`, and what may it do on `server_id`? Sent by functional servers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PermissionGrant, PermissionError>")]
pub struct GetPermissions {
    /// The secret the instance presented.
    pub secret: Secret,
    /// The functional server asking, e.g. `vis`.
    pub server_id: String,
}

// === impl PermissionHandler ===

impl PermissionHandler {
    /// A handler owning `store`.
    pub fn new(store: PermissionStore) -> Self {
        PermissionHandler {
            store: Arc::new(RwLock::new(store)),
        }
    }

    /// A reader sharing this handler's store.
    pub fn reader(&self) -> PermissionReader {
        PermissionReader {
            store: self.store.clone(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PermissionStore> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Open the store configured by `[permissions]` (in `working_dir` unless `store_path` is set).
    pub fn open(config: &PermissionsConfig, working_dir: &Path) -> Result<Self, PermissionError> {
        PermissionStore::open(config.store_path_in(working_dir), config.limits).map(Self::new)
    }
}

impl Actor for PermissionHandler {
    type Context = Context<Self>;
}

impl Handler<RegisterInstance> for PermissionHandler {
    type Result = Result<Secret, PermissionError>;

    fn handle(&mut self, msg: RegisterInstance, _: &mut Self::Context) -> Self::Result {
        self.write().register(msg.ident, msg.permissions)
    }
}

impl Handler<UnregisterInstance> for PermissionHandler {
    type Result = Result<(), PermissionError>;

    fn handle(&mut self, msg: UnregisterInstance, _: &mut Self::Context) -> Self::Result {
        self.write().unregister(&msg.ident)
    }
}

impl Handler<GetPermissions> for PermissionHandler {
    type Result = Result<PermissionGrant, PermissionError>;

    fn handle(&mut self, msg: GetPermissions, _: &mut Self::Context) -> Self::Result {
        self.store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(msg.secret.expose(), &msg.server_id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use actix::Addr;
    use aos_config::PermissionLimits;

    use super::*;
    use crate::iam::permissions::InstanceKind;

    fn ident(item: &str, instance: u64) -> InstanceIdent {
        InstanceIdent {
            item_id: item.into(),
            subject_id: "subject".into(),
            instance,
            kind: InstanceKind::Service,
        }
    }

    fn perms(server: &str, function: &str, value: &str) -> Permissions {
        BTreeMap::from([(
            server.to_owned(),
            BTreeMap::from([(function.to_owned(), value.to_owned())]),
        )])
    }

    fn start(path: &Path) -> Addr<PermissionHandler> {
        let store = PermissionStore::open(path, PermissionLimits::default()).unwrap();
        PermissionHandler::new(store).start()
    }

    async fn get(
        addr: &Addr<PermissionHandler>,
        secret: &Secret,
        server: &str,
    ) -> Result<PermissionGrant, PermissionError> {
        addr.send(GetPermissions {
            secret: secret.clone(),
            server_id: server.into(),
        })
        .await
        .unwrap()
    }

    #[actix::test]
    async fn register_get_unregister() {
        let dir = tempfile::tempdir().unwrap();
        let addr = start(&dir.path().join("permissions.db"));
        let a = ident("svc", 0);
        let secret = addr
            .send(RegisterInstance {
                ident: a.clone(),
                permissions: perms("vis", "*", "rw"),
            })
            .await
            .unwrap()
            .unwrap();

        let grant = get(&addr, &secret, "vis").await.unwrap();
        assert_eq!(grant.ident, a);
        assert_eq!(grant.permissions, perms("vis", "*", "rw")["vis"]);

        let err = get(&addr, &secret, "other").await.unwrap_err();
        assert!(
            matches!(&err, PermissionError::NotFound { server_id } if server_id == "other"),
            "{err:?}"
        );

        addr.send(UnregisterInstance { ident: a.clone() })
            .await
            .unwrap()
            .unwrap();
        let err = get(&addr, &secret, "vis").await.unwrap_err();
        assert!(matches!(err, PermissionError::NotFound { .. }), "{err:?}");
        let err = addr
            .send(UnregisterInstance { ident: a })
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err, PermissionError::UnknownInstance { .. }),
            "{err:?}"
        );
    }

    #[actix::test]
    async fn re_register_keeps_secret_and_updates_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let addr = start(&dir.path().join("permissions.db"));
        let register = |p: Permissions| {
            addr.send(RegisterInstance {
                ident: ident("svc", 1),
                permissions: p,
            })
        };
        let first = register(perms("vis", "read", "r")).await.unwrap().unwrap();
        let second = register(perms("vis", "write", "w")).await.unwrap().unwrap();
        assert_eq!(first, second);
        let grant = get(&addr, &first, "vis").await.unwrap();
        assert_eq!(
            grant.permissions,
            BTreeMap::from([("write".to_owned(), "w".to_owned())])
        );
    }

    #[test]
    fn secrets_survive_a_restart_of_the_actor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("permissions.db");

        let (secret_a, secret_b) = actix::System::new().block_on(async {
            let addr = start(&path);
            let mut secrets = Vec::new();
            for i in 0..2 {
                let s = addr
                    .send(RegisterInstance {
                        ident: ident("svc", i),
                        permissions: perms("vis", "*", "r"),
                    })
                    .await
                    .unwrap()
                    .unwrap();
                secrets.push(s);
            }
            addr.send(UnregisterInstance {
                ident: ident("svc", 1),
            })
            .await
            .unwrap()
            .unwrap();
            (secrets.remove(0), secrets.remove(0))
        });

        actix::System::new().block_on(async {
            let addr = start(&path);
            let grant = get(&addr, &secret_a, "vis").await.unwrap();
            assert_eq!(grant.ident, ident("svc", 0));
            let err = get(&addr, &secret_b, "vis").await.unwrap_err();
            assert!(matches!(err, PermissionError::NotFound { .. }), "{err:?}");

            // Only the digest survived: re-registering issues a new secret, the old one stays valid.
            let renewed = addr
                .send(RegisterInstance {
                    ident: ident("svc", 0),
                    permissions: perms("vis", "*", "rw"),
                })
                .await
                .unwrap()
                .unwrap();
            assert_ne!(renewed, secret_a);
            for s in [&secret_a, &renewed] {
                let grant = get(&addr, s, "vis").await.unwrap();
                assert_eq!(grant.permissions["*"], "rw");
            }
        });
    }

    #[test]
    fn open_refuses_a_corrupt_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("permissions.db"), b"{\"version\":1,").unwrap();
        let err = PermissionHandler::open(&PermissionsConfig::default(), dir.path()).unwrap_err();
        assert!(
            matches!(err, PermissionError::StoreCorrupt { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("permissions.db"), "{err}");
    }

    #[test]
    fn messages_do_not_show_the_secret() {
        let secret = Secret::generate().unwrap();
        let msg = GetPermissions {
            secret: secret.clone(),
            server_id: "vis".into(),
        };
        let shown = format!("{msg:?}");
        assert!(!shown.contains(secret.expose()), "{shown}");
        assert!(shown.contains("vis"), "{shown}");
    }
}
