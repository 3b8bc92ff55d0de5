//! Dialling and serving any [`LinkAddr`].

use tokio::net::TcpListener;

use super::unix::UnixSocketListener;
use super::vchan::{self, MemListener, VchanConfig, VchanListener};
use super::{tcp, unix, BoxedLink, LinkAddr, LinkError};

/// Settings that depend on the link kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkOptions {
    /// vchan ring settings (ring size when listening, liveness interval on both sides).
    pub vchan: VchanConfig,
}

/// A freshly accepted link.
#[non_exhaustive]
pub struct Accepted {
    /// The stream.
    pub link: BoxedLink,
    /// Who is at the other end, for logs: `tcp://<addr>`, `unix peer`, `vchan peer pid <n>`, …
    pub peer: String,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Dials `addr` with default [`LinkOptions`].
pub async fn connect(addr: &LinkAddr) -> Result<BoxedLink, LinkError> {
    connect_with(addr, &LinkOptions::default()).await
}

/// Dials `addr`.
pub async fn connect_with(addr: &LinkAddr, options: &LinkOptions) -> Result<BoxedLink, LinkError> {
    let io_err = |source| LinkError::Connect {
        addr: addr.clone(),
        source,
    };
    Ok(match addr {
        LinkAddr::Tcp(a) => Box::new(tcp::connect(*a).await.map_err(io_err)?),
        LinkAddr::Unix(p) => Box::new(unix::connect(p).await.map_err(io_err)?),
        LinkAddr::VchanShm(p) => Box::new(vchan::connect_shm(p, &options.vchan)?),
        LinkAddr::VchanMem(name) => Box::new(vchan::connect_mem(name)?),
        LinkAddr::Xen { domain, port } => xen_connect(addr, *domain, *port).await?,
    })
}

#[cfg(feature = "xen")]
async fn xen_connect(addr: &LinkAddr, domain: u32, port: u32) -> Result<BoxedLink, LinkError> {
    let link = super::xen::XenVchan::connect(domain, port)
        .await
        .map_err(|e| LinkError::Xen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    Ok(Box::new(link))
}

#[cfg(not(feature = "xen"))]
async fn xen_connect(addr: &LinkAddr, _domain: u32, _port: u32) -> Result<BoxedLink, LinkError> {
    Err(xen_missing(addr))
}

#[cfg(not(feature = "xen"))]
fn xen_missing(addr: &LinkAddr) -> LinkError {
    LinkError::Xen {
        addr: addr.clone(),
        reason: "aos-transport was built without the `xen` feature".into(),
    }
}

/// A bound endpoint of any link kind.
#[derive(Debug)]
pub struct Listener {
    addr: LinkAddr,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix(UnixSocketListener),
    VchanShm(VchanListener),
    VchanMem(MemListener),
    #[cfg(feature = "xen")]
    Xen(super::xen::XenListener),
}

impl Listener {
    /// Binds `addr` with default [`LinkOptions`].
    pub async fn bind(addr: &LinkAddr) -> Result<Listener, LinkError> {
        Listener::bind_with(addr, &LinkOptions::default()).await
    }

    /// Binds `addr`. For TCP, port 0 picks a free port; [`Listener::local_addr`] tells which.
    pub async fn bind_with(addr: &LinkAddr, options: &LinkOptions) -> Result<Listener, LinkError> {
        let io_err = |source| LinkError::Bind {
            addr: addr.clone(),
            source,
        };
        let (addr, kind) = match addr {
            LinkAddr::Tcp(a) => {
                let l = TcpListener::bind(a).await.map_err(io_err)?;
                (LinkAddr::Tcp(l.local_addr().map_err(io_err)?), Kind::Tcp(l))
            }
            LinkAddr::Unix(p) => (
                addr.clone(),
                Kind::Unix(UnixSocketListener::bind(p).await.map_err(io_err)?),
            ),
            LinkAddr::VchanShm(p) => (
                addr.clone(),
                Kind::VchanShm(VchanListener::bind(p.clone(), &options.vchan)?),
            ),
            LinkAddr::VchanMem(n) => (
                addr.clone(),
                Kind::VchanMem(MemListener::bind(n, &options.vchan)?),
            ),
            #[cfg(feature = "xen")]
            LinkAddr::Xen { domain, port } => (
                addr.clone(),
                Kind::Xen(super::xen::XenListener::new(*domain, *port)),
            ),
            #[cfg(not(feature = "xen"))]
            LinkAddr::Xen { .. } => return Err(xen_missing(addr)),
        };
        Ok(Listener { addr, kind })
    }

    /// The bound address (with the actual port for TCP port 0).
    pub fn local_addr(&self) -> &LinkAddr {
        &self.addr
    }

    /// Waits for the next peer.
    pub async fn accept(&mut self) -> Result<Accepted, LinkError> {
        let addr = &self.addr;
        let io_err = |source| LinkError::Accept {
            addr: addr.clone(),
            source,
        };
        Ok(match &mut self.kind {
            Kind::Tcp(l) => {
                let (s, peer) = tcp::accept(l).await.map_err(io_err)?;
                Accepted {
                    link: Box::new(s),
                    peer: format!("tcp://{peer}"),
                }
            }
            Kind::Unix(l) => {
                let s = l.accept().await.map_err(io_err)?;
                let peer = match s.peer_cred() {
                    Ok(c) => format!("unix peer pid {:?} uid {}", c.pid(), c.uid()),
                    Err(_) => "unix peer".to_owned(),
                };
                Accepted {
                    link: Box::new(s),
                    peer,
                }
            }
            Kind::VchanShm(l) => {
                let s = l.accept().await?;
                let peer = format!("vchan peer pid {}", s.peer_pid().unwrap_or(0));
                Accepted {
                    link: Box::new(s),
                    peer,
                }
            }
            Kind::VchanMem(l) => {
                let s = l.accept().await?;
                Accepted {
                    link: Box::new(s),
                    peer: format!("vchan-mem://{} client", l.name()),
                }
            }
            #[cfg(feature = "xen")]
            Kind::Xen(l) => {
                let s = l.accept().await.map_err(|e| LinkError::Xen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
                Accepted {
                    link: Box::new(s),
                    peer: format!("xen domain {}", l.domain()),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Channel, Envelope, FrameCodec, MessageKind};
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    /// Frames echoed over a boxed link of each kind, dialled and served through the generic API.
    async fn echo_frames_over(addr: LinkAddr) {
        let mut listener = Listener::bind(&addr).await.unwrap();
        let bound = listener.local_addr().clone();
        let server = tokio::spawn(async move {
            let accepted = listener.accept().await.unwrap();
            assert!(!accepted.peer.is_empty());
            let mut framed = Framed::new(accepted.link, FrameCodec::default());
            while let Some(env) = framed.next().await {
                let mut env = env.unwrap();
                env.kind = MessageKind::Response;
                framed.send(env).await.unwrap();
            }
        });
        let link: BoxedLink = connect(&bound).await.unwrap();
        let mut framed = Framed::new(link, FrameCodec::default());
        for i in 0..50u64 {
            let body = vec![i as u8; (i as usize) * 997];
            framed
                .send(Envelope::new(
                    Channel::IamSecure,
                    i,
                    MessageKind::Request,
                    body.clone(),
                ))
                .await
                .unwrap();
            let back = framed.next().await.unwrap().unwrap();
            assert_eq!(
                (back.correlation, back.kind, back.body),
                (i, MessageKind::Response, bytes::Bytes::from(body)),
                "{bound}"
            );
        }
        drop(framed);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn frames_travel_over_every_link_kind() {
        let dir = tempfile::tempdir().unwrap();
        echo_frames_over("tcp://127.0.0.1:0".parse().unwrap()).await;
        echo_frames_over(LinkAddr::Unix(dir.path().join("mp.sock"))).await;
        echo_frames_over(LinkAddr::VchanShm(dir.path().join("vchan-mp0"))).await;
        echo_frames_over(LinkAddr::VchanMem(format!(
            "listener-test-{}",
            std::process::id()
        )))
        .await;
    }

    #[tokio::test]
    async fn tcp_port_zero_reports_the_real_port_and_refused_dials_name_the_address() {
        let listener = Listener::bind(&"tcp://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let LinkAddr::Tcp(a) = listener.local_addr() else {
            panic!("not tcp")
        };
        assert_ne!(a.port(), 0);
        let addr = listener.local_addr().clone();
        drop(listener);
        let err = connect(&addr).await.err().unwrap();
        assert!(matches!(err, LinkError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&addr.to_string()));
    }

    #[cfg(not(feature = "xen"))]
    #[tokio::test]
    async fn xen_without_the_feature_is_a_clear_error() {
        let addr: LinkAddr = "xen://0:1".parse().unwrap();
        let err = connect(&addr).await.err().unwrap();
        assert!(
            err.to_string().contains("without the `xen` feature"),
            "{err}"
        );
        assert!(Listener::bind(&addr).await.is_err());
    }
}
