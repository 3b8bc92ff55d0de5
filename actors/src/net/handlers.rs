//! The messages a link actor handles.

use actix::{
    ActorContext, ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture,
    ResponseFuture, WrapFuture,
};
use aos_transport::frame::{Channel, Envelope, MessageKind};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::writer::Outgoing;
use super::{
    Close, GetStatus, LinkActor, LinkError, LinkStatus, Publish, Request, SetHandler, StateChanged,
    SubscribeEvents, SubscribeState,
};

/// A request timed out; forget its waiter so the late answer is dropped.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Forget(u64);

// === impl LinkActor ===

impl LinkActor {
    /// Check a body to send on `channel`; the connection's queue if it may go.
    fn outbox_for(
        &self,
        channel: Channel,
        body: &[u8],
    ) -> Result<&super::writer::Outbox, LinkError> {
        if channel == Channel::Control {
            return Err(LinkError::ReservedChannel);
        }
        let max = self.codec.max_body_size();
        if body.len() > max {
            return Err(LinkError::TooLarge {
                len: body.len(),
                max,
            });
        }
        let outbox = self
            .conn
            .as_ref()
            .map(|conn| &conn.outbox)
            .ok_or(LinkError::NotConnected)?;
        let (queued, limit) = (outbox.queued(), self.config.max_queued_bytes);
        if queued > limit {
            return Err(LinkError::Backlogged { queued, limit });
        }
        Ok(outbox)
    }
}

impl Handler<Request> for LinkActor {
    type Result = ResponseFuture<Result<Bytes, LinkError>>;

    fn handle(&mut self, msg: Request, ctx: &mut Context<Self>) -> Self::Result {
        let Request {
            channel,
            body,
            timeout,
        } = msg;
        let outbox = match self.outbox_for(channel, &body) {
            Ok(outbox) => outbox.clone(),
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        let correlation = self.next_correlation();
        let envelope = Envelope::new(channel, correlation, MessageKind::Request, body);
        if outbox.send(Outgoing::frame(envelope)).is_err() {
            // The writer is gone; its failure is on its way to this actor.
            return Box::pin(std::future::ready(Err(LinkError::NotConnected)));
        }
        let (waiter, answer) = oneshot::channel();
        self.pending.insert(correlation, waiter);
        let after = timeout.unwrap_or(self.config.request_timeout);
        let me = ctx.address().downgrade();
        Box::pin(async move {
            match tokio::time::timeout(after, answer).await {
                Ok(Ok(result)) => result,
                // The actor stopped and dropped the waiter.
                Ok(Err(_)) => Err(LinkError::Stopped),
                Err(_) => {
                    if let Some(me) = me.upgrade() {
                        me.do_send(Forget(correlation));
                    }
                    Err(LinkError::Timeout { channel, after })
                }
            }
        })
    }
}

impl Handler<Forget> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        self.pending.remove(&msg.0);
    }
}

impl Handler<Publish> for LinkActor {
    type Result = ResponseFuture<Result<(), LinkError>>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let outbox = match self.outbox_for(msg.channel, &msg.body) {
            Ok(outbox) => outbox,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        let (written, done) = oneshot::channel();
        let envelope = Envelope::new(msg.channel, 0, MessageKind::Event, msg.body);
        let queued = outbox.send(Outgoing::Frame {
            envelope,
            written: Some(written),
        });
        if queued.is_err() {
            return Box::pin(std::future::ready(Err(LinkError::NotConnected)));
        }
        // A dropped confirmation means the connection ended before the frame was written.
        Box::pin(async move { done.await.unwrap_or(Err(LinkError::Unsent)) })
    }
}

impl Handler<SetHandler> for LinkActor {
    type Result = Result<(), LinkError>;

    fn handle(&mut self, msg: SetHandler, _: &mut Context<Self>) -> Self::Result {
        if msg.channel == Channel::Control {
            return Err(LinkError::ReservedChannel);
        }
        match msg.handler {
            Some(handler) => self.routes.handlers.insert(msg.channel, handler),
            None => self.routes.handlers.remove(&msg.channel),
        };
        Ok(())
    }
}

impl Handler<SubscribeEvents> for LinkActor {
    type Result = Result<(), LinkError>;

    fn handle(&mut self, msg: SubscribeEvents, _: &mut Context<Self>) -> Self::Result {
        if msg.channel == Channel::Control {
            return Err(LinkError::ReservedChannel);
        }
        self.routes
            .events
            .entry(msg.channel)
            .or_default()
            .push(msg.subscriber);
        Ok(())
    }
}

impl Handler<SubscribeState> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: SubscribeState, ctx: &mut Context<Self>) {
        msg.0.do_send(StateChanged {
            link: ctx.address(),
            state: self.state.clone(),
        });
        self.routes.state.push(msg.0);
    }
}

impl Handler<Close> for LinkActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) -> Self::Result {
        let writer = self.close(msg.reason, ctx);
        let flushed = async move {
            if let Some(writer) = writer {
                let abort = writer.abort_handle();
                if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
                    abort.abort();
                }
            }
        };
        Box::pin(flushed.into_actor(self).map(|(), _, ctx| ctx.stop()))
    }
}

/// How long [`Close`] waits for the close frame to be written before dropping the stream.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Handler<GetStatus> for LinkActor {
    type Result = actix::MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(LinkStatus {
            state: self.state.clone(),
            in_flight: self.pending.len(),
            remote: self.remote.clone(),
            thread: std::thread::current().id(),
        })
    }
}
