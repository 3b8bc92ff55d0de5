//! Handshake helpers: a time limit, an acceptance confirmation, and the verified peer identity.
//!
//! In TLS 1.3 the client finishes its side of the handshake before the server has checked the client's
//! certificate, so a refused client only learns it on its first read (DESIGN.md, pitfall 7). Our links
//! therefore confirm acceptance in-band: after its handshake succeeds, [`accept`] writes one byte,
//! [`ACCEPTED_MARKER`], and [`connect`] does not return until it has read that byte. A refused client gets
//! the server's alert from `connect` instead of from its first request. Both steps run under the handshake
//! timeout, so a peer that opens TCP and then stalls cannot hold a slot.

use std::time::Duration;

use rustls::CommonState;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use crate::tls::error::HandshakeError;
use crate::tls::identity::PeerIdentity;
use crate::tls::refusal::{log_refusal, Side};

/// The byte a server writes once it has accepted a client (ASCII ACK).
pub const ACCEPTED_MARKER: u8 = 0x06;

/// Accept a TLS connection on `io` within `timeout`: handshake, then send [`ACCEPTED_MARKER`].
///
/// Returns the stream and the client's identity (`None` on public endpoints, where clients send no
/// certificate). Refusals are logged with their reason; run this inside a span carrying the peer address.
pub async fn accept<IO>(
    acceptor: &TlsAcceptor,
    io: IO,
    timeout: Duration,
) -> Result<(server::TlsStream<IO>, Option<PeerIdentity>), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let mut stream = acceptor.accept(io).await.map_err(HandshakeError::from_io)?;
        stream
            .write_all(&[ACCEPTED_MARKER])
            .await
            .map_err(HandshakeError::from_io)?;
        stream.flush().await.map_err(HandshakeError::from_io)?;
        Ok(stream)
    };
    let stream = finish(Side::Server, timeout, handshake).await?;
    let peer = peer_identity(stream.get_ref().1);
    log_completed(Side::Server, peer.as_ref());
    Ok((stream, peer))
}

/// Open a TLS connection on `io` within `timeout`: handshake, then wait for the server's
/// [`ACCEPTED_MARKER`].
///
/// `server_name` is sent as SNI; whether it is also checked depends on the configuration's `ServerAuth`.
/// Returns the stream and the server's identity (`None` if its certificate carries none, e.g. a cloud
/// server checked by host name).
pub async fn connect<IO>(
    connector: &TlsConnector,
    io: IO,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Result<(client::TlsStream<IO>, Option<PeerIdentity>), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let mut stream = connector
            .connect(server_name, io)
            .await
            .map_err(HandshakeError::from_io)?;
        let mut marker = [0u8; 1];
        stream
            .read_exact(&mut marker)
            .await
            .map_err(HandshakeError::from_io)?;
        if marker[0] != ACCEPTED_MARKER {
            return Err(HandshakeError::UnexpectedMarker(marker[0]));
        }
        Ok(stream)
    };
    let stream = finish(Side::Client, timeout, handshake).await?;
    let peer = peer_identity(stream.get_ref().1);
    log_completed(Side::Client, peer.as_ref());
    Ok((stream, peer))
}

/// Log a completed handshake with the peer's identity (`urn:aos:…`, `-` when it has none).
fn log_completed(side: Side, peer: Option<&PeerIdentity>) {
    tracing::debug!(
        side = side.as_str(),
        peer = %peer.map_or_else(|| "-".to_owned(), ToString::to_string),
        "TLS handshake completed"
    );
}

/// Run `handshake` under `timeout` and log what went wrong, once.
async fn finish<T>(
    side: Side,
    timeout: Duration,
    handshake: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    let result = match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout(timeout)),
    };
    if result.is_ok() {
        super::stats::count_completed();
    }
    if let Err(err) = &result {
        match (err, err.refusal()) {
            // Certificate refusals were logged by the verifier, with the certificate's details.
            (
                HandshakeError::Refused {
                    source: rustls::Error::InvalidCertificate(_),
                    ..
                },
                _,
            ) => {}
            (_, Some(reason)) => log_refusal(side, reason, err),
            (_, None) => tracing::info!(side = ?side, "TLS handshake failed: {err}"),
        }
    }
    result
}

