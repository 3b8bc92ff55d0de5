//! How an IAM client authenticates the server, and the `ClientTls` it dials with.

use std::sync::Arc;

use aos_transport::tls::{
    client_config, crypto_provider, Credentials, Fingerprint, IdentityServerVerifier,
    PinnedServerVerifier, Policy, ServerAuth, TlsOptions,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::ClientError;
use crate::net::ClientTls;

/// The name sent as SNI. aos servers are identified by their certificate's `urn:aos:` identity, never by
/// this name.
pub const IAM_SERVER_NAME: &str = "aos-iam";

/// How a client authenticates an IAM server.
#[derive(Debug, Clone)]
pub enum IamServerAuth {
    /// A provisioned node: its certificate chains to `roots` and `policy` accepts its identity (e.g. role
    /// `iam` of unit `u`).
    Identity {
        /// The unit's CA certificates.
        roots: Arc<RootCertStore>,
        /// Which server identities are accepted.
        policy: Policy,
    },
    /// An unprovisioned node's provisioning certificate, named by its fingerprint.
    Pinned(Fingerprint),
    /// Either of the above: the pinned provisioning certificate while the node has no certificate, its
    /// CA-issued certificate once it has one. For clients that follow a node through its provisioning.
    IdentityOrPinned {
        /// The unit's CA certificates.
        roots: Arc<RootCertStore>,
        /// Which server identities are accepted.
        policy: Policy,
        /// The provisioning certificate's fingerprint.
        pin: Fingerprint,
    },
}

/// The TLS a client dials an IAM endpoint with: the server authenticated as `auth` says, and `credentials`
/// presented when given (required by the protected endpoint; read at each handshake, so renewals apply to
/// new connections).
pub fn client_tls(
    auth: IamServerAuth,
    credentials: Option<&Credentials>,
    options: &TlsOptions,
) -> Result<ClientTls, ClientError> {
    let config = match auth {
        IamServerAuth::Identity { roots, policy } => {
            client_config(ServerAuth::Identity { roots, policy }, credentials, options)?
        }
        IamServerAuth::Pinned(pin) => client_config(ServerAuth::Pinned(pin), credentials, options)?,
        IamServerAuth::IdentityOrPinned { roots, policy, pin } => {
            let provider = crypto_provider();
            let verifier = IdentityOrPinned {
                identity: IdentityServerVerifier::new(roots, policy, provider.clone())?,
                pinned: PinnedServerVerifier::new(pin, provider.clone()),
            };
            let builder = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(options.versions())
                .map_err(aos_transport::tls::TlsError::Versions)?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier));
            let mut config = match credentials {
                Some(credentials) => builder.with_client_cert_resolver(credentials.resolver()),
                None => builder.with_no_client_auth(),
            };
            config.resumption = if options.session_resumption {
                Resumption::default()
            } else {
                Resumption::disabled()
            };
            config.enable_early_data = false;
            Arc::new(config)
        }
    };
    Ok(ClientTls {
        config,
        server_name: ServerName::try_from(IAM_SERVER_NAME).map_err(|_| ClientError::Address {
            addr: IAM_SERVER_NAME.to_owned(),
            reason: "not a valid server name".to_owned(),
        })?,
    })
}

/// Accepts the pinned certificate, or else a certificate the identity verifier accepts.
#[derive(Debug)]
struct IdentityOrPinned {
    identity: IdentityServerVerifier,
    pinned: PinnedServerVerifier,
}

impl ServerCertVerifier for IdentityOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier: &dyn ServerCertVerifier = if self.pinned.pin().matches(end_entity) {
            &self.pinned
        } else {
            &self.identity
        };
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.identity.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.identity.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.identity.supported_verify_schemes()
    }
}
