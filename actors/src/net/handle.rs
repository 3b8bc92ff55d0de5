//! `Link`: the address of a link actor with async methods that flatten mailbox errors.

use bytes::Bytes;
use std::time::Duration;

use actix::{Addr, Recipient};
use aos_transport::frame::Channel;

use super::{
    Close, Event, GetStatus, Incoming, LinkActor, LinkError, LinkStatus, Publish, Request,
    SetHandler, StateChanged, SubscribeEvents, SubscribeState,
};

/// A handle on a running [`LinkActor`]. Cheap to clone; every clone talks to the same link.
#[derive(Debug, Clone)]
pub struct Link {
    addr: Addr<LinkActor>,
}

// === impl Link ===

impl Link {
    /// The handle of the actor at `addr`.
    pub fn new(addr: Addr<LinkActor>) -> Self {
        Link { addr }
    }

    /// The actor's address, to send it messages directly.
    pub fn addr(&self) -> &Addr<LinkActor> {
        &self.addr
    }

    /// Send a request and wait for its answer, with the link's request timeout (see [`Request`]).
    pub async fn request(
        &self,
        channel: Channel,
        body: impl Into<Bytes>,
    ) -> Result<Bytes, LinkError> {
        self.send_request(channel, body.into(), None).await
    }

    /// Send a request and wait for its answer at most `timeout`.
    pub async fn request_within(
        &self,
        channel: Channel,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, LinkError> {
        self.send_request(channel, body.into(), Some(timeout)).await
    }

    async fn send_request(
        &self,
        channel: Channel,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Bytes, LinkError> {
        self.addr
            .send(Request {
                channel,
                body,
                timeout,
            })
            .await?
    }

    /// Send an event; returns once it is written to the link (see [`Publish`]).
    pub async fn publish(&self, channel: Channel, body: impl Into<Bytes>) -> Result<(), LinkError> {
        self.addr
            .send(Publish {
                channel,
                body: body.into(),
            })
            .await?
    }

    /// Handle the peer's requests on `channel` with `handler`.
    pub async fn set_handler(
        &self,
        channel: Channel,
        handler: Recipient<Incoming>,
    ) -> Result<(), LinkError> {
        self.addr
            .send(SetHandler {
                channel,
                handler: Some(handler),
            })
            .await?
    }

    /// Send the peer's events on `channel` to `subscriber`.
    pub async fn subscribe(
        &self,
        channel: Channel,
        subscriber: Recipient<Event>,
    ) -> Result<(), LinkError> {
        self.addr
            .send(SubscribeEvents {
                channel,
                subscriber,
            })
            .await?
    }

    /// Report state changes to `subscriber`, starting with the current state.
    pub async fn watch_state(&self, subscriber: Recipient<StateChanged>) -> Result<(), LinkError> {
        Ok(self.addr.send(SubscribeState(subscriber)).await?)
    }

    /// How the link stands.
    pub async fn status(&self) -> Result<LinkStatus, LinkError> {
        Ok(self.addr.send(GetStatus).await?)
    }

    /// Close the link (see [`Close`]); returns once it is shut down. Closing a stopped link is a no-op.
    pub async fn close(&self, reason: impl Into<String>) {
        let _ = self
            .addr
            .send(Close {
                reason: reason.into(),
            })
            .await;
    }
}
