//! aos-actors: the actix actors that make up one aos-edge node.
//!
//! This crate will hold (milestones M2–M4):
//! - `iam`: cert modules and handler, provisioner, cert validator with renewal, permission handler;
//! - `net`: the transport actor owning one TLS connection with multiplexed channels;
//! - `cm`, `sm`, `mp`: communication manager, service manager and the message-proxy bridge;
//! - the wire API types exchanged between them.
#![forbid(unsafe_code)]
