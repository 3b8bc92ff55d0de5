//! Unix domain socket links.
//!
//! Binding removes a stale socket file (one that refuses connections) but never a live one or a file that
//! is not a socket. The listener removes its socket file when dropped.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

/// Dials the socket at `path`.
pub async fn connect(path: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(path).await
}

/// A Unix listener that removes its socket file on drop.
#[derive(Debug)]
pub struct UnixSocketListener {
    listener: UnixListener,
    path: PathBuf,
}

impl UnixSocketListener {
    /// Binds `path`, replacing a stale socket file left by a dead server.
    pub async fn bind(path: &Path) -> io::Result<UnixSocketListener> {
        match UnixListener::bind(path) {
            Ok(listener) => Ok(UnixSocketListener {
                listener,
                path: path.to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let is_socket = std::fs::symlink_metadata(path)?.file_type().is_socket();
                let refused = matches!(UnixStream::connect(path).await, Err(ref c) if c.kind() == io::ErrorKind::ConnectionRefused);
                if !(is_socket && refused) {
                    return Err(e);
                }
                std::fs::remove_file(path)?;
                Ok(UnixSocketListener {
                    listener: UnixListener::bind(path)?,
                    path: path.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<UnixStream> {
        Ok(self.listener.accept().await?.0)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocketListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn stale_socket_is_replaced_and_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mp.sock");
        // A stale socket file: bound by a std listener that is gone.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let listener = UnixSocketListener::bind(&path).await.unwrap();
        let (client, server) = tokio::join!(connect(&path), listener.accept());
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        server.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        // A live socket answers the probe, so a second bind refuses to replace it.
        let err = UnixSocketListener::bind(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        assert!(!path.exists(), "the listener removes its socket file");
    }

    #[tokio::test]
    async fn a_regular_file_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, b"data").unwrap();
        assert!(UnixSocketListener::bind(&path).await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }
}
