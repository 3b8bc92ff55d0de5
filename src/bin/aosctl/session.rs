//! A connection to one node's IAM endpoint, as the connection flags describe it, with typed requests whose
//! errors name the operation and the node.
//!
//! Without `--cert` aosctl dials the public endpoint anonymously: public requests always work there, and
//! protected ones (provisioning) while the node is not provisioned. With `--cert`/`--key` it dials the
//! protected endpoint with that client certificate. The server is authenticated by `--pin` (its provisioning
//! certificate), by `--ca` (its `iam` certificate must chain to the unit CA), or by either when both are
//! given (a node that switches certificates while being provisioned).

use std::sync::Arc;
use std::time::Duration;

use aos_actors::api::{ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse};
use aos_actors::iam::client::{client_tls, dialer_for, IamClient, IamServerAuth};
use aos_actors::iam::server::EndpointKind;
use aos_actors::net::{ArbiterPool, LinkConfig};
use aos_transport::tls::{root_store, Credentials, Fingerprint, Policy, Role, TlsOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca;
use crate::cli::ConnectArgs;
use crate::error::CtlError;

/// How long one request may take: AosCore's long timeout (StartProvisioning initialises tokens and may run
/// hooks).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A connected IAM client and what the node said about itself.
pub struct Session {
    client: IamClient,
    _pool: ArbiterPool,
    /// The address dialled.
    pub addr: String,
    /// The id of the node serving the endpoint.
    pub node_id: String,
    /// The unit it belongs to.
    pub unit_id: String,
}

// === impl Session ===

impl Session {
    /// Connect as `args` say, within `args.timeout`, and ask the node who it is.
    pub async fn open(args: &ConnectArgs) -> Result<Session, CtlError> {
        let auth = server_auth(args)?;
        let credentials = client_credentials(args)?;
        let kind = if credentials.is_some() {
            EndpointKind::Protected
        } else {
            EndpointKind::Public
        };
        let options = TlsOptions {
            handshake_timeout: args.timeout,
            ..TlsOptions::default()
        };
        let tls = client_tls(auth, credentials.as_ref(), &options)?;
        let dialer = dialer_for(&args.server)?;
        let pool = ArbiterPool::new(1);
        let link = LinkConfig {
            handshake_timeout: args.timeout,
            request_timeout: REQUEST_TIMEOUT,
            reconnect_backoff_initial: Duration::from_millis(200),
            reconnect_backoff_max: Duration::from_secs(1),
            ..LinkConfig::default()
        };
        let client = IamClient::connect(&pool, dialer, tls, kind, link)?;
        client
            .connected(args.timeout)
            .await
            .map_err(|e| CtlError::Unreachable {
                addr: args.server.clone(),
                timeout: args.timeout,
                detail: e.message,
            })?;
        let mut session = Session {
            client,
            _pool: pool,
            addr: args.server.clone(),
            node_id: String::new(),
            unit_id: String::new(),
        };
        match session
            .public("GetSystemInfo", PublicRequest::GetSystemInfo)
            .await?
        {
            PublicResponse::SystemInfo { node_id, unit_id } => {
                session.node_id = node_id;
                session.unit_id = unit_id;
                Ok(session)
            }
            other => Err(session.unexpected("GetSystemInfo", &session.addr, &other)),
        }
    }

    /// The node `node` names, or the serving node when `None`.
    pub fn target(&self, node: Option<&str>) -> String {
        node.unwrap_or(&self.node_id).to_owned()
    }

    /// A public request; errors name `op` and the serving node.
    pub async fn public(
        &self,
        op: &str,
        request: PublicRequest,
    ) -> Result<PublicResponse, CtlError> {
        self.client
            .public(request)
            .await
            .map_err(|e| CtlError::api(op, self.name(), e))
    }

    /// A protected request for `node`; errors name `op` and `node`.
    pub async fn protected(
        &self,
        op: &str,
        node: &str,
        request: ProtectedRequest,
    ) -> Result<ProtectedResponse, CtlError> {
        self.client
            .protected(request)
            .await
            .map_err(|e| CtlError::api(op, node, e))
    }

    /// The error for an answer of the wrong kind.
    pub fn unexpected(&self, op: &str, node: &str, answer: &impl std::fmt::Debug) -> CtlError {
        CtlError::Unexpected {
            op: op.to_owned(),
            node: node.to_owned(),
            answer: format!("{answer:?}"),
        }
    }

    /// Close the connection.
    pub async fn close(self) {
        self.client.close().await;
    }

    fn name(&self) -> &str {
        if self.node_id.is_empty() {
            &self.addr
        } else {
            &self.node_id
        }
    }
}

/// How the server is authenticated: `--pin`, `--ca`, or both.
fn server_auth(args: &ConnectArgs) -> Result<IamServerAuth, CtlError> {
    let pin = args
        .pin
        .as_deref()
        .map(|p| p.parse::<Fingerprint>())
        .transpose()
        .map_err(|e| CtlError::Usage(format!("--pin: {e}")))?;
    let roots = match &args.ca {
        Some(path) => {
            let (certs, unit) = ca::roots(path)?;
            let store = root_store(&certs).map_err(|e| CtlError::bad_file(path, e.to_string()))?;
            let policy = Policy::roles([Role::Iam]);
            let policy = match unit {
                Some(unit) => policy.with_unit(unit),
                None => policy,
            };
            Some((store, policy))
        }
        None => None,
    };
    match (pin, roots) {
        (Some(pin), Some((roots, policy))) => Ok(IamServerAuth::IdentityOrPinned { roots, policy, pin }),
        (Some(pin), None) => Ok(IamServerAuth::Pinned(pin)),
        (None, Some((roots, policy))) => Ok(IamServerAuth::Identity { roots, policy }),
        (None, None) => Err(CtlError::Usage(
            "give --pin SHA256 (a node not provisioned yet: its log shows the fingerprint) or --ca (a provisioned \
             node's CA) to authenticate the server"
                .to_owned(),
        )),
    }
}

/// The client certificate and key of `--cert`/`--key`, if given.
fn client_credentials(args: &ConnectArgs) -> Result<Option<Credentials>, CtlError> {
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        return Ok(None);
    };
    let text = std::fs::read(cert).map_err(|e| CtlError::read(cert, e))?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CtlError::bad_file(cert, format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(CtlError::bad_file(cert, "holds no PEM CERTIFICATE"));
    }
    let key_text = zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| CtlError::read(key, e))?);
    let der = PrivateKeyDer::from_pem_slice(&key_text)
        .map_err(|e| CtlError::bad_file(key, format!("no PEM private key: {e}")))?;
    let signing = aos_transport::tls::crypto_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| CtlError::bad_file(key, format!("unusable private key: {e}")))?;
    let credentials = Credentials::with(chain, Arc::clone(&signing))
        .map_err(|e| CtlError::bad_file(cert, format!("{e} (with key {})", key.display())))?;
    Ok(Some(credentials))
}
