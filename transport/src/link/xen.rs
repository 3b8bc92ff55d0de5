//! Xen `libxenvchan` links (cargo feature `xen`): the real vchan between Xen domains.
//!
//! **This backend cannot run on the development machines or in CI: they have no Xen hypervisor.** CI only
//! builds it (and lints it) with `--features xen` against Debian's `libxen-dev`, which provides
//! `libxenvchan.h` and `libxenvchan.so`; it links with `-lxenvchan`. The shared-memory ring in
//! [`super::vchan`] is the tested stand-in with the same shape (two one-way rings, one event channel).
//!
//! - The server side ([`XenListener`]) calls `libxenvchan_server_init(domain, "data/aos-vchan/<port>", …)`
//!   (a path relative to its own xenstore home), where `domain` is the client's domain id, and waits until
//!   the client is there. One client per port at a time; the next accept sets up a new vchan.
//! - The client ([`XenVchan::connect`]) calls `libxenvchan_client_init(domain,
//!   "/local/domain/<domain>/data/aos-vchan/<port>")`, where `domain` is the server's domain id.
//! - Setup runs on tokio's blocking pool (it talks to xenstore). Reads and writes never block: they move
//!   only what `libxenvchan_data_ready` / `libxenvchan_buffer_space` report, and otherwise wait for the event
//!   channel file descriptor (`libxenvchan_fd_for_select`) through tokio, then acknowledge the event with
//!   `libxenvchan_wait`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{ready, Context, Poll, Waker};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Opaque `struct libxenvchan`.
#[repr(C)]
struct LibXenVchan {
    _private: [u8; 0],
}

/// Opaque `struct xentoollog_logger`.
#[repr(C)]
struct XenToolLogLogger {
    _private: [u8; 0],
}

#[link(name = "xenvchan")]
extern "C" {
    fn libxenvchan_server_init(
        logger: *mut XenToolLogLogger,
        domain: c_int,
        xs_path: *const c_char,
        read_min: usize,
        write_min: usize,
    ) -> *mut LibXenVchan;
    fn libxenvchan_client_init(
        logger: *mut XenToolLogLogger,
        domain: c_int,
        xs_path: *const c_char,
    ) -> *mut LibXenVchan;
    fn libxenvchan_close(ctrl: *mut LibXenVchan);
    fn libxenvchan_read(ctrl: *mut LibXenVchan, data: *mut c_void, size: usize) -> c_int;
    fn libxenvchan_write(ctrl: *mut LibXenVchan, data: *const c_void, size: usize) -> c_int;
    fn libxenvchan_wait(ctrl: *mut LibXenVchan) -> c_int;
    fn libxenvchan_fd_for_select(ctrl: *mut LibXenVchan) -> c_int;
    fn libxenvchan_is_open(ctrl: *mut LibXenVchan) -> c_int;
    fn libxenvchan_data_ready(ctrl: *mut LibXenVchan) -> c_int;
    fn libxenvchan_buffer_space(ctrl: *mut LibXenVchan) -> c_int;
}

/// Minimum ring size asked for in each direction.
const RING_MIN: usize = 64 * 1024;

/// Errors of the Xen backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XenError {
    /// `libxenvchan_server_init` or `libxenvchan_client_init` failed (no Xen, no permission, no peer).
    #[error("{call} for domain {domain}, port {port} failed: {source}")]
    Init {
        /// The libxenvchan call.
        call: &'static str,
        /// The domain id given.
        domain: u32,
        /// The port.
        port: u32,
        /// errno.
        source: io::Error,
    },
    /// A domain id does not fit a C int.
    #[error("domain id {0} is out of range")]
    Domain(u32),
    /// The setup task was cancelled or panicked.
    #[error("xen vchan setup task failed: {0}")]
    Task(String),
    /// Registering the event channel with tokio failed.
    #[error("cannot watch the xen event channel: {0}")]
    EventChannel(io::Error),
}

/// An owned libxenvchan control structure.
struct Ctrl(NonNull<LibXenVchan>);

// SAFETY: libxenvchan keeps no thread-local state; a control structure may move between threads as long as
// it is not used from two at once, which `&mut` access (or ownership in a blocking task) guarantees.
unsafe impl Send for Ctrl {}

