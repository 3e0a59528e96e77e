//! A session whose socket pgrehearse reads and writes itself. The load
//! driver's app connections speak the extended query protocol directly
//! (`workload::wire`), which costs the client less CPU per request than a
//! round trip through tokio-postgres' connection task — and on a 2-core
//! machine the client's CPU is taken from the server.
//!
//! Opening the session stays tokio-postgres' work (`connect_raw`): TLS
//! negotiation, authentication (SCRAM with channel binding, md5, password)
//! and the startup parameters. It runs over a `Handoff`, a stream shared
//! with us; once the session is ready we take the stream back and drop
//! tokio-postgres' client and connection without polling them again, so
//! they never read or write it. The server has nothing more to say after
//! ReadyForQuery, so no byte is left in their buffers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use tokio_postgres::{CancelToken, Config};

use super::tls_handshake::{Handshake, HandshakeError, RustlsStream};

/// A socket to the server, before any TLS.
pub enum Plain {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A session's stream: plain, or TLS over a plain socket.
pub enum SessionStream {
    Plain(Plain),
    Tls(Box<RustlsStream<Plain>>),
}

/// Forward AsyncRead/AsyncWrite to whichever stream an enum holds.
macro_rules! forward_io {
    ($ty:ty, $($variant:path),+) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($variant(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($variant(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($variant(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($variant(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

forward_io!(Plain, Plain::Tcp, Plain::Unix);
forward_io!(SessionStream, SessionStream::Plain, SessionStream::Tls);

impl Plain {
    /// Connect to the first host and port of `cfg` (pgrehearse configures
    /// one), within its connect timeout.
    pub async fn connect(cfg: &Config) -> io::Result<Plain> {
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let connect = async {
            match cfg.get_hosts().first() {
                Some(Host::Tcp(host)) => {
                    let s = TcpStream::connect((host.as_str(), port)).await?;
                    // As libpq and tokio-postgres: a request is one small write.
                    s.set_nodelay(true)?;
                    Ok(Plain::Tcp(s))
                }
                Some(Host::Unix(dir)) => Ok(Plain::Unix(
                    UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await?,
                )),
                None => Err(io::Error::new(io::ErrorKind::InvalidInput, "no host")),
            }
        };
        match cfg.get_connect_timeout() {
            Some(t) => tokio::time::timeout(*t, connect)
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
            None => connect.await,
        }
    }
}

/// The stream tokio-postgres opens the session over, shared with us.
#[derive(Clone)]
struct Handoff(Arc<Mutex<Option<SessionStream>>>);

impl Handoff {
    fn new(s: SessionStream) -> Handoff {
        Handoff(Arc::new(Mutex::new(Some(s))))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<SessionStream>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<SessionStream> {
        self.slot().take()
    }

    /// Run `f` on the stream; an error once it was taken back.
    fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut SessionStream>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.slot().as_mut() {
            Some(s) => f(Pin::new(s)),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the session's stream was handed over",
            ))),
        }
    }
}

impl AsyncRead for Handoff {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Handoff {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }
}

impl TlsStream for Handoff {
    fn channel_binding(&self) -> ChannelBinding {
        match self.slot().as_ref() {
            Some(SessionStream::Tls(t)) => t.channel_binding(),
            _ => ChannelBinding::none(),
        }
    }
}

/// The TLS handshake over a [`Handoff`]: the TLS stream replaces the plain
/// one in the shared slot, so what we take back is encrypted too.
struct HandoffTls(Handshake);

impl TlsConnect<Handoff> for HandoffTls {
    type Stream = Handoff;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<Handoff, HandshakeError>> + Send>>;

    fn connect(self, stream: Handoff) -> Self::Future {
        Box::pin(async move {
            let plain = match stream.take() {
                Some(SessionStream::Plain(p)) => p,
                other => {
                    *stream.slot() = other;
                    return Err(HandshakeError::new("TLS was negotiated twice"));
                }
            };
            let tls = self.0.connect(plain).await?;
            *stream.slot() = Some(SessionStream::Tls(Box::new(tls)));
            Ok(stream)
        })
    }
}

/// Why a session could not be opened: the socket, or the session itself.
#[derive(Debug)]
pub enum OpenError {
    Socket(io::Error),
    Session(tokio_postgres::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Socket(e) => write!(f, "error connecting to server: {e}"),
            OpenError::Session(e) => f.write_str(&crate::pg::error_text(e)),
        }
    }
}

impl std::error::Error for OpenError {}

/// Open a session with `cfg` and take its stream back, with the key that
/// cancels what it runs (see [`cancel`]).
pub async fn open(
    cfg: &Config,
    handshake: Handshake,
) -> Result<(SessionStream, CancelToken), OpenError> {
    let plain = Plain::connect(cfg).await.map_err(OpenError::Socket)?;
    let stream = Handoff::new(SessionStream::Plain(plain));
    let (client, connection) = cfg
        .connect_raw(stream.clone(), HandoffTls(handshake))
        .await
        .map_err(OpenError::Session)?;
    let cancel = client.cancel_token();
    // Unpolled, neither ever touches the stream again; dropping the client
    // sends nothing (a Terminate goes out only when the connection is polled).
    drop(client);
    drop(connection);
    let stream = stream.take().ok_or_else(|| {
        OpenError::Socket(io::Error::new(io::ErrorKind::NotConnected, "stream lost"))
    })?;
    Ok((stream, cancel))
}

/// Cancel what the session of `token` (from [`open`]) runs: a session opened
/// over our own socket has a key that knows no host, so the cancel request
/// goes over a socket we open, with TLS as the session had it.
pub async fn cancel(cfg: &Config, token: &CancelToken, handshake: Handshake) {
    if let Ok(plain) = Plain::connect(cfg).await {
        let _ = token.cancel_query_raw(plain, handshake).await;
    }
}
