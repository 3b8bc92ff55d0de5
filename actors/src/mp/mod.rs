//! The MP link between a secondary node and the main node: a tunnel multiplexer over one TLS link.
//!
//! - [`MpBridge`] (secondary node) keeps one link to the main node (TCP, Unix socket or vchan ring), TLS with
//!   the node's `mp` certificate once provisioned and anonymous before, and offers one local listener per
//!   channel. Each accepted local connection becomes a tunnel `(channel, stream id)` to the main node.
//! - [`MpServer`] (main node) accepts those links (client certificate optional, [`server_tls`]) and
//!   connects each tunnel to the main node's endpoint of its channel ([`ServerSettings::targets`]); a
//!   secure channel on an anonymous link is refused ([`OpenRefusal::Unauthenticated`]).
//! - The bytes in a tunnel are the components' own TLS sessions: an SM on a secondary authenticates to CM
//!   with its own `sm` certificate through the tunnel. The MP link's TLS only decides which channels a
//!   node may use.
//! - Per-stream credit windows bound what each side buffers, so one slow tunnel stalls only itself.
//!
//! Wire protocol: [`protocol`]. Decisions: `docs/mp.md`.

mod bridge;
mod error;
mod events;
mod mux;
pub mod protocol;
mod server;
mod settings;
mod stream;
mod tls;

#[cfg(test)]
mod tests;

pub use bridge::{BridgeEvent, BridgeState, MpBridge, Tunnel, TunnelDialer};
pub use error::{BridgeDown, LinkEnd, MpError};
pub use protocol::OpenRefusal;
pub use server::{MpServer, ServerEvent};
pub use settings::{BridgeSettings, MuxSettings, ServerSettings};
pub use tls::{server_tls, BridgeTls};
