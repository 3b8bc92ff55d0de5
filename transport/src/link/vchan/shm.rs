//! Cross-process vchan rings through files in `/dev/shm`.
//!
//! The server creates the file (`O_EXCL`, mode 0600), sizes it, maps it and writes the header with its pid
//! and process start time, magic last. A client maps the file, checks magic, layout version and size,
//! checks that the server process still runs, takes the file with a compare-and-swap of the state word
//! (LISTENING → CLAIMED; a second client gets [`VchanError::Busy`]), writes its own pid and start time and
//! sets CONNECTED. Once the server sees CONNECTED it unlinks the file (the mappings stay) and creates a fresh
//! one at the same path for the next client.

use std::fs::{File, OpenOptions};
use std::future::poll_fn;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::liveness;
use super::shared::{region_len, state, OpenProblem, Shared, CLIENT, SERVER};
use super::signal::Signal;
use super::{VchanConfig, VchanError, VchanStream};

/// A server waiting for clients on a vchan file.
///
/// Each accepted client gets its own ring: the listener keeps one unconnected file at its path at all
/// times (re-created after each accept) and unlinks it when dropped.
#[derive(Debug)]
pub struct VchanListener {
    path: PathBuf,
    config: VchanConfig,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    stream: VchanStream,
    file: File,
}

impl VchanListener {
    /// Creates the vchan file at `path` (normally under `/dev/shm`). A file left by a server that is gone
    /// is replaced; a file of a running server fails with [`VchanError::InUse`].
    pub fn bind(
        path: impl Into<PathBuf>,
        config: &VchanConfig,
    ) -> Result<VchanListener, VchanError> {
        let path = path.into();
        let pending = create(&path, config)?;
        Ok(VchanListener {
            path,
            config: config.clone(),
            pending: Some(pending),
        })
    }

    /// The file clients connect to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client and returns the connected stream. Cancel-safe: dropping the future
    /// keeps the waiting file for the next call.
    pub async fn accept(&mut self) -> Result<VchanStream, VchanError> {
        let pending = match self.pending.take() {
            Some(p) => p,
            None => create(&self.path, &self.config)?,
        };
        let pending = self.pending.insert(pending);
        poll_fn(|cx| pending.stream.poll_connected(cx)).await;
        let Some(Pending { stream, file }) = self.pending.take() else {
            // Unreachable: `pending` was inserted above and nothing took it while we waited.
            return Err(VchanError::Corrupted {
                detail: "listener lost its pending ring".into(),
            });
        };
        unlink_if_same(&self.path, &file);
        match create(&self.path, &self.config) {
            Ok(next) => self.pending = Some(next),
            // The next accept tries again; this client is served either way.
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot prepare the next vchan file")
            }
        }
        Ok(stream)
    }
}

impl Drop for VchanListener {
    fn drop(&mut self) {
        if let Some(p) = &self.pending {
            unlink_if_same(&self.path, &p.file);
        }
    }
}

/// Removes `path` if it is still the file `file` (and not one another server created since).
fn unlink_if_same(path: &Path, file: &File) {
    if let (Ok(on_disk), Ok(ours)) = (std::fs::metadata(path), file.metadata()) {
        if on_disk.dev() == ours.dev() && on_disk.ino() == ours.ino() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn create(path: &Path, config: &VchanConfig) -> Result<Pending, VchanError> {
    let log2 = config.ring_log2()?;
    let create_err = |source| VchanError::Create {
        path: path.to_owned(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create_new(true).mode(0o600);
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_stale(path)?;
            opts.open(path).map_err(create_err)?
        }
        Err(e) => return Err(create_err(e)),
    };
    file.set_len(region_len(log2) as u64).map_err(create_err)?;
    let shared = Shared::create_in(&file, log2, std::process::id(), liveness::own_start_time())
        .map_err(create_err)?;
    let signal = Signal::spawn_futex(Arc::clone(&shared), SERVER, config.liveness_interval)
        .map_err(VchanError::Thread)?;
    let stream = VchanStream::new(shared, SERVER, signal).ok_or_else(|| VchanError::Corrupted {
        detail: "fresh server ring had its side taken".into(),
    })?;
    Ok(Pending { stream, file })
}

/// Deletes a vchan file whose server process is gone; refuses live servers' files and foreign files.
fn remove_stale(path: &Path) -> Result<(), VchanError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| VchanError::Create {
            path: path.to_owned(),
            source,
        })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let shared = Shared::open_in(&file, len).map_err(|p| open_problem(path, p))?;
    let h = shared.header();
    let pid = h.pid[SERVER].load(Ordering::Acquire);
    if liveness::is_alive(pid, h.start_time[SERVER].load(Ordering::Acquire)) {
        return Err(VchanError::InUse {
            path: path.to_owned(),
            pid,
        });
    }
    tracing::info!(path = %path.display(), pid, "replacing vchan file left by a server that is gone");
    unlink_if_same(path, &file);
    Ok(())
}

fn open_problem(path: &Path, p: OpenProblem) -> VchanError {
    let path = path.to_owned();
    match p {
        OpenProblem::Size(len) => VchanError::NotAVchan {
            path,
            reason: format!(
                "size {len} is not 4096 + 2 × ring size (remove the file if no server uses it)"
            ),
        },
        OpenProblem::Magic => VchanError::NotAVchan {
            path,
            reason: "no vchan magic (remove the file if no server uses it)".into(),
        },
        OpenProblem::Version(v) => VchanError::NotAVchan {
            path,
            reason: format!(
                "layout version {v}, this build speaks {}",
                super::shared::LAYOUT_VERSION
            ),
        },
        OpenProblem::Map(source) => VchanError::Open { path, source },
    }
}

/// Connects to the server listening on the vchan file at `path`. Only `config.liveness_interval` is used:
/// the ring size is the server's.
pub fn connect_shm(
    path: impl AsRef<Path>,
    config: &VchanConfig,
) -> Result<VchanStream, VchanError> {
    let path = path.as_ref();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| VchanError::Open {
            path: path.to_owned(),
            source,
        })?;
    let len = file
        .metadata()
        .map_err(|source| VchanError::Open {
            path: path.to_owned(),
            source,
        })?
        .len();
    let shared = Shared::open_in(&file, len).map_err(|p| open_problem(path, p))?;
    let h = shared.header();
    let server_pid = h.pid[SERVER].load(Ordering::Acquire);
    if !liveness::is_alive(server_pid, h.start_time[SERVER].load(Ordering::Acquire)) {
        return Err(VchanError::StaleServer {
            path: path.to_owned(),
            pid: server_pid,
        });
    }
    let signal = Signal::spawn_futex(Arc::clone(&shared), CLIENT, config.liveness_interval)
        .map_err(VchanError::Thread)?;
    if h.state
        .compare_exchange(
            state::LISTENING,
            state::CLAIMED,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_err()
    {
        return Err(VchanError::Busy {
            path: path.to_owned(),
        });
    }
    h.pid[CLIENT].store(std::process::id(), Ordering::SeqCst);
    h.start_time[CLIENT].store(liveness::own_start_time(), Ordering::SeqCst);
    h.state.store(state::CONNECTED, Ordering::SeqCst);
    shared.ring_bell(SERVER);
    VchanStream::new(Arc::clone(&shared), CLIENT, signal).ok_or_else(|| VchanError::Corrupted {
        detail: "client side of a fresh mapping was already taken".into(),
    })
}
