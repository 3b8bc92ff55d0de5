//! Connection state, as reported to subscribers.

use std::time::Duration;

use actix::{Addr, Message};
use aos_transport::tls::PeerIdentity;
use rustls_pki_types::CertificateDer;

use super::{DisconnectReason, LinkActor};

/// Where a link stands.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum LinkState {
    /// Dialing and handshaking (dialing side: attempt number from 1; accepting side: 1).
    Connecting {
        /// Attempt since the last successful connection.
        attempt: u32,
    },
    /// The handshake succeeded; requests and events flow.
    Connected {
        /// The peer's verified identity (`None` for a peer without one, e.g. on a public endpoint).
        peer: Option<PeerIdentity>,
        /// The peer's leaf certificate, if it sent one (serial number, expiry for logs and checks).
        certificate: Option<CertificateDer<'static>>,
    },
    /// The connection ended or could not be made.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// When the next attempt starts (dialing side); `None` when the link will not reconnect.
        retry_in: Option<Duration>,
    },
}

/// A link changed state. Sent to every state subscriber, in order, from the link's arbiter.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StateChanged {
    /// The link (so a server learns the address of each accepted link when it connects).
    pub link: Addr<LinkActor>,
    /// The new state.
    pub state: LinkState,
}

// === impl LinkState ===

impl LinkState {
    /// Whether requests can be sent now.
    pub fn is_connected(&self) -> bool {
        matches!(self, LinkState::Connected { .. })
    }
}
