//! What a link does with each frame the peer sends.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

use actix::{Context, StreamHandler};
use aos_transport::frame::{Channel, Envelope, FrameError, MessageKind};
use aos_transport::tls::PeerIdentity;

use super::reader::{Inbound, InboundEvent};
use super::writer::{Outbox, Outgoing};
use super::{DisconnectReason, ErrorCode, Event, Incoming, LinkActor, LinkError, WireError};

impl StreamHandler<Inbound> for LinkActor {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.generation != item.generation {
            return;
        }
        match item.event {
            InboundEvent::Frame(envelope) => {
                conn.last_received = Instant::now();
                let queued = conn.outbox.queued();
                if envelope.kind == MessageKind::Request && queued > self.config.max_queued_bytes {
                    tracing::warn!(remote = %self.remote, queued, "closing the connection: the peer sends requests but does not read the answers");
                    self.lost(DisconnectReason::PeerNotReading(queued), ctx);
                    return;
                }
                let outbox = conn.outbox.clone();
                let peer = conn.peer.clone();
                self.dispatch(envelope, outbox, peer, ctx);
            }
            InboundEvent::Failed(err) => {
                if !matches!(err, FrameError::Io(_)) {
                    tracing::warn!(remote = %self.remote, error = %err, "closing the connection: the peer sent an invalid frame");
                    crate::telemetry::frame_error();
                }
                self.lost(DisconnectReason::from_frame_error(err), ctx);
            }
            InboundEvent::Eof => self.lost(DisconnectReason::PeerClosed, ctx),
        }
    }

    /// A connection's end is handled on its `Failed` or `Eof` item; the actor goes on (to reconnect).
    fn finished(&mut self, _: &mut Context<Self>) {}
}

// === impl LinkActor ===

impl LinkActor {
    fn dispatch(
        &mut self,
        envelope: Envelope,
        outbox: Outbox,
        peer: Option<Arc<PeerIdentity>>,
        ctx: &mut Context<Self>,
    ) {
        let Envelope {
            channel,
            correlation,
            kind,
            body,
            ..
        } = envelope;
        match kind {
            MessageKind::Response => self.answer(correlation, Ok(body)),
            MessageKind::Error => self.answer(
                correlation,
                Err(LinkError::Remote(WireError::decode(&body))),
            ),
            MessageKind::Request => self.serve(channel, correlation, body, outbox, peer),
            MessageKind::Event => self.deliver(channel, body, peer),
            MessageKind::Ping => {
                let pong =
                    Envelope::new(Channel::Control, correlation, MessageKind::Pong, Vec::new());
                let _ = outbox.send(Outgoing::frame(pong));
            }
            MessageKind::Pong => {}
            MessageKind::Close => {
                let reason = String::from_utf8_lossy(&body).into_owned();
                self.lost(DisconnectReason::PeerClose(reason), ctx);
            }
            other => {
                tracing::debug!(remote = %self.remote, kind = ?other, "ignoring a frame of an unknown kind")
            }
        }
    }

    /// Hand an answer to the request waiting on `correlation`; a late or unknown answer is dropped.
    fn answer(&mut self, correlation: u64, result: Result<Bytes, LinkError>) {
        match self.pending.remove(&correlation) {
            Some(waiter) => {
                let _ = waiter.send(result);
            }
            None => tracing::debug!(
                remote = %self.remote,
                correlation,
                "dropping an answer nobody waits for (timed out, or never asked)"
            ),
        }
    }

    /// Run a peer's request through the channel's handler, off the actor, and queue the answer.
    fn serve(
        &mut self,
        channel: Channel,
        correlation: u64,
        body: Bytes,
        outbox: Outbox,
        peer: Option<Arc<PeerIdentity>>,
    ) {
        let reply = move |result: Result<Bytes, WireError>| {
            let (kind, body) = match result {
                Ok(body) => (MessageKind::Response, body),
                Err(err) => (MessageKind::Error, Bytes::from(err.encode())),
            };
            let _ = outbox.send(Outgoing::frame(Envelope::new(
                channel,
                correlation,
                kind,
                body,
            )));
        };
        if channel == Channel::Control {
            reply(Err(WireError::new(
                ErrorCode::BAD_REQUEST,
                "channel Control carries no requests",
            )));
            return;
        }
        let Some(handler) = self.routes.handlers.get(&channel) else {
            reply(Err(WireError::new(
                ErrorCode::NO_HANDLER,
                format!("no handler for channel {channel:?} on this node"),
            )));
            return;
        };
        let answer = handler.send(Incoming {
            channel,
            body,
            peer,
        });
        actix_rt::spawn(async move {
            reply(answer.await.unwrap_or_else(|_| {
                Err(WireError::new(
                    ErrorCode::HANDLER_GONE,
                    format!("the handler of channel {channel:?} stopped"),
                ))
            }));
        });
    }

    /// Send an event to the channel's subscribers.
    fn deliver(&mut self, channel: Channel, body: Bytes, peer: Option<Arc<PeerIdentity>>) {
        let Some(subscribers) = self.routes.events.get_mut(&channel) else {
            return;
        };
        subscribers.retain(|subscriber| subscriber.connected());
        let Some((last, rest)) = subscribers.split_last() else {
            return;
        };
        for subscriber in rest {
            subscriber.do_send(Event {
                channel,
                body: body.clone(),
                peer: peer.clone(),
            });
        }
        last.do_send(Event {
            channel,
            body,
            peer,
        });
    }
}
