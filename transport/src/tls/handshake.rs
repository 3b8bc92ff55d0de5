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
    Ok((stream, peer))
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
