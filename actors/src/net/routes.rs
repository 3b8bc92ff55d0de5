//! Routes: the handlers and subscribers a link starts with.

use std::collections::HashMap;

use actix::Recipient;
use aos_transport::frame::Channel;

use super::{Event, Incoming, StateChanged};

/// Request handlers per channel, event subscribers per channel and state subscribers, given to a link when
/// it starts so that nothing the peer sends right after the handshake finds the link unprepared. Every link
/// a [`LinkAcceptor`](super::LinkAcceptor) accepts gets a clone. Links can change them later with
/// [`SetHandler`](super::SetHandler), [`SubscribeEvents`](super::SubscribeEvents) and
/// [`SubscribeState`](super::SubscribeState).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub(super) handlers: HashMap<Channel, Recipient<Incoming>>,
    pub(super) events: HashMap<Channel, Vec<Recipient<Event>>>,
    pub(super) state: Vec<Recipient<StateChanged>>,
}

// === impl Routes ===

impl Routes {
    /// No handlers, no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handle requests on `channel` with `handler` (replacing any other). `Control` is ignored: the link
    /// answers pings itself.
    pub fn handle(mut self, channel: Channel, handler: Recipient<Incoming>) -> Self {
        if channel != Channel::Control {
            self.handlers.insert(channel, handler);
        }
        self
    }

    /// Send the peer's events on `channel` to `subscriber` too. `Control` is ignored.
    pub fn subscribe(mut self, channel: Channel, subscriber: Recipient<Event>) -> Self {
        if channel != Channel::Control {
            self.events.entry(channel).or_default().push(subscriber);
        }
        self
    }

    /// Report state changes to `subscriber` too.
    pub fn watch_state(mut self, subscriber: Recipient<StateChanged>) -> Self {
        self.state.push(subscriber);
        self
    }
}
