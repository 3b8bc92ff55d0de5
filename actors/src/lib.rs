//! aos-actors: the actix actors that make up one aos-edge node.
//!
//! - [`iam`]: cert modules and handler, provisioner, cert validator with renewal, permission handler (M2);
//! - [`net`]: the transport actor owning one TLS connection with multiplexed channels (M3);
//! - [`cm`]: the communication manager: cloud link, cloud-driven provisioning and renewal, SM controller (M4);
//! - [`sm`]: the service manager: a node's service instances, registered with IAM, started with their secret (M4);
//! - `mp`: the message-proxy bridge (M4);
//! - the wire API types exchanged between them (M4);
//! - [`node`]: one node's components started from its configuration, as a whole (M4).
//!
//! Actor rules (see `docs/actors.md`): PKCS#11 work runs on `SyncArbiter` workers or `spawn_blocking`, never
//! on an arbiter thread; an actor never block-waits on another actor.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod clock;
pub mod cm;
pub mod iam;
pub mod mp;
pub mod net;
pub mod node;
pub mod persist;
pub mod sm;
pub mod telemetry;
