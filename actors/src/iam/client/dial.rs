//! Dialers for IAM addresses as configured: `host:port`, `ip:port`, or a link URL (`unix://…`).

use std::net::SocketAddr;
use std::sync::Arc;

use aos_transport::link::LinkAddr;
use tokio::net::TcpStream;

use super::ClientError;
use crate::net::{BoxedStream, DialFuture, Dialer, LinkDialer, TcpDialer};

/// A dialer for `addr`: a link URL (`tcp://`, `unix://`, `vchan://`, …; see `LinkAddr`), an `ip:port`, or a
/// `host:port` resolved again at every attempt (so a main node that changes address is found).
pub fn dialer_for(addr: &str) -> Result<Arc<dyn Dialer>, ClientError> {
    let bad = |reason: String| ClientError::Address {
        addr: addr.to_owned(),
        reason,
    };
    if addr.contains("://") {
        let link: LinkAddr = addr
            .parse()
            .map_err(|e: aos_transport::link::LinkError| bad(e.to_string()))?;
        return Ok(Arc::new(LinkDialer::new(link)));
    }
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Ok(Arc::new(TcpDialer::new(socket)));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(Arc::new(HostDialer {
                target: addr.to_owned(),
            }))
        }
        _ => Err(bad(
            "expected host:port, ip:port or a link URL such as unix:///run/aos/iam.sock".to_owned(),
        )),
    }
}

/// Dials `host:port` over TCP, resolving the name at every attempt.
#[derive(Debug, Clone)]
struct HostDialer {
    target: String,
}

impl Dialer for HostDialer {
    fn dial(&self) -> DialFuture {
        let target = self.target.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(target.as_str()).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxedStream)
        })
    }

    fn describe(&self) -> String {
        format!("tcp://{}", self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_pick_their_dialer_and_garbage_is_refused() {
        assert_eq!(
            dialer_for("127.0.0.1:8090").unwrap().describe(),
            "tcp://127.0.0.1:8090"
        );
        assert_eq!(
            dialer_for("main.local:8089").unwrap().describe(),
            "tcp://main.local:8089"
        );
        assert_eq!(
            dialer_for("unix:///run/aos/iam.sock").unwrap().describe(),
            "unix:///run/aos/iam.sock"
        );
        for bad in ["main", "main:port", ":8090", "ftp://x"] {
            assert!(
                matches!(dialer_for(bad), Err(ClientError::Address { .. })),
                "{bad}"
            );
        }
    }
}
