//! Test fixtures: SoftHSM token keys, a test CA issuing identity certificates, loopback echo servers.
//!
//! Compiled for this crate's tests and, with feature `testkit`, for other crates' tests and benchmarks.
//! Fixtures panic on failure, like the `aos_pkcs11::testkit` they build on.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aos_pkcs11::testkit::{SoftHsm, TestCa};
use aos_pkcs11::{KeyAlgorithm, Token, TokenKey};
use rcgen::{ExtendedKeyUsagePurpose, PublicKeyData, SanType, SerialNumber};
use rustls::sign::SigningKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{client, TlsAcceptor, TlsConnector};

use crate::tls::{accept, connect, root_store, HandshakeError, PeerIdentity, Role};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A SoftHSM with one token holding the test's keys.
pub struct Hsm {
    _hsm: SoftHsm,
    token: Arc<Token>,
}

impl Hsm {
    pub fn new() -> Hsm {
        let hsm = SoftHsm::new();
        let token = hsm.token("tls");
        Hsm { _hsm: hsm, token }
    }

    pub fn key(&self, label: &str, algorithm: KeyAlgorithm) -> TokenKey {
        let pair = self.token.generate_key_pair(label, algorithm).unwrap();
        TokenKey::new(self.token.clone(), pair).unwrap()
    }
}

impl Default for Hsm {
    fn default() -> Self {
        Hsm::new()
    }
}

/// A software P-256 key, as rcgen key (to issue certificates) and as rustls key (to sign handshakes).
pub fn software_key() -> (rcgen::KeyPair, Arc<dyn SigningKey>) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(pair.serialized_der().to_vec().into());
    let signing = crate::tls::crypto_provider()
        .key_provider
        .load_private_key(der)
        .unwrap();
    (pair, signing)
}

pub fn id(node: &str, role: Role) -> PeerIdentity {
    PeerIdentity::new("unit1", node, role).unwrap()
}

/// A test CA (root + intermediate).
pub struct Pki {
    pub ca: TestCa,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        Pki {
            ca: TestCa::new(name),
        }
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        root_store(&[self.ca.root.der().clone()]).unwrap()
    }

    pub fn leaf<'a, K: PublicKeyData>(&'a self, key: &'a K) -> Leaf<'a, K> {
        Leaf {
            pki: self,
            key,
            identity: None,
            eku: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            serial: 1,
            validity: None,
        }
    }
}

/// A leaf certificate to issue.
pub struct Leaf<'a, K> {
    pki: &'a Pki,
    key: &'a K,
    identity: Option<PeerIdentity>,
    eku: Vec<ExtendedKeyUsagePurpose>,
    serial: u64,
    validity: Option<(i32, i32)>,
}

impl<K: PublicKeyData> Leaf<'_, K> {
    pub fn identity(mut self, identity: PeerIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    pub fn eku(mut self, eku: Vec<ExtendedKeyUsagePurpose>) -> Self {
        self.eku = eku;
        self
    }

    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = serial;
        self
    }

    /// Valid from 1 January of `from` to 1 January of `to`.
    pub fn years(mut self, from: i32, to: i32) -> Self {
        self.validity = Some((from, to));
        self
    }

    pub fn params(&self) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::new(vec!["node.local".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test leaf");
        if let Some(identity) = &self.identity {
            params
                .subject_alt_names
                .push(SanType::URI(identity.uri().try_into().unwrap()));
        }
        params.extended_key_usages = self.eku.clone();
        params.serial_number = Some(SerialNumber::from(self.serial));
        if let Some((from, to)) = self.validity {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        params
    }

    /// The chain leaf, intermediate, root.
    pub fn issue(self) -> Vec<CertificateDer<'static>> {
        let pem = self.pki.ca.issue_with(self.key, self.params());
        aos_pkcs11::certs::parse_pem_chain(pem.as_bytes()).unwrap()
    }
}

/// What a test server reports per connection: the handshake result.
pub type Accepted = Result<Option<PeerIdentity>, HandshakeError>;

/// A loopback TLS echo server: each accepted connection reports its handshake result, then echoes.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub results: mpsc::UnboundedReceiver<Accepted>,
}

