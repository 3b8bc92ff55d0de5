//! `LocalNode`: this node's provisioning state and its own TLS identity, kept current.
//!
//! Both IAM endpoints and the secondary's registration client present what this tracks:
//! - the **public credentials**: the current `cert_storage` (normally `iam`) certificate with its token key,
//!   or, while there is none, the self-signed provisioning certificate made at start (clients pin its
//!   fingerprint);
//! - the **iam credentials**: the current `cert_storage` certificate, or nothing (the protected endpoint then
//!   refuses every handshake, and a registration client cannot authenticate).
//!
//! Both are [`Credentials`], swapped in place: new handshakes see the new certificate, live connections keep
//! theirs. The tracker refreshes on every `CertChanged` of `cert_storage`, after each local request that can
//! change the state or the certificate (the endpoints and the registration client call
//! [`LocalNode::refresh`]), and every `refresh_interval` as a safety net for changes made elsewhere (e.g. the
//! validator removing an expired certificate).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler};
use aos_transport::tls::{Credentials, Fingerprint, PeerIdentity, ProvisioningCert, Role};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ServerError;
use crate::api::{ErrorCode, PublicRequest, PublicResponse};
use crate::iam::cert_handler::{CertChanged, CertHandler, ForType, SubscribeCertChanged};
use crate::iam::cert_module::{CertInfo, GetTokenKey};
use crate::iam::provisioner::NodeState;
use crate::iam::service::IamService;

/// Default of [`LocalNode::start`]'s `refresh_interval`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// What this node's endpoints depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStatus {
    /// The provisioning state.
    pub state: NodeState,
    /// The current certificate of `cert_storage`, if there is one.
    pub cert: Option<CertInfo>,
}

// === impl LocalStatus ===

impl LocalStatus {
    /// Whether the node is provisioned (or paused) and holds its own certificate: it can authenticate with it.
    pub fn has_identity(&self) -> bool {
        matches!(self.state, NodeState::Provisioned | NodeState::Paused) && self.cert.is_some()
    }
}

/// This node's state and TLS identity. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct LocalNode {
    inner: Arc<Inner>,
}

struct Inner {
    service: IamService,
    certs: Addr<CertHandler>,
    cert_storage: String,
    identity: PeerIdentity,
    fingerprint: Fingerprint,
    provisioning: Arc<CertifiedKey>,
    public: Credentials,
    iam: Credentials,
    status: watch::Sender<LocalStatus>,
    /// Serialises refreshes; holds the serial of the certificate the credentials present.
    applied: tokio::sync::Mutex<Option<String>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

// === impl LocalNode ===

impl LocalNode {
    /// Track the node of `service`, whose own certificate is the current one of `cert_storage` in `certs`.
    /// Makes the provisioning certificate (logged with its fingerprint), subscribes to certificate changes,
    /// reads the state once and then every `refresh_interval`. Must run inside an actix System.
    pub async fn start(
        service: IamService,
        certs: Addr<CertHandler>,
        cert_storage: impl Into<String>,
        refresh_interval: Duration,
    ) -> Result<LocalNode, ServerError> {
        let cert_storage = cert_storage.into();
        let info = service.node_info().await;
        let identity = PeerIdentity::new(&info.unit_id, &info.node_id, Role::Iam)?;
        let provisioning = ProvisioningCert::generate(&identity, &[])?;
        let fingerprint = provisioning.fingerprint();
        let provisioning = provisioning
            .credentials()?
            .current()
            .ok_or(ServerError::Mailbox("the provisioning certificate"))?;
        let public = Credentials::new();
        public
            .set(provisioning.cert.clone(), provisioning.key.clone())
            .map_err(aos_transport::tls::TlsError::from)?;
        let (status, _) = watch::channel(LocalStatus {
            state: info.state,
            cert: None,
        });
        let node = LocalNode {
            inner: Arc::new(Inner {
                service,
                certs: certs.clone(),
                cert_storage: cert_storage.clone(),
                identity,
                fingerprint,
                provisioning,
                public,
                iam: Credentials::new(),
                status,
                applied: tokio::sync::Mutex::new(None),
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let watcher = CertWatcher(Arc::downgrade(&node.inner)).start();
        certs
            .send(SubscribeCertChanged {
                cert_type: cert_storage.clone(),
                subscriber: watcher.recipient(),
            })
            .await
            .map_err(|_| ServerError::Mailbox("the cert handler"))?
            .map_err(|_| ServerError::UnknownCertStorage(cert_storage))?;
        node.refresh().await;
        let weak = Arc::downgrade(&node.inner);
        let periodic = actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(refresh_interval).await;
                match weak.upgrade() {
                    Some(inner) => LocalNode { inner }.refresh().await,
                    None => return,
                };
            }
        });
        node.push_task(periodic);
        tracing::info!(
            node = %node.inner.identity,
            fingerprint = %node.inner.fingerprint,
            "IAM provisioning certificate ready; clients of an unprovisioned node pin this fingerprint"
        );
        Ok(node)
    }

    fn push_task(&self, task: JoinHandle<()>) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// The IAM service of this node.
    pub fn service(&self) -> &IamService {
        &self.inner.service
    }

