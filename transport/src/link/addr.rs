//! [`LinkAddr`]: where a link goes, as a URL-like string.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::LinkError;

/// The address of a link endpoint.
///
/// | form | kind |
/// |---|---|
/// | `tcp://127.0.0.1:30001`, `tcp://[::1]:30001` | TCP (IP literal and port; no host names) |
/// | `unix:///run/aos/mp.sock` | Unix domain socket (absolute path) |
/// | `vchan:///dev/shm/aos-mp0` | vchan ring in a shared-memory file (absolute path) |
/// | `vchan-mem://mp0` | in-process vchan ring registered under a name |
/// | `xen://<domain>:<port>` | Xen libxenvchan (feature `xen`); domain = the peer's domain id |
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkAddr {
    /// TCP.
    Tcp(SocketAddr),
    /// Unix domain socket at this path.
    Unix(PathBuf),
    /// Cross-process vchan ring through this file (normally under `/dev/shm`).
    VchanShm(PathBuf),
    /// In-process vchan ring with this name.
    VchanMem(String),
    /// Xen libxenvchan.
    Xen {
        /// The peer's domain id (the client's when listening, the server's when connecting).
        domain: u32,
        /// Port number; the xenstore path is `data/aos/vchan/<port>` under the server's domain.
        port: u32,
    },
}

impl fmt::Display for LinkAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkAddr::Tcp(a) => write!(f, "tcp://{a}"),
            LinkAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            LinkAddr::VchanShm(p) => write!(f, "vchan://{}", p.display()),
            LinkAddr::VchanMem(n) => write!(f, "vchan-mem://{n}"),
            LinkAddr::Xen { domain, port } => write!(f, "xen://{domain}:{port}"),
        }
    }
}

impl FromStr for LinkAddr {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<LinkAddr, LinkError> {
        let bad = |reason: &str| LinkError::InvalidAddr {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            bad("expected <scheme>://…, with scheme tcp, unix, vchan, vchan-mem or xen")
        })?;
        match scheme {
            "tcp" => rest.parse().map(LinkAddr::Tcp).map_err(|_| {
                bad("expected tcp://<ip>:<port>, e.g. tcp://127.0.0.1:30001 or tcp://[::1]:30001")
            }),
            "unix" | "vchan" => {
                if !rest.starts_with('/') {
                    return Err(bad(
                        "expected an absolute path after the scheme, e.g. unix:///run/aos/mp.sock",
                    ));
                }
                let path = PathBuf::from(rest);
                Ok(if scheme == "unix" {
                    LinkAddr::Unix(path)
                } else {
                    LinkAddr::VchanShm(path)
                })
            }
            "vchan-mem" => {
                if rest.is_empty() || rest.contains('/') {
                    return Err(bad(
                        "expected vchan-mem://<name> with a non-empty name without '/'",
                    ));
                }
                Ok(LinkAddr::VchanMem(rest.to_owned()))
            }
            "xen" => {
                let parsed = rest
                    .split_once(':')
                    .and_then(|(d, p)| Some((d.parse().ok()?, p.parse().ok()?)));
                let (domain, port) = parsed
                    .ok_or_else(|| bad("expected xen://<domain id>:<port>, e.g. xen://0:1"))?;
                Ok(LinkAddr::Xen { domain, port })
            }
            _ => Err(bad(
                "unknown scheme; use tcp, unix, vchan, vchan-mem or xen",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_and_displays_back() {
        for s in [
            "tcp://127.0.0.1:30001",
            "tcp://[::1]:8089",
            "unix:///run/aos/mp.sock",
            "vchan:///dev/shm/aos-mp0",
            "vchan-mem://node-2",
            "xen://3:1",
        ] {
            let a: LinkAddr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            "vchan:///dev/shm/aos-mp0".parse::<LinkAddr>().unwrap(),
            LinkAddr::VchanShm("/dev/shm/aos-mp0".into())
        );
        assert_eq!(
            "xen://7:42".parse::<LinkAddr>().unwrap(),
            LinkAddr::Xen {
                domain: 7,
                port: 42
            }
        );
    }

    #[test]
    fn bad_addresses_say_what_is_expected() {
        for (s, hint) in [
            ("127.0.0.1:1", "scheme"),
            ("tcp://localhost:1", "tcp://<ip>:<port>"),
            ("tcp://127.0.0.1", "tcp://<ip>:<port>"),
            ("unix://relative.sock", "absolute path"),
            ("vchan://dev/shm/x", "absolute path"),
            ("vchan-mem://", "non-empty"),
            ("xen://a:1", "xen://<domain id>:<port>"),
            ("http://x", "unknown scheme"),
        ] {
            let err = s.parse::<LinkAddr>().unwrap_err();
            assert!(err.to_string().contains(hint), "{s}: {err}");
        }
    }
}
