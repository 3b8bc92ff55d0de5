//! Dialers: how a link opens its byte stream, once per connection attempt.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpStream;

use super::BoxedStream;

/// The future a [`Dialer`] returns. It runs on the link's worker arbiter, so it need not be `Send`.
pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<BoxedStream>>>>;

/// Opens a fresh byte stream to the peer; called on every (re)connection attempt.
///
/// The dial runs on the link's worker arbiter, under the handshake timeout. Closures
/// `Fn() -> impl Future<Output = io::Result<BoxedStream>>` are dialers too.
pub trait Dialer: Send + Sync + 'static {
    /// Open one stream.
    fn dial(&self) -> DialFuture;

    /// Where this dialer connects, for logs (e.g. `tcp://10.0.0.2:8089`).
    fn describe(&self) -> String {
        "custom dialer".to_owned()
    }

    /// When the dialer knows that dialing cannot succeed yet and what would change that: a future that
    /// resolves once it is worth dialing again. The link then dials at once instead of waiting out its
    /// backoff. `None` (the default): the backoff decides.
    fn ready(&self) -> Option<ReadyFuture> {
        None
    }
}

/// The future [`Dialer::ready`] returns.
pub type ReadyFuture = Pin<Box<dyn Future<Output = ()>>>;

impl<F, Fut> Dialer for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<BoxedStream>> + 'static,
{
    fn dial(&self) -> DialFuture {
        Box::pin(self())
    }
}

/// Dials a TCP address, with `TCP_NODELAY` set (frames are flushed whole; Nagle would only add latency).
#[derive(Debug, Clone)]
pub struct TcpDialer {
    addr: SocketAddr,
}

// === impl TcpDialer ===

impl TcpDialer {
    /// A dialer for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        TcpDialer { addr }
    }
}

impl Dialer for TcpDialer {
    fn dial(&self) -> DialFuture {
        let addr = self.addr;
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxedStream)
        })
    }

    fn describe(&self) -> String {
        format!("tcp://{}", self.addr)
    }
}

/// Dials any link kind (`tcp://`, `unix://`, `vchan://`, `vchan-mem://`, `xen://`) with
/// `aos_transport::link::connect_with`.
#[derive(Debug, Clone)]
pub struct LinkDialer {
    addr: aos_transport::link::LinkAddr,
    options: aos_transport::link::LinkOptions,
}

// === impl LinkDialer ===

impl LinkDialer {
    /// A dialer for `addr` with default link options.
    pub fn new(addr: aos_transport::link::LinkAddr) -> Self {
        Self::with_options(addr, aos_transport::link::LinkOptions::default())
    }

    /// A dialer for `addr` with `options` (e.g. the vchan ring size).
    pub fn with_options(
        addr: aos_transport::link::LinkAddr,
        options: aos_transport::link::LinkOptions,
    ) -> Self {
        LinkDialer { addr, options }
    }
}

impl Dialer for LinkDialer {
    fn dial(&self) -> DialFuture {
        let (addr, options) = (self.addr.clone(), self.options.clone());
        Box::pin(async move {
            aos_transport::link::connect_with(&addr, &options)
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string()))
        })
    }

    fn describe(&self) -> String {
        self.addr.to_string()
    }
}

/// Dials with `inner` only once `credentials` hold a certificate; until then every attempt fails at once,
/// without touching the network, and the link dials again as soon as a certificate is set (see
/// [`Dialer::ready`]) or its backoff runs out, whichever comes first.
///
/// For clients of mutual-TLS endpoints that start before their node is provisioned (a node's SM): without
/// a certificate they would only be refused, a wasted handshake on both ends and a refusal in the server's
/// log and audit trail for every attempt.
pub struct CredentialGate {
    inner: std::sync::Arc<dyn Dialer>,
    credentials: aos_transport::tls::Credentials,
    cert_type: String,
}

// === impl CredentialGate ===

impl CredentialGate {
    /// Gate `inner` on `credentials`, the certificate of `cert_type` (named in the error).
    pub fn new(
        inner: std::sync::Arc<dyn Dialer>,
        credentials: aos_transport::tls::Credentials,
        cert_type: &str,
    ) -> Self {
        CredentialGate {
            inner,
            credentials,
            cert_type: cert_type.to_owned(),
        }
    }
}

impl Dialer for CredentialGate {
    fn dial(&self) -> DialFuture {
        if self.credentials.is_ready() {
            return self.inner.dial();
        }
        let message = format!(
            "no usable `{}` certificate yet: not dialing a mutual-TLS endpoint without one",
            self.cert_type
        );
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::NotConnected, message)) })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn ready(&self) -> Option<ReadyFuture> {
        if self.credentials.is_ready() {
            return self.inner.ready();
        }
        let mut certificate = self.credentials.subscribe();
        Some(Box::pin(async move {
            // An error means the credentials are gone for good: nothing to wait for, the backoff decides.
            let _ = certificate.wait_for(Option::is_some).await;
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    struct Counting(Arc<AtomicUsize>);

    impl Dialer for Counting {
        fn dial(&self) -> DialFuture {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Err(io::Error::other("counted")) })
        }
    }

    #[tokio::test]
    async fn the_gate_stays_shut_until_a_certificate_arrives() {
        let dials = Arc::new(AtomicUsize::new(0));
        let credentials = aos_transport::tls::Credentials::new();
        let gate =
            CredentialGate::new(Arc::new(Counting(dials.clone())), credentials.clone(), "sm");
        let err = gate.dial().await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert!(err.to_string().contains("usable `sm` certificate"), "{err}");
        assert_eq!(
            dials.load(Ordering::Relaxed),
            0,
            "nothing reached the network"
        );

        let pki = aos_transport::tls::testutil::Pki::new("gate");
        let (pair, key) = aos_transport::tls::testutil::software_key();
        credentials.set(pki.leaf(&pair).issue(), key).unwrap();
        let err = gate.dial().await.err().unwrap();
        assert_eq!(err.to_string(), "counted");
        assert_eq!(dials.load(Ordering::Relaxed), 1);
    }
}
