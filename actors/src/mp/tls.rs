//! The TLS configurations of the MP link: the main node's server (client certificate optional) and the
//! secondary node's bridge (its `mp` certificate once provisioned, anonymous before).

use std::net::Ipv4Addr;
use std::sync::Arc;

use aos_transport::tls::{
    client_config, server_config, ClientAuth, Credentials, Policy, Role, ServerAuth, TlsOptions,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::ServerName;

use super::MpError;

/// The server side of MP links: presents `credentials` (the main node's `mp` or `iam` certificate), asks
/// bridges for a certificate but lets them in without one (anonymous: open channels only). A presented
/// certificate must chain to `roots` and carry role `mp` of unit `unit`, or the handshake is refused.
pub fn server_tls(
    credentials: &Credentials,
    roots: Arc<RootCertStore>,
    unit: &str,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, MpError> {
    let client_auth = ClientAuth::Optional {
        roots,
        policy: Policy::roles([Role::Mp]).with_unit(unit),
    };
    Ok(server_config(credentials, client_auth, options)?)
}

/// How a bridge runs TLS to the main node.
#[derive(Clone)]
pub struct BridgeTls {
    /// The rustls client configuration ([`BridgeTls::new`] builds it).
    pub config: Arc<ClientConfig>,
    /// The node's `mp` credentials: presented when set (provisioned); watched, and a change makes the bridge
    /// reconnect with a new handshake.
    pub credentials: Credentials,
    /// The name sent as SNI (not checked: the main node is identified by its certificate's identity).
    pub server_name: ServerName<'static>,
}

// === impl BridgeTls ===

impl BridgeTls {
    /// Verifies the main node against `roots` and requires role `mp` or `iam` of unit `unit`; presents
    /// `credentials` once they are set.
    pub fn new(
        credentials: Credentials,
        roots: Arc<RootCertStore>,
        unit: &str,
        options: &TlsOptions,
    ) -> Result<BridgeTls, MpError> {
        let server_auth = ServerAuth::Identity {
            roots,
            policy: Policy::roles([Role::Mp, Role::Iam]).with_unit(unit),
        };
        let config = client_config(server_auth, Some(&credentials), options)?;
        Ok(BridgeTls {
            config,
            credentials,
            server_name: ServerName::try_from("aos-mp")
                .unwrap_or(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into())),
        })
    }
}

impl std::fmt::Debug for BridgeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeTls")
            .field("credentials", &self.credentials)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}