    /// The cert handler of this node.
    pub fn cert_handler(&self) -> &Addr<CertHandler> {
        &self.inner.certs
    }

    /// The identity the node's IAM certificates carry (role `iam`).
    pub fn identity(&self) -> &PeerIdentity {
        &self.inner.identity
    }

    /// The cert type whose certificate the node presents.
    pub fn cert_storage(&self) -> &str {
        &self.inner.cert_storage
    }

    /// SHA-256 fingerprint of this run's provisioning certificate.
    pub fn provisioning_fingerprint(&self) -> Fingerprint {
        self.inner.fingerprint
    }

    /// What the public endpoint presents: the node's certificate, or the provisioning certificate.
    pub fn public_credentials(&self) -> Credentials {
        self.inner.public.clone()
    }

    /// The node's own certificate and key, or nothing (not ready) while it has none.
    pub fn iam_credentials(&self) -> Credentials {
        self.inner.iam.clone()
    }

    /// The last status read.
    pub fn status(&self) -> LocalStatus {
        self.inner.status.borrow().clone()
    }

    /// Told of every status change.
    pub fn subscribe(&self) -> watch::Receiver<LocalStatus> {
        self.inner.status.subscribe()
    }

    /// Read the state and current certificate now, update the credentials, and publish the status if it
    /// changed. Returns once the credentials present what was read.
    pub async fn refresh(&self) -> LocalStatus {
        let inner = &self.inner;
        let mut applied = inner.applied.lock().await;
        let state = inner.service.node_info().await.state;
        let cert = if matches!(state, NodeState::Unprovisioned | NodeState::Starting) {
            // No identity yet, or the tokens are being re-initialised.
            None
        } else {
            self.read_cert().await
        };
        self.apply(cert.as_ref(), &mut applied).await;
        let status = LocalStatus { state, cert };
        inner.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status.clone();
            true
        });
        status
    }

    async fn read_cert(&self) -> Option<CertInfo> {
        let inner = &self.inner;
        let request = PublicRequest::GetCert {
            node_id: String::new(),
            cert_type: inner.cert_storage.clone(),
            issuer: Vec::new(),
            serial: String::new(),
        };
        match inner.service.public(request).await {
            Ok(PublicResponse::Cert(info)) => Some(info),
            Ok(_) => None,
            Err(err) if err.code == ErrorCode::NotFound => None,
            Err(err) => {
                tracing::warn!(cert_type = %inner.cert_storage, error = %err, "cannot read the node's own certificate; keeping the current credentials");
                inner.status.borrow().cert.clone()
            }
        }
    }

    async fn apply(&self, cert: Option<&CertInfo>, applied: &mut Option<String>) {
        let inner = &self.inner;
        match cert {
            Some(info) if applied.as_deref() == Some(info.serial.as_str()) => {}
            Some(info) => {
                let request = ForType::new(
                    inner.cert_storage.clone(),
                    GetTokenKey {
                        serial: info.serial.clone(),
                    },
                );
                let (key, chain) = match inner.certs.send(request).await {
                    Ok(Ok(found)) => found,
                    Ok(Err(err)) => {
                        tracing::warn!(serial = %info.serial, error = %err, "cannot load the key of the node's certificate; keeping the current credentials");
                        return;
                    }
                    Err(_) => return,
                };
                let key: Arc<dyn rustls::sign::SigningKey> = Arc::new(key);
                let set = inner
                    .iam
                    .set(chain.clone(), key.clone())
                    .and_then(|()| inner.public.set(chain, key));
                match set {
                    Ok(()) => {
                        tracing::info!(cert_type = %inner.cert_storage, serial = %info.serial, "IAM endpoints present the node's certificate");
                        *applied = Some(info.serial.clone());
                    }
                    Err(err) => {
                        tracing::warn!(serial = %info.serial, error = %err, "the node's certificate does not match its key; keeping the current credentials")
                    }
                }
            }
            None if applied.is_some() => {
                inner.iam.clear();
                let provisioning = &inner.provisioning;
                if let Err(err) = inner
                    .public
                    .set(provisioning.cert.clone(), provisioning.key.clone())
                {
                    tracing::error!(error = %err, "cannot present the provisioning certificate");
                }
                tracing::info!(fingerprint = %inner.fingerprint, "the node has no certificate: the public endpoint presents the provisioning certificate again, the protected endpoint refuses");
                *applied = None;
            }
            None => {}
        }
    }
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("identity", &self.inner.identity)
            .field("fingerprint", &self.inner.fingerprint)
            .field("status", &self.status())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// Refreshes the tracker whenever the current certificate of `cert_storage` changes.
struct CertWatcher(Weak<Inner>);

impl Actor for CertWatcher {
    type Context = Context<Self>;
}

impl Handler<CertChanged> for CertWatcher {
    type Result = ();

    fn handle(&mut self, _: CertChanged, ctx: &mut Context<Self>) {
        match self.0.upgrade() {
            Some(inner) => {
                let node = LocalNode { inner };
                ctx.spawn(actix::fut::wrap_future(async move {
                    node.refresh().await;
                }));
            }
            None => ctx.stop(),
        }
    }
}
