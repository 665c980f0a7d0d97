//! Serving connections the way a well-configured nginx in front of an app would: a header
//! timeout, a body timeout (in `http`), an idle timeout, a small header buffer, and a cap on
//! open connections, all from [`mailbox::limits::ConnectionLimits`].
//!
//! The HTTP itself is hyper's (`http1::Builder` with tokio's timer: `header_read_timeout`,
//! `max_header_size`, `max_buf_size`); connections may upgrade (`GET /v1/subscribe`, see
//! `subscribe`), and an upgraded connection leaves this module's table, cap and idle timeout
//! as soon as hyper hands its socket over. What this module adds is connection management
//! hyper leaves to its user:
//!
//! - **The cap.** At most `max_connections` are open. When a new connection arrives at the
//!   cap, the oldest connection with no request being handled (an idle keep-alive, or one
//!   still sending its request head or body) is closed to make room, as nginx reuses idle
//!   keep-alive connections when it runs out; if every connection is busy in a handler, accepting
//!   pauses until one ends (new clients wait in the kernel's listen queue). A connection is
//!   never closed for room within [`SHED_GRACE`] of being accepted: without it, slow clients
//!   that reconnect as soon as they are dropped turn the table over in a few milliseconds, and
//!   a normal client whose head is still on its way (a loaded machine, a slow link) is closed
//!   before it could send it. So slow clients cannot keep a normal request out for longer than
//!   their reconnections wait in the listen queue plus the time it takes to send it.
//! - **Idle / stalled connections.** A connection with no request being handled on which no
//!   byte moved either way for `idle_timeout` is closed: idle keep-alives, and clients that
//!   stop reading their response (hyper has no write timeout).
//! - **Accept failures** (`EMFILE` and the like) pause accepting for 100 ms instead of
//!   spinning.
//! - **Graceful shutdown**: accepting stops, each connection is told to finish its request
//!   in progress and close (hyper's `graceful_shutdown`), and the server waits for them, at
//!   most the header and body timeouts.
//! - **A log line**, at most once a second and only when something was shed: counts only,
//!   never an address or a client IP.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mailbox::limits::ConnectionLimits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// Pause after a failed `accept` (out of file descriptors, memory, ...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a new connection is safe from being closed to make room at the cap: time to send
/// a request head after the handshake. It also bounds how fast clients that reconnect as soon
/// as they are shed are taken in at the cap: `max_connections` per `SHED_GRACE`.
pub const SHED_GRACE: Duration = Duration::from_millis(500);
/// Connections the kernel may hold completed for `accept` (Linux caps it at
/// `net.core.somaxconn`, 4096 by default). While accepting waits at the cap, new clients
/// wait here; past it their handshakes are dropped and they retry after 1 s, 3 s, 7 s, ...
/// (the standard library's `bind` asks for only 128).
pub const LISTEN_BACKLOG: u32 = 4096;
/// How often the shedding counts may be logged.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// hyper's smallest allowed read buffer.
const MIN_READ_BUFFER: usize = 8 << 10;

/// File descriptors kept for the store and the runtime (index, segments, epoll, stdio) when
/// the connection cap is derived from the process's limit.
const FD_RESERVE: u64 = 64;

/// Raises the soft limit on open files to the hard limit, and returns the connection cap
/// that fits under it: `wanted`, but at most half the limit and at least leave
/// [`FD_RESERVE`] descriptors for the store.
pub fn fit_connection_cap(wanted: usize) -> (usize, Option<u64>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            eprintln!("mailbox-server: could not raise the open-file limit: {err}");
        }
    }
    let files = getrlimit(Resource::Nofile).current;
    let cap = match files {
        Some(n) => {
            let fits = (n / 2).min(n.saturating_sub(FD_RESERVE)).max(1);
            wanted.min(usize::try_from(fits).unwrap_or(usize::MAX))
        }
        None => wanted,
    };
    (cap, files)
}

