//! Lingering close: a connection the server is done with is half-closed and
//! drained for a moment before its socket is released.
//!
//! When the server closes a TCP socket while bytes the peer sent are still
//! unread (an HTTP/2 client keeps sending `WINDOW_UPDATE` frames while it reads
//! the last of a result), the kernel answers with a reset and throws away what
//! the server had written but not yet sent: the client sees the tail of a
//! stream that the server called complete end with "connection reset". This
//! happened on graceful shutdown, where hyper closes each connection as soon as
//! its last stream is written. [`Lingering`] sends FIN instead and reads (and
//! discards) what the peer still sends until it closes too, for at most
//! [`LINGER`], the way web servers have long done it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Longest a closed connection is drained before its socket is released.
pub const LINGER: Duration = Duration::from_secs(2);

/// A server-side TCP connection that closes gracefully when dropped.
#[derive(Debug)]
pub struct Lingering {
    /// `None` only after drop has handed the socket to the drain task.
    stream: Option<TcpStream>,
    info: TcpConnectInfo,
}

impl Lingering {
    pub fn new(stream: TcpStream) -> Self {
        let info = stream.connect_info();
        Self {
            stream: Some(stream),
            info,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection closed"))
    }
}

impl Connected for Lingering {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        // Outside a runtime (never the case in the server) the socket simply closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(LINGER, async {
                // FIN after everything written; then wait for the peer's.
                if stream.shutdown().await.is_err() {
                    return;
                }
                let mut sink = [0u8; 4096];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// The peer keeps writing after the server is done, as an HTTP/2 client
    /// does: everything the server wrote still arrives, ending in EOF, not a reset.
    #[tokio::test]
    async fn unread_input_does_not_reset_what_was_written() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let payload = 8usize << 20;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = Lingering::new(stream);
            conn.write_all(&vec![7u8; payload]).await.unwrap();
            // Dropped with the client's bytes unread and the tail unsent.
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&[1u8; 64 << 10]).await.unwrap();
        let mut got = 0;
        let mut buf = [0u8; 16 << 10];
        loop {
            tokio::time::sleep(Duration::from_micros(200)).await;
            match client.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("after {got} of {payload} bytes: {e}"),
            }
        }
        assert_eq!(got, payload);
        server.await.unwrap();
    }
}
