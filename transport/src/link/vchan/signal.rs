//! Wake-ups between the two sides of a vchan ring.
//!
//! A task that finds its ring empty (reader), full (writer) or unconnected (accept) arms a [`WakerSlot`] and
//! returns `Pending`; whoever changes that condition wakes the slot.
//!
//! - In process ([`Signal::Local`]) both sides share the slots, and the peer wakes them directly.
//! - Between processes ([`Signal::Futex`]) each side runs one waiter thread. While one of its slots is
//!   armed, the thread announces `sleeping` in its doorbell, re-checks the rings, and blocks in
//!   `futex(FUTEX_WAIT)` on the doorbell word with a timeout. The peer, after each change, rings the
//!   doorbell (bump + `FUTEX_WAKE`) only when the thread announced sleeping, so a busy link makes no
//!   system calls for wake-ups. On each timeout the thread checks that the peer process still exists
//!   (see `liveness`); a dead peer wakes every slot with an error. With no slot armed the thread parks.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::Thread;
use std::time::Duration;

use rustix::thread::futex;

use super::liveness;
use super::shared::{state, Shared};

/// One waiting task's waker, with an `armed` flag that notifiers check without locking.
#[derive(Default)]
pub(super) struct WakerSlot {
    armed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl WakerSlot {
    /// Stores `waker` and arms the slot. The caller re-checks its condition afterwards.
    pub(super) fn register(&self, waker: &Waker) {
        {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
        self.armed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Whether a task waits on this slot.
    pub(super) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// Wakes the waiting task, if any.
    pub(super) fn wake(&self) {
        if self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// The local state of one side: its waiting tasks and what its waiter thread found out.
#[derive(Default)]
pub(super) struct Side {
    /// The reader waits for bytes (or end of data).
    pub read: WakerSlot,
    /// The writer waits for room (or the reader's close).
    pub write: WakerSlot,
    /// A listener waits for its client.
    pub connect: WakerSlot,
    /// Set when the peer process is gone without closing.
    peer_dead: AtomicBool,
    /// Set when the side is dropped; the waiter thread exits.
    stop: AtomicBool,
}

impl Side {
    fn wake_all(&self) {
        self.read.wake();
        self.write.wake();
        self.connect.wake();
    }
}

/// What changed, for the in-process notifier.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    /// Bytes were written (the peer reader may go on).
    Data,
    /// Bytes were read (the peer writer may go on).
    Space,
    /// A closed flag was set.
    Closed,
}

/// How one side wakes its peer and gets woken.
pub(super) enum Signal {
    /// Both sides in this process.
    Local {
        /// Side 0 and side 1.
        sides: Arc<[Side; 2]>,
        /// Our side.
        me: usize,
    },
    /// The peer is another process; our waiter thread watches the doorbell.
    Futex {
        /// The mapped region.
        shared: Arc<Shared>,
        /// Our side.
        me: usize,
        /// Our slots, shared with the waiter thread.
        side: Arc<Side>,
        /// The waiter thread, to unpark it.
        thread: Thread,
    },
}

impl Signal {
    /// Starts the waiter thread of side `me` of a mapped region.
    pub(super) fn spawn_futex(
        shared: Arc<Shared>,
        me: usize,
        liveness_interval: Duration,
    ) -> std::io::Result<Signal> {
        let side = Arc::new(Side::default());
        let handle = {
            let shared = Arc::clone(&shared);
            let side = Arc::clone(&side);
            std::thread::Builder::new()
                .name(format!("aos-vchan-wait-{me}"))
                .stack_size(64 * 1024)
                .spawn(move || waiter_loop(&shared, me, &side, liveness_interval))?
        };
        Ok(Signal::Futex {
            shared,
            me,
            side,
            thread: handle.thread().clone(),
        })
    }

    fn side(&self) -> &Side {
        match self {
            Signal::Local { sides, me } => &sides[*me],
            Signal::Futex { side, .. } => side,
        }
    }

    /// Tells the peer that something changed. Call after publishing the change.
    pub(super) fn notify_peer(&self, change: Change) {
        match self {
            Signal::Local { sides, me } => {
                fence(Ordering::SeqCst);
                let peer = &sides[1 - *me];
                match change {
                    Change::Data => peer.read.wake(),
                    Change::Space => peer.write.wake(),
                    Change::Closed => peer.wake_all(),
                }
            }
            Signal::Futex { shared, me, .. } => shared.ring_bell(1 - *me),
        }
    }

    /// Arms `slot` (one of ours) for `waker`; the caller re-checks its condition afterwards.
    pub(super) fn wait(&self, slot: fn(&Side) -> &WakerSlot, waker: &Waker) {
        slot(self.side()).register(waker);
        if let Signal::Futex { thread, .. } = self {
            thread.unpark();
        }
    }

    /// Whether our waiter thread found the peer process gone.
    pub(super) fn peer_dead(&self) -> bool {
        self.side().peer_dead.load(Ordering::SeqCst)
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        if let Signal::Futex {
            shared,
            me,
            side,
            thread,
        } = self
        {
            side.stop.store(true, Ordering::SeqCst);
            thread.unpark();
            shared.ring_own_bell(*me);
        }
    }
}

/// Condition checks (each followed by a `sched_yield`) before the waiter thread sleeps on the futex.
const SPIN_ROUNDS: u32 = 100;

fn waiter_loop(shared: &Shared, me: usize, side: &Side, liveness_interval: Duration) {
    let bell = &shared.header().bells[me].0;
    let timeout = futex::Timespec {
        tv_sec: liveness_interval.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: liveness_interval.subsec_nanos().into(),
    };
    let (out_ring, in_ring) = (me, 1 - me);
    loop {
        if side.stop.load(Ordering::SeqCst) {
            return;
        }
        let (want_read, want_write, want_connect) = (
            side.read.is_armed(),
            side.write.is_armed(),
            side.connect.is_armed(),
        );
        if !(want_read || want_write || want_connect) {
            std::thread::park();
            continue;
        }
        // Poll a little before sleeping: a reply often arrives within microseconds, and while we poll the
        // peer makes no futex call.
        for _ in 0..SPIN_ROUNDS {
            let ready = (want_read
                && (shared.readable(in_ring) || shared.producer_closed(in_ring)))
                || (want_write && (shared.writable(out_ring) || shared.consumer_closed(out_ring)));
            if ready || side.stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::yield_now();
        }
        bell.sleeping.store(1, Ordering::SeqCst);
        let seq = bell.seq.load(Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut woke = false;
        if want_read && (shared.readable(in_ring) || shared.producer_closed(in_ring)) {
            side.read.wake();
            woke = true;
        }
        if want_write && (shared.writable(out_ring) || shared.consumer_closed(out_ring)) {
            side.write.wake();
            woke = true;
        }
        if want_connect && shared.header().state.load(Ordering::Acquire) == state::CONNECTED {
            side.connect.wake();
            woke = true;
        }
        if woke {
            bell.sleeping.store(0, Ordering::SeqCst);
            continue;
        }
        let timed_out = matches!(
            futex::wait(&bell.seq, futex::Flags::empty(), seq, Some(&timeout)),
            Err(e) if e == rustix::io::Errno::TIMEDOUT
        );
        bell.sleeping.store(0, Ordering::SeqCst);
        if timed_out && peer_gone(shared, me) {
            side.peer_dead.store(true, Ordering::SeqCst);
            side.wake_all();
            return;
        }
    }
}

/// Whether the connected peer of side `me` is a process that no longer exists.
fn peer_gone(shared: &Shared, me: usize) -> bool {
    let h = shared.header();
    if h.state.load(Ordering::Acquire) != state::CONNECTED {
        return false;
    }
    let peer = 1 - me;
    let pid = h.pid[peer].load(Ordering::Acquire);
    let started = h.start_time[peer].load(Ordering::Acquire);
    !liveness::is_alive(pid, started)
}
