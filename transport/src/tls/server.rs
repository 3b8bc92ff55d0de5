//! rustls server configurations for aos endpoints.

use std::sync::Arc;

use rustls::server::NoServerSessionStorage;
use rustls::{RootCertStore, ServerConfig};

use crate::tls::credentials::Credentials;
use crate::tls::crypto_provider;
use crate::tls::error::TlsError;
use crate::tls::options::TlsOptions;
use crate::tls::policy::Policy;
use crate::tls::verifier::IdentityClientVerifier;

/// Whether an endpoint requires client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Protected endpoint (mTLS): a client certificate chaining to `roots` whose identity `policy` accepts.
    Required {
        /// CA roots client certificates must chain to.
        roots: Arc<RootCertStore>,
        /// Which identities are accepted.
        policy: Policy,
    },
    /// Client certificate optional (e.g. the MP link of a secondary node, which is anonymous until the node
    /// is provisioned): a client without one is accepted as anonymous (its identity is `None`); a
    /// certificate that is presented must chain to `roots` and pass `policy`, or the handshake is refused.
    Optional {
        /// CA roots presented client certificates must chain to.
        roots: Arc<RootCertStore>,
        /// Which identities are accepted when a certificate is presented.
        policy: Policy,
    },
    /// Public endpoint: only the server authenticates.
    None,
}

