//! The client side of `oxinfer health`: one HTTP/1.1 request to `/v2/health/ready`, with nothing but std
//! (the container image has no shell and no curl).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Whether the server at `host:port` answers `GET /v2/health/ready` with 200.
pub fn ready(host: &str, port: u16, timeout: Duration) -> std::io::Result<bool> {
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("cannot resolve {host}"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /v2/health/ready HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
}
