//! The vchan ring: a byte stream made of two single-producer/single-consumer rings in shared memory.
//!
//! It is the Rust counterpart of Xen's libxenvchan for nodes on one host, and the simulator's link:
//!
//! - in process: [`pair`] returns two connected [`VchanStream`]s over heap memory, and [`MemListener`] /
//!   [`connect_mem`] give them names (`vchan-mem://<name>`);
//! - between processes: a server [`VchanListener::bind`]s a file in `/dev/shm` (mode 0600) that a client
//!   maps with [`connect_shm`] (`vchan:///dev/shm/<name>`).
//!
//! Wake-ups, clean close, peer-death detection and backpressure are described on [`VchanStream`] and in
//! `docs/links.md`. All `unsafe` code of the ring lives in the `shared` submodule (the Xen FFI, feature
//! `xen`, has its own in `link::xen`).

mod liveness;
mod mem;
mod shared;
mod shm;
mod signal;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use mem::{connect_mem, MemListener};
pub use shm::{connect_shm, VchanListener};
pub use stream::VchanStream;

use shared::{Shared, CLIENT, MAX_RING_LOG2, SERVER};
use signal::{Side, Signal};

/// Settings of a vchan ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VchanConfig {
    /// Bytes of each direction's ring: a power of two from 1 B to 1 GiB (default 256 KiB). A client takes
    /// the size the server chose.
    pub ring_size: usize,
    /// How often a side blocked on another process checks that the peer process still exists
    /// (default 100 ms). Only blocked sides check; a busy link costs nothing.
    pub liveness_interval: Duration,
}

impl Default for VchanConfig {
    fn default() -> Self {
        VchanConfig {
            ring_size: 256 * 1024,
            liveness_interval: Duration::from_millis(100),
        }
    }
}

impl VchanConfig {
    /// log2 of the ring size, or an error if it is not a power of two in range.
    fn ring_log2(&self) -> Result<u32, VchanError> {
        let n = self.ring_size;
        if !n.is_power_of_two() || n.trailing_zeros() > MAX_RING_LOG2 {
            return Err(VchanError::InvalidRingSize { requested: n });
        }
        Ok(n.trailing_zeros())
    }
}

/// Errors of the vchan ring. Stream errors reach callers as `std::io::Error` with this as inner error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VchanError {
    /// The ring size is not a power of two between 1 B and 1 GiB.
    #[error("vchan ring size {requested} is not a power of two between 1 and 2^30 bytes")]
    InvalidRingSize {
        /// The size asked for.
        requested: usize,
    },
    /// Allocating the in-process region failed.
    #[error("cannot allocate {bytes} bytes for an in-process vchan ring")]
    OutOfMemory {
        /// Size of the region.
        bytes: usize,
    },
    /// Creating, sizing or mapping a server file failed.
    #[error("cannot create vchan file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Opening or mapping a client's file failed (no server listening there, or no permission).
    #[error("cannot open vchan file {path} (is a server listening there?): {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A live server already owns the file.
    #[error("vchan file {path} belongs to running server process {pid}")]
    InUse {
        /// The file.
        path: PathBuf,
        /// The server's pid.
        pid: u32,
    },
    /// The file is not a vchan ring of this layout (wrong magic, size or version).
    #[error("{path} is not an aos vchan ring: {reason}")]
    NotAVchan {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// The server that created the file is gone; it left a stale file.
    #[error("vchan file {path} is stale: its server process {pid} is gone")]
    StaleServer {
        /// The file.
        path: PathBuf,
        /// The server's pid.
        pid: u32,
    },
    /// Another client is connected (or connecting) to this file.
    #[error(
        "vchan file {path} is already taken by another client; retry once the server accepts again"
    )]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// The peer process exited or was killed without closing the ring.
    #[error("vchan peer process {pid} died without closing the ring")]
    PeerDied {
        /// The peer's pid (0 if unknown).
        pid: u32,
    },
    /// The peer stopped reading (closed or dropped its side); nothing more can be written.
    #[error("vchan peer closed the ring; no more data can be written")]
    PeerClosed,
    /// This side already shut its writing direction down.
    #[error("write after shutdown on a vchan stream")]
    WriteAfterShutdown,
    /// The shared counters are inconsistent (a peer that breaks the protocol, or memory corruption).
    #[error("vchan ring corrupted: {detail}")]
    Corrupted {
        /// Which counters disagree.
        detail: String,
    },
    /// The waiter thread of a cross-process ring could not be started.
    #[error("cannot start the vchan waiter thread: {0}")]
    Thread(std::io::Error),
    /// An in-process listener already has this name.
    #[error("in-process vchan name {name:?} is already bound")]
    NameInUse {
        /// The name.
        name: String,
    },
    /// No in-process listener has this name.
    #[error("no in-process vchan listener named {name:?}")]
    NoListener {
        /// The name.
        name: String,
    },
}

impl From<VchanError> for std::io::Error {
    fn from(e: VchanError) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match &e {
            VchanError::PeerDied { .. } => ErrorKind::ConnectionAborted,
            VchanError::PeerClosed | VchanError::WriteAfterShutdown => ErrorKind::BrokenPipe,
            VchanError::Corrupted { .. } => ErrorKind::InvalidData,
            VchanError::InvalidRingSize { .. } => ErrorKind::InvalidInput,
            VchanError::Busy { .. } | VchanError::InUse { .. } | VchanError::NameInUse { .. } => {
                ErrorKind::AddrInUse
            }
            VchanError::NoListener { .. } | VchanError::StaleServer { .. } => {
                ErrorKind::ConnectionRefused
            }
            _ => ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// Two connected in-process vchan streams (side 0, side 1) over heap memory.
pub fn pair(config: &VchanConfig) -> Result<(VchanStream, VchanStream), VchanError> {
    let shared = Shared::heap(config.ring_log2()?)?;
    let sides: Arc<[Side; 2]> = Arc::new([Side::default(), Side::default()]);
    let a = Signal::Local {
        sides: Arc::clone(&sides),
        me: SERVER,
    };
    let b = Signal::Local { sides, me: CLIENT };
    let a = VchanStream::new(Arc::clone(&shared), SERVER, a);
    let b = VchanStream::new(shared, CLIENT, b);
    match (a, b) {
        (Some(a), Some(b)) => Ok((a, b)),
        // Unreachable: a fresh region has both sides free.
        _ => Err(VchanError::Corrupted {
            detail: "fresh in-process ring had a side taken".into(),
        }),
    }
}

#[cfg(test)]
mod tests;