impl Ctrl {
    fn ptr(&self) -> *mut LibXenVchan {
        self.0.as_ptr()
    }
}

impl Drop for Ctrl {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful *_init call and is closed exactly once, here.
        unsafe { libxenvchan_close(self.ptr()) };
    }
}

/// The event channel fd, owned by libxenvchan (closed by `libxenvchan_close`, never by us).
struct EventFd(RawFd);

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// One end of a Xen vchan as a tokio byte stream.
pub struct XenVchan {
    // Field order: `event` deregisters from tokio before `ctrl` closes the fd.
    event: AsyncFd<EventFd>,
    ctrl: Ctrl,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl std::fmt::Debug for XenVchan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XenVchan")
            .field("event_fd", &self.event.get_ref().0)
            .finish_non_exhaustive()
    }
}

fn domain_int(domain: u32) -> Result<c_int, XenError> {
    c_int::try_from(domain).map_err(|_| XenError::Domain(domain))
}

fn path_cstring(path: String) -> Result<CString, XenError> {
    // Built from numbers and fixed text only, so it holds no NUL.
    CString::new(path).map_err(|e| XenError::Task(e.to_string()))
}

impl XenVchan {
    /// Connects to the server in domain `domain` on `port`.
    pub async fn connect(domain: u32, port: u32) -> Result<XenVchan, XenError> {
        let dom = domain_int(domain)?;
        let path = path_cstring(format!("/local/domain/{domain}/data/aos-vchan/{port}"))?;
        let ctrl = tokio::task::spawn_blocking(move || {
            // SAFETY: a null logger is allowed (messages go nowhere); `path` is a valid C string that
            // outlives the call.
            let p = unsafe { libxenvchan_client_init(std::ptr::null_mut(), dom, path.as_ptr()) };
            NonNull::new(p).map(Ctrl).ok_or_else(|| XenError::Init {
                call: "libxenvchan_client_init",
                domain,
                port,
                source: io::Error::last_os_error(),
            })
        })
        .await
        .map_err(|e| XenError::Task(e.to_string()))??;
        XenVchan::from_ctrl(ctrl)
    }

