//! The IO type of an accepted connection.
//!
//! Owns: [`LingeringTcp`] (an accepted socket with Nagle off and a
//! lingering close) and [`incoming`], the stream of them a tonic server
//! serves. Must not: speak HTTP/2 or gRPC.

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Accepted connections with Nagle's algorithm off. gRPC writes many small
/// frames (credit requests, single-event responses); with Nagle on, a small
/// write waits for the peer's delayed ACK, which costs up to 40 ms per round
/// trip. Found by `eventbus bench replay` (5,000 events/s before, see
/// BENCHMARKS.md).
pub(crate) fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<LingeringTcp>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        if let Err(e) = conn.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        Ok(LingeringTcp {
            inner: conn,
            linger: None,
        })
    })
}

/// How long a closing connection keeps reading, and discarding, what the
/// client still sends after the server's last frame. Closing a socket with
/// unread input makes the kernel answer with RST, and a client that gets
/// the RST can lose frames it had not read yet: at shutdown, a PublishStream
/// client still pipelining requests lost the UNAVAILABLE trailers that end
/// its stream and saw "broken pipe" instead (found by
/// tests/integration/graceful.rs). One second is plenty for a client on a
/// live connection to see GOAWAY and close; it bounds a client that does not.
const LINGER_ON_CLOSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads per poll while lingering before yielding, so a client that keeps
/// sending cannot hold a runtime thread.
const LINGER_READS_PER_POLL: usize = 16;

/// An accepted connection whose shutdown sends FIN, then drains input until
/// the client closes or [`LINGER_ON_CLOSE`] passes, so the close is never an
/// RST that could destroy the server's final frames (a "lingering close").
pub(crate) struct LingeringTcp {
    inner: tokio::net::TcpStream,
    linger: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl tonic::transport::server::Connected for LingeringTcp {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl tokio::io::AsyncRead for LingeringTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for LingeringTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        use tokio::io::AsyncRead;
        let this = &mut *self;
        if this.linger.is_none() {
            // FIN first: everything written so far reaches the client.
            std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER_ON_CLOSE)));
        }
        let mut scratch = [0u8; 4096];
        for _ in 0..LINGER_READS_PER_POLL {
            if let Some(deadline) = this.linger.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                // The client closed too: nothing is left to turn into an RST.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
