//! The tunnel multiplexer: one framed TLS link carrying many byte streams, each with its own flow control.
//!
//! A [`Mux`] owns two tasks: the reader decodes frames and dispatches them to the stream table without ever
//! waiting on a stream (so one slow tunnel cannot stall the others), and the writer (`net::writer`, shared
//! with the transport actor) batches queued frames and flushes after each batch. Streams are
//! [`StreamHandle`]s; their bytes are pumped by [`StreamHandle::pump`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aos_transport::frame::{Channel, Envelope, FrameCodec, FrameError, MessageKind};
use aos_transport::link::BoxedLink;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::ReadHalf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::FramedRead;

use super::protocol::{decode_window, encode_window, OpenRefusal, TUNNEL_CHANNELS};
use super::stream::{Credit, Inbound, StreamHandle};
use super::{LinkEnd, MpError, MuxSettings};
use crate::net::writer::{self, Outbox, Outgoing};
use crate::net::WireError;

/// Largest tunnel chunk per `Event` frame (smaller if the frame size is smaller): big enough to keep the
/// per-frame cost low, small enough that streams interleave.
const MAX_CHUNK: usize = 64 * 1024;
/// How long the writer may go on after the link ended (to deliver the `Close`) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Longest `Close` reason kept from the peer.
const MAX_CLOSE_REASON: usize = 1024;

/// A stream: its channel and its id (the envelope's correlation field).
pub(crate) type StreamKey = (Channel, u64);

/// Which side of the link this is: the bridge opens streams, the main node accepts them.
pub(crate) enum MuxRole {
    /// The secondary node's bridge.
    Opener,
    /// The main node's server; each open request goes to this queue.
    Acceptor(mpsc::UnboundedSender<PendingOpen>),
}

/// An open request from the bridge, waiting for the main node to connect the target or refuse.
pub(crate) struct PendingOpen {
    /// The channel asked for.
    pub(crate) channel: Channel,
    /// The stream; [`StreamHandle::accept`] or [`StreamHandle::refuse`] answers it.
    pub(crate) stream: StreamHandle,
}

/// One MP link. Clones share it.
#[derive(Clone)]
pub(crate) struct Mux {
    shared: Arc<Shared>,
}

struct Shared {
    settings: MuxSettings,
    chunk: usize,
    outbox: Outbox,
    table: Mutex<Table>,
    end: watch::Sender<Option<LinkEnd>>,
    remote: Arc<str>,
}

#[derive(Default)]
struct Table {
    streams: HashMap<StreamKey, Entry>,
    next_id: u64,
    ended: bool,
}

/// The link's side of one stream.
struct Entry {
    /// Bytes and end-of-stream from the peer, to the stream's pump. Holds at most a window of bytes.
    inbound: mpsc::UnboundedSender<Inbound>,
    /// Bytes the peer may still send before we grant more.
    allowance: usize,
    /// Bytes the pump delivered and we have not yet acknowledged.
    unacked: usize,
    /// Acknowledge once this many bytes were delivered: a quarter of the window actually in use,
    /// `min(our window, the peer's)`, since the peer never has more than that outstanding.
    ack_threshold: usize,
    /// The peer sent `Close`.
    peer_closed: bool,
    /// What we may still send.
    credit: Arc<Credit>,
    /// Tells the pump the peer reset the stream; dropped when the link ends.
    reset: Option<oneshot::Sender<WireError>>,
    /// Opener side, until the main node answers the open.
    opened: Option<oneshot::Sender<Result<(), WireError>>>,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When to acknowledge: a quarter of the window in use on a stream whose sides offered `ours` and `theirs`.
fn ack_threshold(ours: u32, theirs: u32) -> usize {
    (ours.min(theirs) as usize / 4).max(1)
}

fn violation(what: impl Into<String>) -> LinkEnd {
    LinkEnd::Protocol(what.into())
}

// === impl Mux ===

impl Mux {
    /// Run the tunnel protocol on `io` (an established TLS stream). Spawns the reader and writer tasks on
    /// the current runtime; fails only for invalid settings.
    pub(crate) fn start(
        io: BoxedLink,
        settings: MuxSettings,
        role: MuxRole,
        remote: Arc<str>,
    ) -> Result<Mux, MpError> {
        let codec = settings.codec()?;
        let chunk = codec.max_body_size().clamp(1, MAX_CHUNK);
        let (outbox, queue) = writer::outbox();
        let (end, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            settings,
            chunk,
            outbox,
            table: Mutex::new(Table {
                next_id: 1,
                ..Table::default()
            }),
            end,
            remote,
        });
        let (read, write) = tokio::io::split(io);

