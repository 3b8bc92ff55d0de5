//! A minimal HTTP/1.1 endpoint for `/metrics` and `/ready`: one request per connection, bounded in size and
//! time, anything else answered 404 / 405 / 400.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Probe;

/// Longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Bind `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("metrics endpoint {addr}: cannot listen: {e}"))
}

/// Serve on `listener` until the task is dropped. Runs on the current (actix) arbiter.
pub async fn serve(listener: TcpListener, probe: Probe) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let probe = probe.clone();
        actix_rt::spawn(async move {
            if let Err(err) = answer(stream, &probe).await {
                tracing::debug!("metrics request failed: {err}");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, probe: &Probe) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, content_type, body) = match request_target(&head) {
        Some(("GET", "/metrics")) => match probe.snapshot().await.encode() {
            Ok(text) => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => (
                "500 Internal Server Error",
                "text/plain",
                "encoding failed\n".to_owned(),
            ),
        },
        Some(("GET", "/ready")) if probe.ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        Some(("GET", "/ready")) => (
            "503 Service Unavailable",
            "text/plain",
            "not provisioned: serving the provisioning endpoint only\n".to_owned(),
        ),
        Some(("GET", _)) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /ready\n".to_owned(),
        ),
        Some(_) => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
        None => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Read until the end of the request head (or `MAX_HEAD` bytes).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// Method and path of the request line.
fn request_target(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    Some((method, target.split('?').next().unwrap_or(target)))
}

#[cfg(test)]
mod tests {
    use super::request_target;

    #[test]
    fn request_lines_parse_or_are_refused() {
        assert_eq!(
            request_target(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_target(b"GET /ready?x=1 HTTP/1.0\r\n\r\n"),
            Some(("GET", "/ready"))
        );
        assert_eq!(
            request_target(b"POST / HTTP/1.1\r\n\r\n"),
            Some(("POST", "/"))
        );
        assert_eq!(request_target(b"garbage\r\n\r\n"), None);
        assert_eq!(request_target(b"GET / SMTP\r\n\r\n"), None);
        assert_eq!(request_target(&[0xff, 0xfe, b'\n']), None);
    }
}