/// The subscription cap that fits under the open-file limit `files` next to
/// `connections` HTTP connections and the store's [`FD_RESERVE`]: `wanted`, or what is left
/// (at least 1).
pub fn fit_subscription_cap(wanted: usize, connections: usize, files: Option<u64>) -> usize {
    match files {
        Some(n) => {
            let left = n
                .saturating_sub(FD_RESERVE)
                .saturating_sub(connections as u64)
                .max(1);
            wanted.min(usize::try_from(left).unwrap_or(usize::MAX))
        }
        None => wanted,
    }
}

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as the
/// standard library's `bind` sets it on Unix).
///
/// # Errors
/// The socket, bind or listen call failing (address in use, no permission, ...).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Counts of what the connection layer did since start (counts only).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed at the cap to make room for a new one.
    pub shed_at_cap: AtomicU64,
    /// Times accepting paused because every connection was busy, or accepted within
    /// [`SHED_GRACE`].
    pub paused_at_cap: AtomicU64,
    /// Connections closed by hyper's header read timeout.
    pub header_timeouts: AtomicU64,
    /// Connections closed after `idle_timeout` without a byte moving.
    pub idle_closed: AtomicU64,
    /// Failed `accept` calls.
    pub accept_errors: AtomicU64,
}

impl ConnStats {
    /// Everything worth a log line: connections closed or refused because of the cap or a
    /// timeout, and failed accepts. (Idle keep-alives closing is normal and not counted.)
    fn shed_total(&self) -> u64 {
        [
            &self.shed_at_cap,
            &self.paused_at_cap,
            &self.header_timeouts,
            &self.accept_errors,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a connection's task shares with the accept loop and its I/O.
struct ConnShared {
    /// Requests being handled on this connection.
    busy: AtomicUsize,
    /// Of those, requests whose body has not been received completely yet.
    receiving: AtomicUsize,

    /// When a byte last moved, in ms since `epoch`.
    last_io_ms: AtomicU64,
    epoch: Instant,
    /// Closes the connection (made room for a newer one).
    kill: Notify,
}

impl ConnShared {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// Whether the connection may be closed to make room at the cap: nothing is being
    /// handled on it, or only requests still receiving their body (a body of a few KiB that
    /// has not arrived yet is as much a slow client as an unfinished head).
    fn is_evictable(&self) -> bool {
        self.busy.load(Ordering::Relaxed) <= self.receiving.load(Ordering::Relaxed)
    }
}

/// What [`ConnTable::make_room`] found at the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// There is room for one more connection (below the cap, or one was closed).
    Made,
    /// Every evictable connection is younger than the grace: ask again after this long (or
    /// when a connection ends).
    After(Duration),
    /// Every connection is handling a request: ask again when one ends.
    Busy,
}

/// Open connections by accept order (oldest first).
#[derive(Default)]
struct ConnTable {
    live: Mutex<BTreeMap<u64, Arc<ConnShared>>>,
    /// Signalled whenever a connection ends.
    freed: Notify,
}

impl ConnTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ConnShared>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Below the cap: [`Room::Made`]. At it: closes the oldest connection accepted at least
    /// `grace` ago with no request being handled past its body (see
    /// [`ConnShared::is_evictable`]) and answers [`Room::Made`]; else [`Room::After`] the
    /// time until the oldest evictable connection is `grace` old, or [`Room::Busy`] if every
    /// connection is busy.
    fn make_room(&self, cap: usize, grace: Duration, stats: &ConnStats) -> Room {
        let mut live = self.lock();
        if live.len() < cap {
            return Room::Made;
        }
        // Accept order is age order: the first evictable connection is the oldest one.
        let Some((&id, conn)) = live.iter().find(|(_, c)| c.is_evictable()) else {
            return Room::Busy;
        };
        let age = conn.epoch.elapsed();
        if age < grace {
            return Room::After(grace - age);
        }
        let conn = Arc::clone(conn);
        live.remove(&id);
        conn.kill.notify_one();
        bump(&stats.shed_at_cap);
        Room::Made
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.freed.notify_one();
    }
}

/// Where a connection's reader is in the request line it watches for length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineWatch {
    /// Reading a request line: this many bytes of it so far.
    InLine(usize),
    /// Past the connection's first request line: the rest is hyper's to judge. (Only the
    /// first is watched: where a later one starts is known only to hyper, and counting
    /// from a wrong place could refuse a pipelined body.)
    Past,
    /// The line was too long: `414` was sent, the connection reads as ended.
    Refused,
}

/// The answer to a request line longer than the head limit (hyper would say `431`).
const URI_TOO_LONG: &[u8] =
    b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

impl LineWatch {
    /// Follows `bytes` as they are read; returns the state after them. A request line
    /// reaching `limit` bytes without its end is `Refused`. Empty lines before a request
    /// line are skipped, as HTTP allows.
    fn advance(self, bytes: &[u8], limit: usize) -> Self {
        let mut state = self;
        for &b in bytes {
            state = match state {
                Self::InLine(n) if b == b'\n' => {
                    if n == 0 {
                        Self::InLine(0)
                    } else {
                        Self::Past
                    }
                }
                Self::InLine(0) if b == b'\r' => Self::InLine(0),
                Self::InLine(n) if n + 1 >= limit => return Self::Refused,
                Self::InLine(n) => Self::InLine(n + 1),
                other => return other,
            };
        }
        state
    }
}

