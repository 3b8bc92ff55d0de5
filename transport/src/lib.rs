//! aos-transport: the secure transport of aos-edge.
//!
//! - [`frame`]: the frame codec: a length prefix plus a bincode envelope {protocol version, channel id,
//!   correlation id, message kind, body}, with an explicit size limit, the only place in the workspace that
//!   calls bincode;
//! - [`link`]: byte streams between nodes: TCP, Unix domain sockets, the shared-memory vchan ring and
//!   (feature `xen`) libxenvchan, all behind one boxed trait object;
//! - rustls server and client configurations built from token-held keys, peer identity from the
//!   `urn:aos:<unit>:<node>:<role>` SAN, and role-based authorization policies.
//!
//! `unsafe` is denied crate-wide; only the vchan shared-memory module and the libxenvchan FFI allow it.
#![deny(unsafe_code)]

pub mod frame;
pub mod link;
pub mod tls;
