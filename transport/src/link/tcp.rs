//! TCP links. Every accepted and dialled socket has `TCP_NODELAY` set: frames are small and latency bound.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Dials `addr` and sets `TCP_NODELAY`.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Accepts one connection from `listener` and sets `TCP_NODELAY`.
pub async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    stream.set_nodelay(true)?;
    Ok((stream, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn both_ends_have_nodelay_and_carry_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(connect(addr), accept(&listener));
        let mut client = client.unwrap();
        let (mut server, peer) = server.unwrap();
        assert!(client.nodelay().unwrap());
        assert!(server.nodelay().unwrap());
        assert_eq!(peer, client.local_addr().unwrap());
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }
}
