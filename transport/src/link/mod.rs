//! Links: the byte streams nodes talk over, before TLS and framing.
//!
//! Every kind of link is a [`BoxedLink`]: a boxed [`LinkStream`], which is any
//! `AsyncRead + AsyncWrite + Send + Unpin` type. TLS and the frame codec sit on top and never know the kind.
//!
//! | kind | address | module |
//! |---|---|---|
//! | TCP (`TCP_NODELAY` set) | `tcp://127.0.0.1:30001` | [`tcp`] |
//! | Unix domain socket | `unix:///run/aos/mp.sock` | [`unix`] |
//! | vchan ring between processes (`/dev/shm`) | `vchan:///dev/shm/aos-mp0` | [`vchan`] |
//! | vchan ring in process (simulator) | `vchan-mem://mp0` | [`vchan`] |
//! | Xen libxenvchan (feature `xen`) | `xen://<domain>:<port>` | `xen` |
//!
//! [`connect`] dials any [`LinkAddr`]; [`Listener::bind`] and [`Listener::accept`] serve one. Decisions are
//! written down in `docs/links.md`.

mod addr;
mod error;
mod listener;
pub mod tcp;
pub mod unix;
pub mod vchan;
#[cfg(feature = "xen")]
pub mod xen;

use tokio::io::{AsyncRead, AsyncWrite};

pub use addr::LinkAddr;
pub use error::LinkError;
pub use listener::{connect, connect_with, Accepted, LinkOptions, Listener};

/// A byte stream a link can carry: implemented for every `AsyncRead + AsyncWrite + Send + Unpin` type.
pub trait LinkStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> LinkStream for T {}

/// Any link as one type. `Box<dyn LinkStream>` is itself `AsyncRead + AsyncWrite + Send + Unpin`.
pub type BoxedLink = Box<dyn LinkStream>;