        let weak = Arc::downgrade(&shared);
        let mut ended = shared.end.subscribe();
        let writer_codec = codec.clone();
        tokio::spawn(async move {
            let run = writer::run(write, queue, writer_codec);
            tokio::pin!(run);
            let grace = async {
                let _ = ended.wait_for(Option::is_some).await;
                tokio::time::sleep(CLOSE_GRACE).await;
            };
            let result = tokio::select! {
                result = &mut run => result,
                () = grace => Ok(()),
            };
            if let (Err(err), Some(shared)) = (result, weak.upgrade()) {
                shared.finish(LinkEnd::Io(Arc::new(err)));
            }
        });

        let mux = Mux { shared };
        let reader = mux.clone();
        tokio::spawn(async move {
            if let Some(end) = reader.read_loop(read, codec, role).await {
                reader.shared.finish(end);
            }
        });
        Ok(mux)
    }

    /// Open a stream on `channel` and wait until the main node has connected its target (bridge side).
    pub(crate) async fn open(&self, channel: Channel) -> Result<StreamHandle, MpError> {
        let (opened_tx, opened_rx) = oneshot::channel();
        let settings = &self.shared.settings;
        let mut handle = {
            let mut table = lock(&self.shared.table);
            if table.ended {
                drop(table);
                return Err(MpError::LinkEnded(self.end_reason()));
            }
            if table.streams.len() >= settings.max_streams {
                return Err(MpError::Refused(OpenRefusal::TooManyStreams));
            }
            let id = table.next_id;
            table.next_id += 1;
            let (mut entry, handle) = self.new_stream((channel, id), None);
            entry.opened = Some(opened_tx);
            table.streams.insert((channel, id), entry);
            handle
        };
        let (_, id) = handle.key();
        self.send(Envelope::new(
            channel,
            id,
            MessageKind::Request,
            encode_window(settings.stream_window),
        ));
        match tokio::time::timeout(settings.handshake_timeout, opened_rx).await {
            Ok(Ok(Ok(()))) => Ok(handle),
            Ok(Ok(Err(wire))) => {
                handle.forget();
                Err(MpError::Refused(OpenRefusal::from_wire(channel, wire)))
            }
            Ok(Err(_)) => {
                handle.forget();
                Err(MpError::LinkEnded(self.end_reason()))
            }
            // Dropping the handle resets the stream, so the main side drops whatever it opened late.
            Err(_) => Err(MpError::OpenTimeout(settings.handshake_timeout)),
        }
    }

    /// Close the link: every stream ends, the peer gets a `Close` with `reason`.
    pub(crate) fn close(&self, reason: impl Into<String>) {
        self.shared.finish(LinkEnd::Closed(reason.into()));
    }

    /// Wait until the link has ended; why.
    pub(crate) async fn closed(&self) -> LinkEnd {
        let mut end = self.shared.end.subscribe();
        let reason = match end.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        reason.unwrap_or_else(|| LinkEnd::Closed("the link was dropped".into()))
    }

    /// Why the link ended (a placeholder if it has not).
    pub(crate) fn end_reason(&self) -> LinkEnd {
        self.shared
            .end
            .borrow()
            .clone()
            .unwrap_or_else(|| LinkEnd::Closed("the link is ending".into()))
    }

