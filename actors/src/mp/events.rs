//! Event subscribers: every subscriber gets every event; closed subscribers are dropped.

use std::sync::Mutex;

use tokio::sync::mpsc;

/// The subscribers of one event stream.
pub(crate) struct Subscribers<T> {
    senders: Mutex<Vec<mpsc::UnboundedSender<T>>>,
}

// === impl Subscribers ===

impl<T: Clone> Subscribers<T> {
    pub(crate) fn new() -> Self {
        Subscribers {
            senders: Mutex::new(Vec::new()),
        }
    }

    /// A new subscriber: it gets the events from now on.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().push(tx);
        rx
    }

    /// Send `event` to every subscriber still listening.
    pub(crate) fn emit(&self, event: T) {
        self.lock().retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<T>>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }
}
