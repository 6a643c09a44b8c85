//! Writes that make no progress fail ([`StallGuard`]).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

/// A stream whose writes fail with `TimedOut` once one has waited `timeout` without the
/// peer taking a byte, and keep failing after that (the connection is then only good for
/// closing). Time spent idle, with nothing to write, does not count.
///
/// Why: a client that stops reading (a frozen game client, a dead NAT mapping) fills the
/// kernel's socket buffers, and the task writing to it then waits forever. engineioxide's
/// WebSocket writer waits inside such a write, where it does not see its session being closed
/// by the heartbeat, so without a bound the socket would never be disconnected and would keep
/// its buffers and its place in the per-project connection count. tokio and hyper offer read
/// timeouts, not a bound on a stalled write, hence this small wrapper.
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Started when a write first waits; cleared when a write goes through.
    stalled: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S, timeout: Duration) -> StallGuard<S> {
        StallGuard { inner, timeout, stalled: None, failed: false }
    }

    /// Maps a write's poll: progress resets the clock, waiting runs it.
    fn guard<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(sleep.as_mut().poll(cx));
                self.failed = true;
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")))
            }
        }
    }

    fn refused<T>() -> Poll<io::Result<T>> {
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.failed {
            return Self::refused();
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.failed {
            return Self::refused();
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Self::refused();
        }
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_and_later_ones_too() {
        // A duplex pipe with a 16-byte buffer whose far end never reads.
        let (near, _far) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(near, Duration::from_millis(50));
        guarded.write_all(&[0; 16]).await.expect("fits in the buffer");
        let err = guarded.write_all(&[0; 1]).await.expect_err("the buffer is full and nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(guarded.write_all(&[0; 1]).await.is_err(), "the connection stays failed");
    }

    // On paused time the reader's 5 ms naps and the 50 ms limit are exact: on a loaded machine
    // (CI running the whole suite) real sleeps overshoot and cut a reader that was keeping up.
    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        let (near, mut far) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut buf = [0; 8];
            let mut total = 0;
            while total < 256 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                total += tokio::io::AsyncReadExt::read(&mut far, &mut buf).await.expect("read");
            }
        });
        // Each write waits for the reader, but never 50 ms without progress.
        let mut guarded = StallGuard::new(near, Duration::from_millis(50));
        guarded.write_all(&[0; 256]).await.expect("a reader taking bytes is never cut");
        reader.await.expect("reader");
    }
}