impl EchoServer {
    pub async fn start(config: Arc<ServerConfig>, timeout: Duration) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, results) = mpsc::unbounded_channel();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match accept(&acceptor, tcp, timeout).await {
                        Ok((mut stream, peer)) => {
                            let _ = tx.send(Ok(peer));
                            let mut buf = vec![0u8; 4096];
                            loop {
                                match stream.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if stream.write_all(&buf[..n]).await.is_err()
                                            || stream.flush().await.is_err()
                                        {
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                        Err(err) => {
                            let _ = tx.send(Err(err));
                        }
                    }
                });
            }
        });
        EchoServer { addr, results }
    }

    /// The handshake result of the next connection.
    pub async fn next(&mut self) -> Accepted {
        self.results.recv().await.expect("server task alive")
    }

    /// The refusal reason of the next connection, which must have been refused.
    pub async fn next_refusal(&mut self) -> crate::tls::RefusalReason {
        match self.next().await {
            Ok(peer) => panic!("server accepted {peer:?}"),
            Err(err) => err
                .refusal()
                .unwrap_or_else(|| panic!("not a refusal: {err:?}")),
        }
    }
}

pub type Client = client::TlsStream<TcpStream>;

/// Dial `addr` over TCP and run [`connect`].
pub async fn dial(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<(Client, Option<PeerIdentity>), HandshakeError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("node.local").unwrap();
    connect(&TlsConnector::from(config), tcp, name, TIMEOUT).await
}

/// Send `message` and read as many bytes back.
pub async fn echo(stream: &mut Client, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    stream.flush().await.unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    back
}

/// The serial number of the peer's leaf certificate, as x509-parser prints it.
pub fn peer_serial(stream: &Client) -> String {
    use x509_parser::prelude::FromDer;
    let leaf = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()).unwrap();
    cert.raw_serial_as_string()
}

/// A unit CA, a token, and an mTLS echo server presenting an `iam` identity of node `main`.
pub struct Harness {
    pub hsm: Hsm,
    pub pki: Pki,
    pub server_key: TokenKey,
    pub server_creds: crate::tls::Credentials,
    pub server: EchoServer,
}

impl Harness {
    /// A server (P-256 token key) accepting clients that `policy` accepts.
    pub async fn start(policy: crate::tls::Policy) -> Harness {
        Harness::start_with(
            KeyAlgorithm::EccP256,
            policy,
            crate::tls::TlsOptions::default(),
        )
        .await
    }

    pub async fn start_with(
        algorithm: KeyAlgorithm,
        policy: crate::tls::Policy,
        options: crate::tls::TlsOptions,
    ) -> Harness {
        let hsm = Hsm::new();
        let pki = Pki::new("unit1");
        let server_key = hsm.key("iam", algorithm);
        let chain = pki
            .leaf(&server_key)
            .identity(id("main", Role::Iam))
            .issue();
        let server_creds =
            crate::tls::Credentials::with(chain, Arc::new(server_key.clone())).unwrap();
        let config = crate::tls::server_config(
            &server_creds,
            crate::tls::ClientAuth::Required {
                roots: pki.roots(),
                policy,
            },
            &options,
        )
        .unwrap();
        let server = EchoServer::start(config, TIMEOUT).await;
        Harness {
            hsm,
            pki,
            server_key,
            server_creds,
            server,
        }
    }

    /// Client credentials on a new P-256 token key, with the certificate `leaf` makes.
    pub fn client_creds(
        &self,
        leaf: impl FnOnce(&Pki, &TokenKey) -> Vec<CertificateDer<'static>>,
    ) -> (TokenKey, crate::tls::Credentials) {
        let key = self.hsm.key("client", KeyAlgorithm::EccP256);
        let chain = leaf(&self.pki, &key);
        let creds = crate::tls::Credentials::with(chain, Arc::new(key.clone())).unwrap();
        (key, creds)
    }

    /// A client configuration trusting the unit CA and requiring the server to be `iam` of node `main`.
    pub fn client_config(&self, creds: Option<&crate::tls::Credentials>) -> Arc<ClientConfig> {
        crate::tls::client_config(
            crate::tls::ServerAuth::Identity {
                roots: self.pki.roots(),
                policy: crate::tls::Policy::roles([Role::Iam]).with_node("main"),
            },
            creds,
            &crate::tls::TlsOptions::default(),
        )
        .unwrap()
    }

    /// Connect with `creds`, expect a refusal by the server: its reason, and what the client saw.
    pub async fn refused(
        &mut self,
        creds: Option<&crate::tls::Credentials>,
    ) -> (crate::tls::RefusalReason, HandshakeError) {
        let client = dial(self.server.addr, self.client_config(creds)).await;
        let reason = self.server.next_refusal().await;
        match client {
            Ok((_, peer)) => panic!("client believes it was accepted by {peer:?}"),
            Err(err) => (reason, err),
        }
    }
}