    fn from_ctrl(ctrl: Ctrl) -> Result<XenVchan, XenError> {
        // SAFETY: `ctrl` is a live control structure.
        let fd = unsafe { libxenvchan_fd_for_select(ctrl.ptr()) };
        if fd < 0 {
            return Err(XenError::EventChannel(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is libxenvchan's open event channel descriptor; it stays open and refers to the same
        // description until `libxenvchan_close`, which runs only after the `AsyncFd` is dropped (field order
        // of `XenVchan`: `event` before `ctrl`), and `EventFd::as_raw_fd` always returns it.
        let event = unsafe { AsyncFd::register_with_interest(EventFd(fd), Interest::READABLE) }
            .map_err(|e| XenError::EventChannel(e.into_parts().1))?;
        Ok(XenVchan {
            event,
            ctrl,
            read_waker: None,
            write_waker: None,
        })
    }

    fn is_open(&self) -> c_int {
        // SAFETY: `ctrl` is live for as long as `self`.
        unsafe { libxenvchan_is_open(self.ctrl.ptr()) }
    }

    /// Waits for an event on the channel, acknowledges it and wakes the other direction's task.
    fn poll_event(&mut self, cx: &mut Context<'_>, reading: bool) -> Poll<io::Result<()>> {
        let waker = Some(cx.waker().clone());
        if reading {
            self.read_waker = waker;
        } else {
            self.write_waker = waker;
        }
        let mut guard = ready!(self.event.poll_read_ready(cx))?;
        // SAFETY: `ctrl` is live; the fd is readable, so an event is pending and the call does not block.
        let rc = unsafe { libxenvchan_wait(self.ctrl.ptr()) };
        guard.clear_ready();
        let other = if reading {
            self.write_waker.take()
        } else {
            self.read_waker.take()
        };
        if let Some(w) = other {
            w.wake();
        }
        if rc < 0 {
            return Poll::Ready(Err(io::Error::last_os_error()));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for XenVchan {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // SAFETY: `ctrl` is live.
            let ready_bytes = unsafe { libxenvchan_data_ready(this.ctrl.ptr()) };
            if ready_bytes > 0 {
                let dst = buf.initialize_unfilled();
                let want = dst.len().min(ready_bytes as usize);
                // SAFETY: `dst` is valid for `want <= dst.len()` bytes of writes; at most `want` bytes are
                // available, so the call copies and returns without blocking.
                let n = unsafe { libxenvchan_read(this.ctrl.ptr(), dst.as_mut_ptr().cast(), want) };
                if n < 0 {
                    return Poll::Ready(Err(io::Error::last_os_error()));
                }
                buf.advance(n as usize);
                return Poll::Ready(Ok(()));
            }
            if this.is_open() == 0 {
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_event(cx, true))?;
        }
    }
}

impl AsyncWrite for XenVchan {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.is_open() == 0 {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            // SAFETY: `ctrl` is live.
            let space = unsafe { libxenvchan_buffer_space(this.ctrl.ptr()) };
            if space > 0 {
                let want = data.len().min(space as usize);
                // SAFETY: `data` is valid for `want` bytes of reads; at most `space` bytes are written, so the
                // call does not block.
                let n = unsafe { libxenvchan_write(this.ctrl.ptr(), data.as_ptr().cast(), want) };
                if n < 0 {
                    return Poll::Ready(Err(io::Error::last_os_error()));
                }
                return Poll::Ready(Ok(n as usize));
            }
            ready!(this.poll_event(cx, false))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // libxenvchan has no half-close; dropping the stream closes both directions.
        Poll::Ready(Ok(()))
    }
}

/// The server side of a Xen vchan port.
#[derive(Debug)]
pub struct XenListener {
    domain: u32,
    port: u32,
}

impl XenListener {
    /// A listener for clients from domain `domain` on `port` (nothing happens until `accept`).
    pub fn new(domain: u32, port: u32) -> XenListener {
        XenListener { domain, port }
    }

    /// The client domain this listener serves.
    pub fn domain(&self) -> u32 {
        self.domain
    }

    /// Publishes a vchan in xenstore and waits until the client domain connects.
    pub async fn accept(&mut self) -> Result<XenVchan, XenError> {
        let (domain, port) = (self.domain, self.port);
        let dom = domain_int(domain)?;
        let path = path_cstring(format!("data/aos-vchan/{port}"))?;
        let ctrl = tokio::task::spawn_blocking(move || {
            // SAFETY: null logger allowed; `path` outlives the call.
            let p = unsafe {
                libxenvchan_server_init(
                    std::ptr::null_mut(),
                    dom,
                    path.as_ptr(),
                    RING_MIN,
                    RING_MIN,
                )
            };
            NonNull::new(p).map(Ctrl).ok_or_else(|| XenError::Init {
                call: "libxenvchan_server_init",
                domain,
                port,
                source: io::Error::last_os_error(),
            })
        })
        .await
        .map_err(|e| XenError::Task(e.to_string()))??;
        let mut link = XenVchan::from_ctrl(ctrl)?;
        // is_open: 2 = waiting for the client, 1 = connected, 0 = gone.
        std::future::poll_fn(|cx| {
            while link.is_open() == 2 {
                ready!(link.poll_event(cx, true))?;
            }
            Poll::Ready(Ok::<(), io::Error>(()))
        })
        .await
        .map_err(XenError::EventChannel)?;
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without Xen, setup must fail with a typed error (and not crash): the FFI links and runs this far.
    #[tokio::test]
    async fn without_xen_setup_fails_cleanly() {
        let err = XenVchan::connect(0, 1).await.unwrap_err();
        assert!(
            matches!(
                err,
                XenError::Init {
                    call: "libxenvchan_client_init",
                    ..
                }
            ),
            "{err}"
        );
        let err = XenListener::new(1, 1).accept().await.unwrap_err();
        assert!(
            matches!(
                err,
                XenError::Init {
                    call: "libxenvchan_server_init",
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            XenVchan::connect(u32::MAX, 1).await,
            Err(XenError::Domain(u32::MAX))
        ));
    }
}
