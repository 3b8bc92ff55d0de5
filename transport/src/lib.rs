//! aos-transport: the secure transport of aos-edge.
//!
//! This crate will hold (milestone M3):
//! - the frame codec: a length prefix plus a bincode envelope {protocol version, channel id, correlation id,
//!   message kind, body}, with an explicit size limit, the only place in the workspace that calls bincode;
//! - links: TCP, Unix domain sockets, the shared-memory vchan ring and (feature `xen`) libxenvchan;
//! - rustls server and client configurations built from token-held keys, peer identity from the
//!   `urn:aos:<unit>:<node>:<role>` SAN, and role-based authorization policies.
#![forbid(unsafe_code)]

pub mod tls;