/// The identity in the peer's (already verified) leaf certificate.
fn peer_identity(state: &CommonState) -> Option<PeerIdentity> {
    let leaf = state.peer_certificates()?.first()?;
    PeerIdentity::from_certificate(leaf).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::tls::testutil::{dial, id, EchoServer, Harness, Hsm, Pki};
    use crate::tls::{
        server_config, ClientAuth, Credentials, Policy, RefusalReason, Role, TlsOptions,
    };

    #[tokio::test]
    async fn a_plaintext_client_on_the_tls_port_is_refused() {
        let mut h = Harness::start(Policy::any_role()).await;
        let mut tcp = TcpStream::connect(h.server.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: node.local\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(h.server.next_refusal().await, RefusalReason::NotTls);
        // The server closed the connection; whatever it sent is no HTTP answer.
        let mut reply = Vec::new();
        let _ = tcp.read_to_end(&mut reply).await;
        assert!(!reply.starts_with(b"HTTP"), "{reply:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_sends_nothing_is_cut_off_at_the_handshake_timeout() {
        let hsm = Hsm::new();
        let pki = Pki::new("unit1");
        let key = hsm.key("iam", aos_pkcs11::KeyAlgorithm::EccP256);
        let creds = Credentials::with(
            pki.leaf(&key).identity(id("main", Role::Iam)).issue(),
            Arc::new(key),
        )
        .unwrap();
        let config = server_config(
            &creds,
            ClientAuth::Required {
                roots: pki.roots(),
                policy: Policy::any_role(),
            },
            &TlsOptions::default(),
        )
        .unwrap();
        let timeout = Duration::from_millis(300);
        let mut server = EchoServer::start(config, timeout).await;
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let err = server.next().await.unwrap_err();
        assert!(
            matches!(err, HandshakeError::Timeout(t) if t == timeout),
            "{err:?}"
        );
        assert_eq!(err.refusal(), Some(RefusalReason::HandshakeTimeout));
        // The slot is freed: the server dropped the socket.
        let mut buf = [0u8; 16];
        assert_eq!(silent.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_server_without_credentials_refuses_cleanly_until_they_are_set() {
        let hsm = Hsm::new();
        let pki = Pki::new("unit1");
        let creds = Credentials::new();
        let config = server_config(&creds, ClientAuth::None, &TlsOptions::default()).unwrap();
        let mut server = EchoServer::start(config, Duration::from_secs(10)).await;
        let client = crate::tls::client_config(
            crate::tls::ServerAuth::Identity {
                roots: pki.roots(),
                policy: Policy::roles([Role::Iam]),
            },
            None,
            &TlsOptions::default(),
        )
        .unwrap();

        let err = dial(server.addr, client.clone()).await.unwrap_err();
        assert!(matches!(err, HandshakeError::RefusedByPeer(_)), "{err:?}");
        let server_err = server.next().await.unwrap_err();
        assert!(
            matches!(server_err, HandshakeError::Tls(_)),
            "{server_err:?}"
        );
        assert_eq!(
            server_err.refusal(),
            None,
            "our own failure, not the peer's"
        );

        let key = hsm.key("iam", aos_pkcs11::KeyAlgorithm::EccP256);
        creds
            .set(
                pki.leaf(&key).identity(id("main", Role::Iam)).issue(),
                Arc::new(key),
            )
            .unwrap();
        let (_, peer) = dial(server.addr, client).await.unwrap();
        assert_eq!(peer, Some(id("main", Role::Iam)));
        assert_eq!(server.next().await.unwrap(), None, "public endpoint");
    }

    #[tokio::test]
    async fn a_client_whose_credentials_are_not_ready_is_refused_for_no_certificate() {
        let mut h = Harness::start(Policy::any_role()).await;
        let creds = Credentials::new();
        let (reason, _) = h.refused(Some(&creds)).await;
        assert_eq!(reason, RefusalReason::NoCertificate);
    }

    #[tokio::test]
    async fn the_server_sends_the_acceptance_marker_first() {
        let mut h = Harness::start(Policy::any_role()).await;
        let (_, creds) =
            h.client_creds(|pki, key| pki.leaf(key).identity(id("n1", Role::Sm)).issue());
        // A bare tokio-rustls client, without our `connect`, sees the marker as the first byte.
        let tcp = TcpStream::connect(h.server.addr).await.unwrap();
        let connector = TlsConnector::from(h.client_config(Some(&creds)));
        let name = ServerName::try_from("node.local").unwrap();
        let mut stream = connector.connect(name, tcp).await.unwrap();
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(first[0], ACCEPTED_MARKER);
        assert!(h.server.next().await.is_ok());
    }
}