    /// Streams open now.
    pub(crate) fn stream_count(&self) -> usize {
        lock(&self.shared.table).streams.len()
    }

    /// Bytes received and not yet taken by stream pumps, over all streams (what the window bounds).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        let window = self.shared.settings.stream_window as usize;
        lock(&self.shared.table)
            .streams
            .values()
            .map(|e| window.saturating_sub(e.allowance + e.unacked))
            .sum()
    }

    /// Most bytes per `Event` frame.
    pub(crate) fn chunk(&self) -> usize {
        self.shared.chunk
    }

    /// This side's receive window.
    pub(crate) fn window(&self) -> u32 {
        self.shared.settings.stream_window
    }

    /// Queue a frame for the writer (dropped if the link has ended).
    pub(crate) fn send(&self, envelope: Envelope) {
        let _ = self.shared.outbox.send(Outgoing::frame(envelope));
    }

    /// The pump delivered `n` bytes of `key` to its consumer: acknowledge them once a quarter of the window
    /// in use has gathered, so the peer may send that much more.
    pub(crate) fn consumed(&self, key: StreamKey, n: usize) {
        let grant = {
            let mut table = lock(&self.shared.table);
            let Some(entry) = table.streams.get_mut(&key) else {
                return;
            };
            entry.unacked += n;
            if entry.unacked < entry.ack_threshold || entry.peer_closed {
                return;
            }
            let grant = std::mem::take(&mut entry.unacked);
            entry.allowance += grant;
            grant
        };
        // grant <= stream_window, a u32.
        let grant = u32::try_from(grant).unwrap_or(u32::MAX);
        self.send(Envelope::new(
            key.0,
            key.1,
            MessageKind::Response,
            encode_window(grant),
        ));
    }

    /// Remove `key` from the table; whether it was there (false: the peer reset it or the link ended).
    pub(crate) fn remove(&self, key: StreamKey) -> bool {
        let entry = lock(&self.shared.table).streams.remove(&key);
        entry.is_some()
    }

    /// A new stream's entry and handle; `send_limit` is the peer's window when already known.
    fn new_stream(&self, key: StreamKey, send_limit: Option<u32>) -> (Entry, StreamHandle) {
        let window = self.shared.settings.stream_window;
        let credit = Arc::new(Credit::new());
        if let Some(limit) = send_limit {
            credit.set_limit(limit.min(window) as usize);
        }
        let ack_threshold = ack_threshold(window, send_limit.unwrap_or(window));
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        let (reset_tx, reset_rx) = oneshot::channel();
        let entry = Entry {
            inbound: inbound_tx,
            allowance: window as usize,
            unacked: 0,
            ack_threshold,
            peer_closed: false,
            credit: credit.clone(),
            reset: Some(reset_tx),
            opened: None,
        };
        let handle = StreamHandle::new(self.clone(), key, inbound_rx, reset_rx, credit);
        (entry, handle)
    }

    /// Queue an answer to something the peer sent, unless the peer leaves too much of our output unread.
    fn reply(&self, envelope: Envelope) -> Result<(), LinkEnd> {
        let queued = self.shared.outbox.queued();
        if queued > self.shared.settings.max_queued() {
            return Err(LinkEnd::PeerNotReading(queued));
        }
        self.send(envelope);
        Ok(())
    }

    // --- reading ---

    async fn read_loop(
        &self,
        read: ReadHalf<BoxedLink>,
        codec: FrameCodec,
        role: MuxRole,
    ) -> Option<LinkEnd> {
        let mut frames = FramedRead::with_capacity(read, codec, 64 * 1024);
        let mut ended = self.shared.end.subscribe();
        loop {
            let next = tokio::select! {
                biased;
                _ = ended.wait_for(Option::is_some) => return None,
                next = frames.next() => next,
            };
            let envelope = match next {
                None => return Some(LinkEnd::PeerClosed),
                Some(Err(FrameError::Io(err))) => return Some(LinkEnd::Io(Arc::new(err))),
                Some(Err(err)) => return Some(LinkEnd::Frame(Arc::new(err))),
                Some(Ok(envelope)) => envelope,
            };
            if let Err(end) = self.dispatch(envelope, &role) {
                return Some(end);
            }
        }
    }

    /// Act on one frame from the peer. An error ends the link.
    fn dispatch(&self, envelope: Envelope, role: &MuxRole) -> Result<(), LinkEnd> {
        let Envelope {
            channel,
            correlation: id,
            kind,
            body,
            ..
        } = envelope;
        if channel == Channel::Control {
            return match kind {
                MessageKind::Ping => {
                    self.reply(Envelope::new(channel, id, MessageKind::Pong, Bytes::new()))
                }
                MessageKind::Pong => Ok(()),
                MessageKind::Close => {
                    let mut reason = String::from_utf8_lossy(&body).into_owned();
                    if reason.len() > MAX_CLOSE_REASON {
                        let mut end = MAX_CLOSE_REASON;
                        while !reason.is_char_boundary(end) {
                            end -= 1;
                        }
                        reason.truncate(end);
                    }
                    Err(LinkEnd::PeerClose(reason))
                }
                other => Err(violation(format!("{other:?} on the control channel"))),
            };
        }
        if !TUNNEL_CHANNELS.contains(&channel) {
            return Err(violation(format!("channel {channel:?} carries no tunnels")));
        }
        if id == 0 {
            return Err(violation(format!(
                "{kind:?} for stream id 0 on {channel:?}"
            )));
        }
        let key = (channel, id);
        match kind {
            MessageKind::Request => self.on_open(key, &body, role),
            MessageKind::Response => self.on_window(key, &body),
            MessageKind::Event => self.on_data(key, body),
            MessageKind::Close => self.on_close(key),
            MessageKind::Error => {
                self.on_error(key, &body);
                Ok(())
            }
            other => Err(violation(format!(
                "{other:?} on tunnel channel {channel:?}"
            ))),
        }
    }

    fn on_open(&self, key: StreamKey, body: &[u8], role: &MuxRole) -> Result<(), LinkEnd> {
        let (channel, id) = key;
        let MuxRole::Acceptor(accepting) = role else {
            return Err(violation(format!(
                "the main node asked to open stream {id} on {channel:?}; only the bridge opens streams"
            )));
        };
        let window = decode_window(body)
            .map_err(|err| violation(format!("open of stream {id} on {channel:?}: {err}")))?;
        if window == 0 {
            return Err(violation(format!("open of stream {id} with a zero window")));
        }
        let handle = {
            let mut table = lock(&self.shared.table);
            if table.streams.contains_key(&key) {
                return Err(violation(format!(
                    "stream {id} on {channel:?} opened twice"
                )));
            }
            if table.streams.len() >= self.shared.settings.max_streams {
                None
            } else {
                let (entry, handle) = self.new_stream(key, Some(window));
                table.streams.insert(key, entry);
                Some(handle)
            }
        };
        let Some(stream) = handle else {
            tracing::warn!(remote = %self.shared.remote, ?channel, "tunnel refused: too many streams on the link");
            let refusal = OpenRefusal::TooManyStreams.to_wire();
            return self.reply(Envelope::new(
                channel,
                id,
                MessageKind::Error,
                refusal.encode(),
            ));
        };
        // If the server is gone, the dropped handle resets the stream.
        let _ = accepting.send(PendingOpen { channel, stream });
        self.reply_room()
    }

    /// Fails if the peer leaves too much of our output unread (checked when it asks for more).
    fn reply_room(&self) -> Result<(), LinkEnd> {
        let queued = self.shared.outbox.queued();
        if queued > self.shared.settings.max_queued() {
            return Err(LinkEnd::PeerNotReading(queued));
        }
        Ok(())
    }

    fn on_window(&self, key: StreamKey, body: &[u8]) -> Result<(), LinkEnd> {
        let (channel, id) = key;
        let n = decode_window(body)
            .map_err(|err| violation(format!("window of stream {id} on {channel:?}: {err}")))?;
        let mut table = lock(&self.shared.table);
        let Some(entry) = table.streams.get_mut(&key) else {
            return Ok(()); // A stream that ended here meanwhile.
        };
        if let Some(opened) = entry.opened.take() {
            if n == 0 {
                return Err(violation(format!("stream {id} opened with a zero window")));
            }
            let window = self.shared.settings.stream_window;
            entry.credit.set_limit(n.min(window) as usize);
            entry.ack_threshold = ack_threshold(window, n);
            let _ = opened.send(Ok(()));
            return Ok(());
        }
        entry.credit.grant(n as usize).map_err(|outstanding| {
            violation(format!(
                "credit of {n} bytes on stream {id} of {channel:?}, but only {outstanding} are unacknowledged"
            ))
        })
    }

    fn on_data(&self, key: StreamKey, body: Bytes) -> Result<(), LinkEnd> {
        let (channel, id) = key;
        let mut table = lock(&self.shared.table);
        let Some(entry) = table.streams.get_mut(&key) else {
            return Ok(()); // Bytes in flight when this side reset the stream.
        };
        if entry.opened.is_some() {
            return Err(violation(format!(
                "bytes on stream {id} before it was opened"
            )));
        }
        if entry.peer_closed {
            return Err(violation(format!("bytes on stream {id} after its close")));
        }
        if body.len() > entry.allowance {
            return Err(violation(format!(
                "{} bytes on stream {id} of {channel:?}, but its window allows {}",
                body.len(),
                entry.allowance
            )));
        }
        entry.allowance -= body.len();
        if !body.is_empty() {
            let _ = entry.inbound.send(Inbound::Data(body));
        }
        Ok(())
    }

    fn on_close(&self, key: StreamKey) -> Result<(), LinkEnd> {
        let mut table = lock(&self.shared.table);
        let Some(entry) = table.streams.get_mut(&key) else {
            return Ok(());
        };
        if entry.opened.is_some() {
            return Err(violation(format!(
                "close of stream {} before it was opened",
                key.1
            )));
        }
        if !entry.peer_closed {
            entry.peer_closed = true;
            let _ = entry.inbound.send(Inbound::Eof);
        }
        Ok(())
    }

    fn on_error(&self, key: StreamKey, body: &[u8]) {
        let Some(mut entry) = lock(&self.shared.table).streams.remove(&key) else {
            return;
        };
        let error = WireError::decode(body);
        if let Some(opened) = entry.opened.take() {
            let _ = opened.send(Err(error));
        } else if let Some(reset) = entry.reset.take() {
            let _ = reset.send(error);
        }
    }
}

// === impl Shared ===

impl Shared {
    /// End the link once: drop every stream (their pumps end and close their connections), tell the peer,
    /// record why.
    fn finish(&self, end: LinkEnd) {
        let streams = {
            let mut table = lock(&self.table);
            if table.ended {
                return;
            }
            table.ended = true;
            std::mem::take(&mut table.streams)
        };
        let count = streams.len();
        drop(streams);
        match &end {
            LinkEnd::Frame(_) | LinkEnd::Protocol(_) | LinkEnd::PeerNotReading(_) => {
                tracing::warn!(remote = %self.remote, streams = count, "MP link closed: {end}")
            }
            _ => tracing::info!(remote = %self.remote, streams = count, "MP link closed: {end}"),
        }
        let _ = self.outbox.send(Outgoing::Close(end.to_string()));
        self.end.send_replace(Some(end));
    }
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux")
            .field("remote", &self.shared.remote)
            .field("streams", &self.stream_count())
            .finish_non_exhaustive()
    }
}