/// A server configuration presenting `credentials` (resolved at each handshake, so renewals apply to new
/// connections) and authenticating clients as `client_auth` says.
///
/// With `options.session_resumption` off, the server keeps no session cache and sends no tickets, so every
/// handshake is a full one. With it on, it keeps an in-memory cache of 256 sessions and sends stateless
/// tickets (aws-lc-rs ticketer); a resumed session carries the client's original, verified certificate.
pub fn server_config(
    credentials: &Credentials,
    client_auth: ClientAuth,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(options.versions())
        .map_err(TlsError::Versions)?;
    let builder = match client_auth {
        ClientAuth::Required { roots, policy } => builder.with_client_cert_verifier(Arc::new(
            IdentityClientVerifier::new(roots, policy, provider)?,
        )),
        ClientAuth::Optional { roots, policy } => builder.with_client_cert_verifier(Arc::new(
            IdentityClientVerifier::optional(roots, policy, provider)?,
        )),
        ClientAuth::None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(credentials.resolver());
    if options.session_resumption {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Ticketer)?;
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::{Command, Stdio};

    use aos_pkcs11::KeyAlgorithm;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::{ClientConfig, HandshakeKind, ProtocolVersion};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::tls::testutil::{dial, echo, id, Harness, Hsm, Pki, TIMEOUT};
    use crate::tls::{
        accept, HandshakeError, IdentityServerVerifier, RefusalReason, Role, ACCEPTED_MARKER,
    };

    /// Run `openssl s_client` against `port`, feeding it `hello\n`; returns (exit ok, stdout, stderr).
    fn s_client(port: u16, dir: &Path, with_cert: bool) -> (bool, Vec<u8>, String) {
        let mut cmd = Command::new("/usr/bin/openssl");
        cmd.args(["s_client", "-quiet", "-tls1_3", "-verify_return_error"])
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(dir.join("root.pem"));
        if with_cert {
            cmd.arg("-cert")
                .arg(dir.join("leaf.pem"))
                .arg("-cert_chain")
                .arg(dir.join("intermediate.pem"))
                .arg("-key")
                .arg(dir.join("key.pem"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl is installed at /usr/bin/openssl");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"hello\n").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[tokio::test]
    async fn openssl_s_client_is_accepted_with_a_good_certificate_and_refused_without() {
        let hsm = Hsm::new();
        let pki = Pki::new("unit1");
        let key = hsm.key("iam", KeyAlgorithm::EccP384);
        let creds = Credentials::with(
            pki.leaf(&key).identity(id("main", Role::Iam)).issue(),
            Arc::new(key),
        )
        .unwrap();
        let config = server_config(
            &creds,
            ClientAuth::Required {
                roots: pki.roots(),
                policy: Policy::roles([Role::Sm]),
            },
            &TlsOptions::default(),
        )
        .unwrap();

        // Files for the outside client: a software key and its certificate chain, and the unit root.
        let dir = tempfile::tempdir().unwrap();
        let (client_key, _) = crate::tls::testutil::software_key();
        let chain = pki.leaf(&client_key).identity(id("n1", Role::Sm)).issue();
        std::fs::write(dir.path().join("key.pem"), client_key.serialize_pem()).unwrap();
        std::fs::write(
            dir.path().join("leaf.pem"),
            aos_pkcs11::certs::to_pem_chain(&chain[..1]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("intermediate.pem"),
            aos_pkcs11::certs::to_pem_chain(&chain[1..2]),
        )
        .unwrap();
        std::fs::write(dir.path().join("root.pem"), pki.ca.root.pem()).unwrap();

        // A line-echo server that closes after one line, so s_client exits.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mut results) = mpsc::unbounded_channel();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                match accept(&acceptor, tcp, TIMEOUT).await {
                    Ok((stream, peer)) => {
                        let mut stream = BufReader::new(stream);
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let stream = stream.get_mut();
                        stream
                            .write_all(format!("echo:{line}").as_bytes())
                            .await
                            .unwrap();
                        stream.shutdown().await.unwrap();
                        tx.send(Ok(peer)).unwrap();
                    }
                    Err(err) => tx.send(Err(err)).unwrap(),
                }
            }
        });

        let path = dir.path().to_owned();
        let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || s_client(port, &path, true))
            .await
            .unwrap();
        assert_eq!(
            results.recv().await.unwrap().unwrap(),
            Some(id("n1", Role::Sm))
        );
        assert!(ok, "s_client failed: {stderr}");
        assert_eq!(stdout.first(), Some(&ACCEPTED_MARKER), "{stdout:?}");
        assert_eq!(&stdout[1..], b"echo:hello\n", "{stderr}");

        let path = dir.path().to_owned();
        let (_, stdout, stderr) = tokio::task::spawn_blocking(move || s_client(port, &path, false))
            .await
            .unwrap();
        let err = results.recv().await.unwrap().unwrap_err();
        assert_eq!(err.refusal(), Some(RefusalReason::NoCertificate), "{err:?}");
        assert!(
            !String::from_utf8_lossy(&stdout).contains("echo:"),
            "{stdout:?}"
        );
        assert!(stderr.contains("certificate required"), "{stderr}");
    }

    /// Two connections from one client configuration; returns the handshake kinds and how many signatures
    /// each token key made.
    async fn two_connections(resumption: bool) -> (Vec<HandshakeKind>, u64, u64) {
        let options = TlsOptions {
            session_resumption: resumption,
            ..TlsOptions::default()
        };
        let mut h = Harness::start_with(KeyAlgorithm::EccP256, Policy::any_role(), options).await;
        let (client_key, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Sm)).issue());
        let client = crate::tls::client_config(
            crate::tls::ServerAuth::Identity {
                roots: h.pki.roots(),
                policy: Policy::roles([Role::Iam]),
            },
            Some(&creds),
            &options,
        )
        .unwrap();
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let (mut stream, peer) = dial(h.server.addr, client.clone()).await.unwrap();
            assert_eq!(peer, Some(id("main", Role::Iam)));
            assert_eq!(h.server.next().await.unwrap(), Some(id("n1", Role::Sm)));
            assert_eq!(echo(&mut stream, b"x").await, b"x");
            kinds.push(stream.get_ref().1.handshake_kind().unwrap());
        }
        (kinds, h.server_key.sign_count(), client_key.sign_count())
    }

    #[tokio::test]
    async fn without_resumption_every_connection_is_a_full_handshake_signed_by_the_tokens() {
        let (kinds, server_signs, client_signs) = two_connections(false).await;
        assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Full]);
        assert_eq!(server_signs, 2);
        assert_eq!(client_signs, 2);
    }

    #[tokio::test]
    async fn with_resumption_the_second_connection_resumes_without_signing() {
        let (kinds, server_signs, client_signs) = two_connections(true).await;
        assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed]);
        assert_eq!(server_signs, 1);
        assert_eq!(client_signs, 1);
    }

    /// An echo server (P-256 `mp` identity of node `main`) whose client certificate is optional, accepting
    /// presented certificates of role `mp` in unit `unit1`; and a client configuration factory for it.
    struct OptionalServer {
        hsm: crate::tls::testutil::Hsm,
        pki: Pki,
        server: crate::tls::testutil::EchoServer,
    }

    impl OptionalServer {
        async fn start() -> OptionalServer {
            let hsm = Hsm::new();
            let pki = Pki::new("unit1");
            let key = hsm.key("mp-main", KeyAlgorithm::EccP256);
            let creds = Credentials::with(
                pki.leaf(&key).identity(id("main", Role::Mp)).issue(),
                Arc::new(key),
            )
            .unwrap();
            let config = server_config(
                &creds,
                ClientAuth::Optional {
                    roots: pki.roots(),
                    policy: Policy::roles([Role::Mp]).with_unit("unit1"),
                },
                &TlsOptions::default(),
            )
            .unwrap();
            let server = crate::tls::testutil::EchoServer::start(config, TIMEOUT).await;
            OptionalServer { hsm, pki, server }
        }

        fn client(&self, creds: Option<&Credentials>) -> Arc<ClientConfig> {
            crate::tls::client_config(
                crate::tls::ServerAuth::Identity {
                    roots: self.pki.roots(),
                    policy: Policy::roles([Role::Mp]),
                },
                creds,
                &TlsOptions::default(),
            )
            .unwrap()
        }

        /// Credentials on a new token key for a certificate `issuer` issues with `identity`.
        fn creds(&self, issuer: &Pki, identity: crate::tls::PeerIdentity) -> Credentials {
            let key = self.hsm.key("client", KeyAlgorithm::EccP256);
            let chain = issuer.leaf(&key).identity(identity).issue();
            Credentials::with(chain, Arc::new(key)).unwrap()
        }
    }

    #[tokio::test]
    async fn optional_client_auth_accepts_anonymous_clients_and_good_certificates() {
        let mut s = OptionalServer::start().await;
        // No client credentials at all, and credentials that are not set yet: both anonymous.
        for creds in [None, Some(Credentials::new())] {
            let (mut stream, server_id) =
                dial(s.server.addr, s.client(creds.as_ref())).await.unwrap();
            assert_eq!(server_id, Some(id("main", Role::Mp)));
            assert_eq!(s.server.next().await.unwrap(), None, "anonymous");
            assert_eq!(echo(&mut stream, b"anon").await, b"anon");
        }
        // A certificate the policy accepts: the server sees its identity.
        let creds = s.creds(&s.pki, id("n1", Role::Mp));
        let (mut stream, _) = dial(s.server.addr, s.client(Some(&creds))).await.unwrap();
        assert_eq!(s.server.next().await.unwrap(), Some(id("n1", Role::Mp)));
        assert_eq!(echo(&mut stream, b"mp").await, b"mp");
    }

    #[tokio::test]
    async fn optional_client_auth_refuses_a_presented_certificate_that_fails() {
        let mut s = OptionalServer::start().await;
        let foreign = Pki::new("foreign");
        let cases = [
            (
                s.creds(&foreign, id("n1", Role::Mp)),
                RefusalReason::UnknownIssuer,
            ),
            (
                s.creds(&s.pki, id("n1", Role::Sm)),
                RefusalReason::RoleNotAccepted,
            ),
            (
                s.creds(
                    &s.pki,
                    crate::tls::PeerIdentity::new("unit2", "n1", Role::Mp).unwrap(),
                ),
                RefusalReason::UnitNotAccepted,
            ),
        ];
        for (creds, expected) in cases {
            let client = dial(s.server.addr, s.client(Some(&creds))).await;
            assert_eq!(s.server.next_refusal().await, expected);
            let err = client.expect_err("a refused certificate is not downgraded to anonymous");
            assert!(matches!(err, HandshakeError::RefusedByPeer(_)), "{err:?}");
        }
    }

    fn tls12_only_client(h: &Harness, creds: &Credentials) -> Arc<ClientConfig> {
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(
            IdentityServerVerifier::new(
                h.pki.roots(),
                Policy::roles([Role::Iam]),
                crate::tls::crypto_provider(),
            )
            .unwrap(),
        );
        let config = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(creds.resolver());
        Arc::new(config)
    }

    #[tokio::test]
    async fn tls12_is_refused_by_default() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (_, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Sm)).issue());
        let err = dial(h.server.addr, tls12_only_client(&h, &creds))
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::RefusedByPeer(_)), "{err:?}");
        assert_eq!(h.server.next_refusal().await, RefusalReason::Protocol);
    }

    #[tokio::test]
    async fn tls12_works_when_allowed_and_still_checks_the_identity() {
        let options = TlsOptions {
            allow_tls12: true,
            ..TlsOptions::default()
        };
        let mut h =
            Harness::start_with(KeyAlgorithm::EccP384, Policy::roles([Role::Sm]), options).await;
        let (_, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Sm)).issue());
        let (mut stream, peer) = dial(h.server.addr, tls12_only_client(&h, &creds))
            .await
            .unwrap();
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(ProtocolVersion::TLSv1_2)
        );
        assert_eq!(peer, Some(id("main", Role::Iam)));
        assert_eq!(h.server.next().await.unwrap(), Some(id("n1", Role::Sm)));
        assert_eq!(echo(&mut stream, b"v1.2").await, b"v1.2");

        let (_, wrong) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Cm)).issue());
        let err = dial(h.server.addr, tls12_only_client(&h, &wrong))
            .await
            .unwrap_err();
        // In TLS 1.2 the server checks the client before its Finished: the client sees the alert in the
        // handshake itself.
        assert!(matches!(err, HandshakeError::RefusedByPeer(_)), "{err:?}");
        assert_eq!(
            h.server.next_refusal().await,
            RefusalReason::RoleNotAccepted
        );
    }
}