/// A socket that records when a byte last moved, and answers `414` itself when the
/// connection's first request line is as long as the whole head limit (hyper would answer
/// it `431`, as a too-large head; a later request on a kept-alive connection still gets
/// that `431`).
struct Watched {
    io: TcpStream,
    conn: Arc<ConnShared>,
    line: LineWatch,
    max_line: usize,
}

impl Watched {
    fn progress<T>(&self, poll: &Poll<io::Result<T>>, moved: bool) {
        if matches!(poll, Poll::Ready(Ok(_))) && moved {
            self.conn.touch();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.line == LineWatch::Refused {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        self.progress(&poll, buf.filled().len() > before);
        if matches!(poll, Poll::Ready(Ok(()))) {
            let line = self.line.advance(
                buf.filled().get(before..).unwrap_or_default(),
                self.max_line,
            );
            self.line = line;
            if line == LineWatch::Refused {
                // hyper never sees this line: it reads the end of the connection instead.
                buf.set_filled(before);
                let _ = self.io.try_write(URI_TOO_LONG);
            }
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        let moved = matches!(poll, Poll::Ready(Ok(n)) if n > 0);
        self.progress(&poll, moved);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        let moved = matches!(poll, Poll::Ready(Ok(n)) if n > 0);
        self.progress(&poll, moved);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that counts as "still receiving" on its connection until it ends (or is
/// dropped), so that its connection stays evictable at the cap until then.
struct ReceivingBody {
    inner: Incoming,
    conn: Option<Arc<ConnShared>>,
}

impl ReceivingBody {
    fn new(inner: Incoming, conn: &Arc<ConnShared>) -> Self {
        let mut body = Self { inner, conn: None };
        if !hyper::body::Body::is_end_stream(&body.inner) {
            conn.receiving.fetch_add(1, Ordering::Relaxed);
            body.conn = Some(Arc::clone(conn));
        }
        body
    }

    fn received(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.receiving.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ReceivingBody {
    fn drop(&mut self) {
        self.received();
    }
}

impl hyper::body::Body for ReceivingBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &poll {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => hyper::body::Body::is_end_stream(&self.inner),
            Poll::Pending => false,
        };
        if ended {
            self.received();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

/// Counts a request as being handled on its connection while alive.
struct Busy(Arc<ConnShared>);

impl Busy {
    fn enter(conn: &Arc<ConnShared>) -> Self {
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(conn))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Resolves once the connection has had no request being handled and no byte moving for
/// `idle`.
async fn idle(conn: &ConnShared, idle: Duration) {
    loop {
        let quiet = conn.quiet_for();
        if quiet >= idle && !conn.is_busy() {
            return;
        }
        let wait = if conn.is_busy() {
            idle
        } else {
            idle.saturating_sub(quiet)
        };
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
}

/// Whether an accept error means "out of a resource" (back off) rather than "that one
/// connection failed" (go on).
fn is_resource_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE, rustix::io::Errno::NOBUFS, rustix::io::Errno::NOMEM]
            .iter()
            .any(|e| e.raw_os_error() == code)
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then stops
/// accepting, lets open connections finish their requests (at most the header and body
/// timeouts), and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let stats = Arc::new(ConnStats::default());
    let table = Arc::new(ConnTable::default());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_READ_BUFFER));
    let (stopping, stop_signal) = watch::channel(false);
    let logger = tokio::spawn(log_loop(
        Arc::clone(&stats),
        Arc::clone(&table),
        limits.max_connections,
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        // Room for one more connection, or wait for one to end.
        let mut paused = false;
        loop {
            let wait = match table.make_room(limits.max_connections, SHED_GRACE, &stats) {
                Room::Made => break,
                Room::After(left) => left,
                Room::Busy => SHED_GRACE,
            };
            if !paused {
                paused = true;
                bump(&stats.paused_at_cap);
            }
            tokio::select! {
                () = table.freed.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return finish(stopping, &table, limits, logger).await,
            }
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    bump(&stats.accept_errors);
                    if is_resource_error(&err) {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        bump(&stats.accepted);
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnShared {
            busy: AtomicUsize::new(0),
            receiving: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            kill: Notify::new(),
        });
        let id = next_id;
        next_id += 1;
        table.lock().insert(id, Arc::clone(&conn));
        let service = TowerToHyperService::new(app.clone());
        let handler = Arc::clone(&conn);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::enter(&handler);
            let request = request.map(|body| ReceivingBody::new(body, &handler));
            let response = hyper::service::Service::call(&service, request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let io = TokioIo::new(Watched {
            io: stream,
            conn: Arc::clone(&conn),
            line: LineWatch::InLine(0),
            max_line: limits.max_header_bytes,
        });
        // With upgrades: after a `101` the connection future ends and hands the socket to
        // the upgrade (a subscription), which then lives outside this table.
        let connection = http.serve_connection(io, service).with_upgrades();
        let table = Arc::clone(&table);
        let stats = Arc::clone(&stats);
        let idle_timeout = limits.idle_timeout;
        let mut stop_signal = stop_signal.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result && err.is_timeout() {
                            bump(&stats.header_timeouts);
                        }
                        break;
                    }
                    () = conn.kill.notified() => break,
                    () = idle(&conn, idle_timeout) => {
                        bump(&stats.idle_closed);
                        break;
                    }
                    _ = stop_signal.wait_for(|stop| *stop), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            table.remove(id);
        });
    }
    finish(stopping, &table, limits, logger).await;
}

/// Tells every connection to finish what it is doing and close, and waits for them (at most
/// the header and body timeouts).
async fn finish(
    stopping: watch::Sender<bool>,
    table: &ConnTable,
    limits: ConnectionLimits,
    logger: tokio::task::JoinHandle<()>,
) {
    stopping.send_replace(true);
    let grace = limits.header_read_timeout + limits.body_read_timeout;
    let drained = async {
        loop {
            let freed = table.freed.notified();
            if table.lock().is_empty() {
                return;
            }
            freed.await;
        }
    };
    let _ = tokio::time::timeout(grace, drained).await;
    logger.abort();
}

/// Logs the shedding counts, at most once a second and only when they changed.
async fn log_loop(stats: Arc<ConnStats>, table: Arc<ConnTable>, cap: usize) {
    let mut tick = tokio::time::interval(LOG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = 0;
    loop {
        tick.tick().await;
        let total = stats.shed_total();
        if total != last {
            last = total;
            let open = table.lock().len();
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            eprintln!(
                "mailbox-server: shedding connections: open={open} cap={cap} accepted={} \
                 shed_at_cap={} paused_at_cap={} header_timeouts={} idle_closed={} \
                 accept_errors={}",
                get(&stats.accepted),
                get(&stats.shed_at_cap),
                get(&stats.paused_at_cap),
                get(&stats.header_timeouts),
                get(&stats.idle_closed),
                get(&stats.accept_errors),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection accepted `age` ago with `busy` requests being handled.
    fn conn_aged(busy: usize, age: Duration) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            busy: AtomicUsize::new(busy),
            receiving: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(0),
            epoch: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            kill: Notify::new(),
        })
    }

    /// A connection accepted an hour ago (well past any grace).
    fn conn(busy: usize) -> Arc<ConnShared> {
        conn_aged(busy, Duration::from_secs(3_600))
    }

    const GRACE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
        let table = ConnTable::default();
        let stats = ConnStats::default();
        let (busy_old, idle_old, idle_new) = (conn(1), conn(0), conn(0));
        for (id, c) in [(1, &busy_old), (2, &idle_old), (3, &idle_new)] {
            table.lock().insert(id, Arc::clone(c));
        }
        assert_eq!(
            table.make_room(4, GRACE, &stats),
            Room::Made,
            "below the cap: nothing closed"
        );
        assert_eq!(table.lock().len(), 3);
        assert_eq!(table.make_room(3, GRACE, &stats), Room::Made);
        assert_eq!(table.lock().keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        // The evicted connection's task is told (the permit waits for it).
        tokio::time::timeout(Duration::from_secs(1), idle_old.kill.notified())
            .await
            .ok();
        assert_eq!(stats.shed_at_cap.load(Ordering::Relaxed), 1);
        idle_new.busy.store(1, Ordering::Relaxed);
        assert_eq!(
            table.make_room(2, GRACE, &stats),
            Room::Busy,
            "every connection busy: wait"
        );
        table.remove(3);
        assert_eq!(table.make_room(2, GRACE, &stats), Room::Made);
    }

    #[test]
    fn at_the_cap_a_request_still_receiving_its_body_makes_room_oldest_first() {
        let table = ConnTable::default();
        let stats = ConnStats::default();
        let (handling, trickling, idle_new) = (conn(1), conn(1), conn(0));
        trickling.receiving.store(1, Ordering::Relaxed);
        for (id, c) in [(1, &handling), (2, &trickling), (3, &idle_new)] {
            table.lock().insert(id, Arc::clone(c));
        }
        assert_eq!(table.make_room(3, GRACE, &stats), Room::Made);
        assert_eq!(
            table.lock().keys().copied().collect::<Vec<_>>(),
            vec![1, 3],
            "the older connection still sending its body was closed"
        );
        // Once its body is in, a request is being handled and is never closed for room.
        idle_new.busy.store(1, Ordering::Relaxed);
        assert_eq!(table.make_room(2, GRACE, &stats), Room::Busy);
    }

    #[test]
    fn a_connection_younger_than_the_grace_is_never_closed_for_room() {
        let table = ConnTable::default();
        let stats = ConnStats::default();
        // A busy old connection, then two idle ones accepted 50 s and 10 s ago.
        let (busy_old, young, younger) = (
            conn(1),
            conn_aged(0, Duration::from_secs(50)),
            conn_aged(0, Duration::from_secs(10)),
        );
        for (id, c) in [(1, &busy_old), (2, &young), (3, &younger)] {
            table.lock().insert(id, Arc::clone(c));
        }
        // Every evictable connection is within the grace: wait until the older idle one is
        // 60 s old, in about 10 s.
        let room = table.make_room(3, GRACE, &stats);
        assert!(
            matches!(room, Room::After(left)
                if left <= Duration::from_secs(10) && left > Duration::from_secs(9)),
            "{room:?}"
        );
        assert_eq!(table.lock().len(), 3, "nothing closed");
        assert_eq!(stats.shed_at_cap.load(Ordering::Relaxed), 0);
        // With a grace of 30 s the one accepted 50 s ago may go, oldest first.
        assert_eq!(
            table.make_room(3, Duration::from_secs(30), &stats),
            Room::Made
        );
        assert_eq!(table.lock().keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn a_request_line_as_long_as_the_head_limit_is_refused_with_414() {
        let limit = 16;
        let start = LineWatch::InLine(0);
        assert_eq!(
            start.advance(b"GET /v1/x HTTP/1.1\r\n", 32),
            LineWatch::Past
        );
        assert_eq!(
            start.advance(b"GET /v1/xxxxxxxxxxxxxxxx", limit),
            LineWatch::Refused
        );
        // In pieces, and after empty lines, the count is the same.
        let partway = start.advance(b"\r\n\r\nGET /v1/", limit);
        assert_eq!(partway, LineWatch::InLine(8));
        assert_eq!(partway.advance(b"abcdefgh", limit), LineWatch::Refused);
        assert_eq!(partway.advance(b"a HTTP\r\n", limit), LineWatch::Past);
        // Long headers after a short line are hyper's to judge (431).
        assert_eq!(
            LineWatch::Past.advance(&[b'a'; 100], limit),
            LineWatch::Past
        );
        assert!(URI_TOO_LONG.starts_with(b"HTTP/1.1 414 "));
    }

    #[tokio::test]
    async fn idle_resolves_only_without_requests_or_traffic() {
        let c = conn(1);
        let quiet = Duration::from_millis(30);
        let waited = tokio::time::timeout(Duration::from_millis(100), idle(&c, quiet)).await;
        assert!(waited.is_err(), "a busy connection is never idle");
        c.busy.store(0, Ordering::Relaxed);
        let waited = tokio::time::timeout(Duration::from_secs(5), idle(&c, quiet)).await;
        assert!(waited.is_ok());
        assert!(c.quiet_for() >= quiet);
    }

    #[test]
    fn subscriptions_get_what_the_open_file_limit_leaves_after_connections_and_the_store() {
        assert_eq!(fit_subscription_cap(16_384, 4_096, Some(1 << 20)), 16_384);
        assert_eq!(fit_subscription_cap(16_384, 128, Some(256)), 64);
        assert_eq!(
            fit_subscription_cap(16_384, 4_096, Some(1_024)),
            1,
            "at least one"
        );
        assert_eq!(fit_subscription_cap(7, 4_096, None), 7);
    }

    #[test]
    fn the_cap_fits_under_the_open_file_limit() {
        let (cap, files) = fit_connection_cap(usize::MAX);
        if let Some(files) = files {
            assert!(
                cap as u64 <= files / 2 && cap as u64 <= files.saturating_sub(FD_RESERVE).max(1)
            );
        }
        assert_eq!(fit_connection_cap(10).0, 10.min(cap));
    }
}
