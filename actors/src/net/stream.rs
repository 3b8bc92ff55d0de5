//! The byte stream under a link: anything `AsyncRead + AsyncWrite + Send + Unpin`, boxed. The types are
//! `aos_transport::link`'s, so every link kind (TCP, Unix socket, vchan ring, Xen vchan) plugs in as is.

pub use aos_transport::link::{BoxedLink as BoxedStream, LinkStream};
