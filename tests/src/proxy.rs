//! A TCP fault proxy for reliability tests, in the spirit of Jepsen's nemeses and Toxiproxy.
//!
//! A [`Proxy`] listens on `127.0.0.1:0` and forwards every connection to one target on the
//! loopback interface. While it runs, a test can switch it between [`Mode::PassThrough`],
//! [`Mode::Latency`] and [`Mode::Blackhole`] (sockets stay open, nothing flows), cut every current
//! connection ([`Proxy::cut_all`]), or arm a trap that cuts the next connection to send a
//! `COMMIT` after the server has processed it but before its reply reaches the client
//! ([`Proxy::cut_after_next_commit`]): the one fault that makes a commit's outcome unknown.
//!
//! To find `COMMIT`s, the proxy parses the client-to-server stream into protocol messages
//! ([`PgFrontend`], [`MySqlFrontend`]) and counts them, so a test can assert how many round trips
//! an operation cost. It never parses TLS: a connection that negotiates TLS is forwarded opaquely
//! from then on, which is why [`Proxy::url_for`] turns TLS off in the URLs it rewrites.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// How long a commit trap waits for the server's reply to the `COMMIT` before cutting anyway.
/// Waiting for it makes the outcome deterministic (the commit happened) while the client still
/// cannot know.
const COMMIT_REPLY_WAIT: Duration = Duration::from_secs(5);

/// The size of one read; also the most one forwarded chunk holds.
const CHUNK: usize = 16 * 1024;

/// How many bytes of a message body the framers keep to recognize a `COMMIT`.
const PEEK: usize = 32;

/// The wire protocol spoken through a proxy, which decides how client messages are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// PostgreSQL frontend messages.
    Postgres,
    /// MySQL/MariaDB client packets.
    MySql,
    /// Unparsed bytes: no message counts and no commit traps.
    Raw,
}

impl Protocol {
    /// The protocol a database URL's scheme names (`Raw` for anything else).
    pub fn from_url(url: &str) -> Protocol {
        match crate::Backend::from_url(url) {
            Some(crate::Backend::Postgres) => Protocol::Postgres,
            Some(crate::Backend::MySql) => Protocol::MySql,
            _ => Protocol::Raw,
        }
    }
}

/// What the proxy does with the bytes of open connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards everything at once.
    PassThrough,
    /// Waits this long before forwarding each chunk in either direction.
    Latency(Duration),
    /// Forwards nothing, in either direction, and keeps every socket open: the network of a
    /// server that hangs or a firewall that drops packets. New connections are accepted and then
    /// starve too. Bytes held back flow again when the mode changes.
    Blackhole,
}

/// Counters of one proxy, for assertions and summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Client connections open now.
    pub open: u64,
    /// Client protocol messages forwarded (one per message, however the bytes were read).
    pub client_messages: u64,
    /// `COMMIT` messages seen from clients.
    pub commits_seen: u64,
    /// Connections cut by a commit trap, after their `COMMIT` reached the server.
    pub commits_cut: u64,
    /// Connections cut by [`Proxy::cut_all`].
    pub connections_cut: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    client_messages: AtomicU64,
    commits_seen: AtomicU64,
    commits_cut: AtomicU64,
    connections_cut: AtomicU64,
    /// Armed commit traps not yet sprung.
    commit_traps: AtomicU64,
}

impl Counters {
    /// Takes one armed commit trap, if there is one.
    fn take_commit_trap(&self) -> bool {
        self.commit_traps
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A running fault proxy. Dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    protocol: Protocol,
    mode: watch::Sender<Mode>,
    /// Bumped by `cut_all`; every connection ends when it changes.
    cut: watch::Sender<u64>,
    counters: Arc<Counters>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its `JoinSet`, which aborts every connection task and so
        // closes their sockets.
        self.accept_task.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `target`, which must be on the loopback interface.
    ///
    /// # Errors
    ///
    /// When `target` is not a loopback address, or no port can be bound on `127.0.0.1`.
    pub async fn start(target: SocketAddr, protocol: Protocol) -> io::Result<Proxy> {
        if !target.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the fault proxy only forwards to loopback addresses, not {target}"),
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::PassThrough);
        let (cut, _) = watch::channel(0);
        let counters = Arc::new(Counters::default());
        let accept_task = tokio::spawn(accept_loop(
            listener,
            target,
            protocol,
            mode.clone(),
            cut.clone(),
            Arc::clone(&counters),
        ));
        Ok(Proxy {
            addr,
            target,
            protocol,
            mode,
            cut,
            counters,
            accept_task,
        })
    }

    /// Starts a proxy to the host and port of a database URL, speaking the protocol its scheme
    /// names. The host must be `127.0.0.1` or `localhost`.
    ///
    /// # Errors
    ///
    /// When the URL has no host or port, names another host, or no port can be bound.
    pub async fn for_url(url: &str) -> io::Result<Proxy> {
        let parsed = url::Url::parse(url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let protocol = Protocol::from_url(url);
        let default_port = match protocol {
            Protocol::Postgres => Some(5432),
            Protocol::MySql => Some(3306),
            Protocol::Raw => None,
        };
        let port = parsed
            .port()
            .or(default_port)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL names no port"))?;
        let ip = match parsed.host_str() {
            Some("127.0.0.1" | "localhost") => std::net::Ipv4Addr::LOCALHOST,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the fault proxy only forwards to 127.0.0.1, not {other:?}"),
                ));
            }
        };
        Proxy::start(SocketAddr::from((ip, port)), protocol).await
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `original` with its host and port replaced by the proxy's, and TLS turned off (the proxy
    /// must read the protocol to count messages and find `COMMIT`s; over loopback TLS protects
    /// nothing).
    ///
    /// # Panics
    ///
    /// When `original` is not a URL.
    pub fn url_for(&self, original: &str) -> String {
        let mut url = url::Url::parse(original)
            .unwrap_or_else(|e| panic!("{} is not a URL: {e}", crate::redact(original)));
        // Both only fail for URLs that cannot have a host, which database URLs always have.
        let _ = url.set_host(Some("127.0.0.1"));
        let _ = url.set_port(Some(self.addr.port()));
        let tls_param = match self.protocol {
            Protocol::Postgres => Some(("sslmode", "disable")),
            Protocol::MySql => Some(("ssl-mode", "DISABLED")),
            Protocol::Raw => None,
        };
        if let Some((key, value)) = tls_param
            && !url.query_pairs().any(|(k, _)| k == key)
        {
            url.query_pairs_mut().append_pair(key, value);
        }
        url.to_string()
    }

    /// Switches the mode of every connection, current and future.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Closes every connection open now and returns how many there were. Connections accepted
    /// afterwards are not affected.
    pub fn cut_all(&self) -> u64 {
        let open = self.counters.open.load(Ordering::Acquire);
        self.cut.send_modify(|generation| *generation += 1);
        open
    }

    /// Arms a one-shot trap: the next `COMMIT` any client sends is forwarded, the server's reply
    /// is awaited and thrown away, and that connection is closed. The client cannot tell whether
    /// its transaction committed; it did. Each call arms one more trap.
    pub fn cut_after_next_commit(&self) {
        self.counters.commit_traps.fetch_add(1, Ordering::AcqRel);
    }

    /// Disarms traps that have not sprung yet and returns how many there were.
    pub fn disarm_commit_traps(&self) -> u64 {
        self.counters.commit_traps.swap(0, Ordering::AcqRel)
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Acquire),
            open: c.open.load(Ordering::Acquire),
            client_messages: c.client_messages.load(Ordering::Acquire),
            commits_seen: c.commits_seen.load(Ordering::Acquire),
            commits_cut: c.commits_cut.load(Ordering::Acquire),
            connections_cut: c.connections_cut.load(Ordering::Acquire),
        }
    }

    /// Client messages forwarded so far.
    pub fn client_messages(&self) -> u64 {
        self.counters.client_messages.load(Ordering::Acquire)
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    protocol: Protocol,
    mode: watch::Sender<Mode>,
    cut: watch::Sender<u64>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::AcqRel);
                connections.spawn(connection(
                    client,
                    target,
                    protocol,
                    mode.subscribe(),
                    cut.subscribe(),
                    Arc::clone(&counters),
                ));
            }
            // Reaps finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Decrements the open count however the connection task ends, aborts included.
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a connection's forwarding ended.
enum Ended {
    /// One side closed or failed.
    Closed,
    /// A commit trap sprang.
    CommitCut,
}

async fn connection(
    client: TcpStream,
    target: SocketAddr,
    protocol: Protocol,
    mode: watch::Receiver<Mode>,
    mut cut: watch::Receiver<u64>,
    counters: Arc<Counters>,
) {
    counters.open.fetch_add(1, Ordering::AcqRel);
    let _open = OpenGuard(Arc::clone(&counters));
    cut.borrow_and_update();
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let commit = CommitHandoff::default();
    let framer = Framer::new(protocol);
    tokio::select! {
        ended = client_to_server(client_read, server_write, framer, mode.clone(), &counters, &commit) => {
            if matches!(ended, Ended::CommitCut) {
                counters.commits_cut.fetch_add(1, Ordering::AcqRel);
            }
        }
        () = server_to_client(server_read, client_write, mode, &commit) => {}
        _ = cut.changed() => {
            counters.connections_cut.fetch_add(1, Ordering::AcqRel);
        }
    }
    // Returning drops all four halves: both sockets close.
}

/// Shared by the two directions of one connection while a commit trap springs.
#[derive(Default)]
struct CommitHandoff {
    /// Set before the trapped `COMMIT` is forwarded: from then on the server's bytes are dropped.
    swallow: AtomicBool,
    /// Signalled when the server's reply to the trapped `COMMIT` arrived (and was dropped).
    replied: Notify,
}

async fn client_to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut framer: Framer,
    mut mode: watch::Receiver<Mode>,
    counters: &Counters,
    commit: &CommitHandoff,
) -> Ended {
    let mut buf = vec![0u8; CHUNK];
    let mut frames = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(n) => n,
        };
        frames.clear();
        framer.feed(&buf[..n], &mut frames);
        await_mode(&mut mode).await;
        for frame in &frames {
            counters.client_messages.fetch_add(1, Ordering::AcqRel);
            if !frame.commit {
                continue;
            }
            counters.commits_seen.fetch_add(1, Ordering::AcqRel);
            if counters.take_commit_trap() {
                commit.swallow.store(true, Ordering::Release);
                // Everything up to and including the COMMIT reaches the server.
                if to.write_all(&buf[..frame.end]).await.is_err() {
                    return Ended::Closed;
                }
                let _ = tokio::time::timeout(COMMIT_REPLY_WAIT, commit.replied.notified()).await;
                return Ended::CommitCut;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Ended::Closed;
        }
    }
}

async fn server_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    commit: &CommitHandoff,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if commit.swallow.load(Ordering::Acquire) {
            // `notify_one` stores a permit, so the other direction sees it even if it starts
            // waiting later.
            commit.replied.notify_one();
            continue;
        }
        await_mode(&mut mode).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits while the proxy is a blackhole, then applies the added latency, if any.
async fn await_mode(mode: &mut watch::Receiver<Mode>) {
    let current = mode.wait_for(|m| *m != Mode::Blackhole).await.map(|m| *m);
    let Ok(current) = current else {
        // The proxy is gone; the connection is about to be aborted.
        return std::future::pending().await;
    };
    if let Mode::Latency(delay) = current {
        tokio::time::sleep(delay).await;
    }
}

/// The end of one complete client message within the bytes just fed, and whether it is a
/// `COMMIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The offset just past the message's last byte, in the slice passed to `feed`.
    pub end: usize,
    /// Whether the message is a plain-text `COMMIT`.
    pub commit: bool,
}

/// A client-stream framer for one protocol.
#[derive(Debug)]
enum Framer {
    Postgres(PgFrontend),
    MySql(MySqlFrontend),
    Raw,
}

impl Framer {
    fn new(protocol: Protocol) -> Framer {
        match protocol {
            Protocol::Postgres => Framer::Postgres(PgFrontend::new()),
            Protocol::MySql => Framer::MySql(MySqlFrontend::new()),
            Protocol::Raw => Framer::Raw,
        }
    }

    fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        match self {
            Framer::Postgres(f) => f.feed(data, out),
            Framer::MySql(f) => f.feed(data, out),
            Framer::Raw => {}
        }
    }
}

/// Whether a query text is a bare `COMMIT` (any case, surrounding blanks, an optional `;`, and
/// PostgreSQL's terminating NUL).
pub fn is_commit_sql(text: &[u8]) -> bool {
    let text = text.strip_suffix(&[0]).unwrap_or(text).trim_ascii();
    let text = text.strip_suffix(b";").unwrap_or(text).trim_ascii();
    text.eq_ignore_ascii_case(b"COMMIT")
}

/// The part of a framer that collects one header and then skips a body of known length, keeping
/// its first [`PEEK`] bytes.
#[derive(Debug, Default)]
struct Collect {
    header: Vec<u8>,
    /// Body bytes still to come, once the header is complete.
    remaining: Option<usize>,
    body_len: usize,
    peek: Vec<u8>,
}

impl Collect {
    /// Consumes header bytes from `data[*i..]` until `header_len` are held; true when complete.
    fn header(&mut self, data: &[u8], i: &mut usize, header_len: usize) -> bool {
        let take = (header_len - self.header.len()).min(data.len() - *i);
        self.header.extend_from_slice(&data[*i..*i + take]);
        *i += take;
        self.header.len() == header_len
    }

    /// Consumes body bytes; true when the body is complete.
    fn body(&mut self, data: &[u8], i: &mut usize) -> bool {
        let remaining = self.remaining.unwrap_or(0);
        let take = remaining.min(data.len() - *i);
        let keep = take.min(PEEK.saturating_sub(self.peek.len()));
        self.peek.extend_from_slice(&data[*i..*i + keep]);
        *i += take;
        self.remaining = Some(remaining - take);
        remaining == take
    }

    fn reset(&mut self) {
        self.header.clear();
        self.remaining = None;
        self.body_len = 0;
        self.peek.clear();
    }
}

/// Frames the PostgreSQL frontend stream: an untyped startup packet (possibly preceded by
/// `SSLRequest` or `GSSENCRequest` packets), then typed messages (a type byte and an `i32`
/// length that counts itself). After a negotiation request the server answers with one byte; if
/// the client then starts a TLS handshake (record type `0x16`), the rest is opaque.
#[derive(Debug)]
pub struct PgFrontend {
    state: PgState,
    collect: Collect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PgState {
    /// Startup, SSLRequest, GSSENCRequest or CancelRequest: `i32` length, `i32` code, body.
    Untyped,
    /// After SSLRequest/GSSENCRequest: the next byte tells TLS from another untyped packet.
    Negotiating,
    /// Regular messages.
    Typed,
    /// Encrypted or not understood: forwarded without framing.
    Opaque,
}

const PG_SSL_REQUEST: u32 = 80_877_103;
const PG_GSSENC_REQUEST: u32 = 80_877_104;
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl Default for PgFrontend {
    fn default() -> Self {
        PgFrontend::new()
    }
}

impl PgFrontend {
    /// A framer at the start of a connection.
    pub fn new() -> PgFrontend {
        PgFrontend {
            state: PgState::Untyped,
            collect: Collect::default(),
        }
    }

    /// Whether the framer gave up on the stream (TLS or a malformed length).
    pub fn is_opaque(&self) -> bool {
        self.state == PgState::Opaque
    }

    /// Feeds the next bytes of the stream and appends one [`Frame`] for each message completed
    /// in them.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                PgState::Opaque => return,
                PgState::Negotiating => {
                    if data[i] == TLS_HANDSHAKE_RECORD {
                        self.state = PgState::Opaque;
                        return;
                    }
                    self.state = PgState::Untyped;
                }
                PgState::Untyped | PgState::Typed => {
                    let typed = self.state == PgState::Typed;
                    let c = &mut self.collect;
                    if c.remaining.is_none() {
                        let header_len = if typed { 5 } else { 4 };
                        if !c.header(data, &mut i, header_len) {
                            return;
                        }
                        let len_bytes = &c.header[header_len - 4..header_len];
                        let len = u32::from_be_bytes([
                            len_bytes[0],
                            len_bytes[1],
                            len_bytes[2],
                            len_bytes[3],
                        ]) as usize;
                        if len < 4 {
                            self.state = PgState::Opaque;
                            return;
                        }
                        c.body_len = len - 4;
                        c.remaining = Some(len - 4);
                    }
                    if !c.body(data, &mut i) {
                        return;
                    }
                    let commit = typed
                        && c.header[0] == b'Q'
                        && c.body_len <= PEEK
                        && is_commit_sql(&c.peek);
                    if !typed {
                        let code = c
                            .peek
                            .get(..4)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                        self.state = match code {
                            Some(PG_SSL_REQUEST | PG_GSSENC_REQUEST) => PgState::Negotiating,
                            _ => PgState::Typed,
                        };
                    }
                    c.reset();
                    out.push(Frame { end: i, commit });
                }
            }
        }
    }
}

/// Frames the MySQL client stream: packets of a 3-byte little-endian length, a sequence id and
/// a payload; a payload of `0xFFFFFF` bytes continues in the next packet. One logical message is
/// one frame. A command starts a new sequence (id 0); `COM_QUERY` is `0x03` followed by the SQL.
/// A first packet that is a 32-byte `SSLRequest` (capability `CLIENT_SSL`) makes the rest
/// opaque.
#[derive(Debug)]
pub struct MySqlFrontend {
    first: bool,
    opaque: bool,
    /// The sequence id and peek of the logical message's first packet.
    message_seq: Option<u8>,
    message_peek: Vec<u8>,
    message_len: usize,
    collect: Collect,
}

const MYSQL_MAX_PACKET: usize = 0xFF_FFFF;
const MYSQL_COM_QUERY: u8 = 0x03;
const MYSQL_CLIENT_SSL: u32 = 0x0800;
const MYSQL_SSL_REQUEST_LEN: usize = 32;

impl Default for MySqlFrontend {
    fn default() -> Self {
        MySqlFrontend::new()
    }
}

impl MySqlFrontend {
    /// A framer at the start of a connection (the client's first packet is its handshake
    /// response).
    pub fn new() -> MySqlFrontend {
        MySqlFrontend {
            first: true,
            opaque: false,
            message_seq: None,
            message_peek: Vec::new(),
            message_len: 0,
            collect: Collect::default(),
        }
    }

    /// Whether the framer gave up on the stream (TLS).
    pub fn is_opaque(&self) -> bool {
        self.opaque
    }

    /// Feeds the next bytes of the stream and appends one [`Frame`] for each logical message
    /// completed in them.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        let mut i = 0;
        while i < data.len() && !self.opaque {
            let c = &mut self.collect;
            if c.remaining.is_none() {
                if !c.header(data, &mut i, 4) {
                    return;
                }
                let len = usize::from(c.header[0])
                    | usize::from(c.header[1]) << 8
                    | usize::from(c.header[2]) << 16;
                c.body_len = len;
                c.remaining = Some(len);
            }
            if !c.body(data, &mut i) {
                return;
            }
            let len = c.body_len;
            if self.message_seq.is_none() {
                self.message_seq = Some(c.header[3]);
                self.message_peek = std::mem::take(&mut c.peek);
            }
            self.message_len += len;
            c.reset();
            if len == MYSQL_MAX_PACKET {
                // Continued in the next packet.
                continue;
            }
            let seq = self.message_seq.take();
            let peek = std::mem::take(&mut self.message_peek);
            let total = std::mem::take(&mut self.message_len);
            let commit = seq == Some(0)
                && peek.first() == Some(&MYSQL_COM_QUERY)
                && total <= PEEK
                && is_commit_sql(&peek[1..]);
            if std::mem::take(&mut self.first) && total == MYSQL_SSL_REQUEST_LEN {
                let flags = peek
                    .get(..4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                if flags & MYSQL_CLIENT_SSL != 0 {
                    self.opaque = true;
                }
            }
            out.push(Frame { end: i, commit });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg_typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(u32::try_from(body.len()).unwrap() + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn pg_untyped(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut m = (u32::try_from(rest.len()).unwrap() + 8)
            .to_be_bytes()
            .to_vec();
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(rest);
        m
    }

    fn pg_startup() -> Vec<u8> {
        pg_untyped(196_608, b"user\0postgres\0database\0test\0\0")
    }

    /// Feeds `stream` in chunks of `size` bytes and returns the frames with absolute offsets.
    fn frames_pg(stream: &[u8], size: usize) -> (Vec<Frame>, PgFrontend) {
        let mut framer = PgFrontend::new();
        let mut all = Vec::new();
        let mut base = 0;
        for chunk in stream.chunks(size) {
            let mut out = Vec::new();
            framer.feed(chunk, &mut out);
            all.extend(out.into_iter().map(|f| Frame {
                end: f.end + base,
                commit: f.commit,
            }));
            base += chunk.len();
        }
        (all, framer)
    }

    fn frames_my(stream: &[u8], size: usize) -> (Vec<Frame>, MySqlFrontend) {
        let mut framer = MySqlFrontend::new();
        let mut all = Vec::new();
        let mut base = 0;
        for chunk in stream.chunks(size) {
            let mut out = Vec::new();
            framer.feed(chunk, &mut out);
            all.extend(out.into_iter().map(|f| Frame {
                end: f.end + base,
                commit: f.commit,
            }));
            base += chunk.len();
        }
        (all, framer)
    }

    #[test]
    fn commit_text_is_recognized() {
        assert!(is_commit_sql(b"COMMIT\0"));
        assert!(is_commit_sql(b" commit ; "));
        assert!(is_commit_sql(b"Commit"));
        assert!(!is_commit_sql(b"COMMIT AND CHAIN"));
        assert!(!is_commit_sql(b"ROLLBACK"));
        assert!(!is_commit_sql(b"SELECT 'COMMIT'"));
    }

    #[test]
    fn pg_messages_are_framed_however_the_bytes_arrive() {
        let mut stream = pg_startup();
        let startup_end = stream.len();
        stream.extend(pg_typed(b'Q', b"BEGIN\0"));
        let begin_end = stream.len();
        stream.extend(pg_typed(b'P', b"\0SELECT 1\0\0\0"));
        stream.extend(pg_typed(b'S', b""));
        stream.extend(pg_typed(b'Q', b"COMMIT\0"));
        let commit_end = stream.len();
        stream.extend(pg_typed(b'X', b""));
        for size in [1, 2, 3, 7, stream.len()] {
            let (frames, framer) = frames_pg(&stream, size);
            assert!(!framer.is_opaque());
            assert_eq!(frames.len(), 6, "chunk size {size}");
            assert_eq!(frames[0].end, startup_end);
            assert_eq!(frames[1].end, begin_end);
            let commits: Vec<_> = frames.iter().filter(|f| f.commit).collect();
            assert_eq!(commits.len(), 1, "chunk size {size}");
            assert_eq!(commits[0].end, commit_end);
            assert_eq!(frames.last().unwrap().end, stream.len());
        }
    }

    #[test]
    fn pg_ssl_request_refused_then_startup() {
        let mut stream = pg_untyped(PG_SSL_REQUEST, b"");
        stream.extend(pg_startup());
        stream.extend(pg_typed(b'Q', b"COMMIT\0"));
        for size in [1, 5, stream.len()] {
            let (frames, framer) = frames_pg(&stream, size);
            assert!(!framer.is_opaque());
            assert_eq!(frames.len(), 3);
            assert!(frames[2].commit);
        }
    }

    #[test]
    fn pg_tls_after_ssl_request_is_opaque() {
        let mut stream = pg_untyped(PG_SSL_REQUEST, b"");
        stream.extend([TLS_HANDSHAKE_RECORD, 0x03, 0x01, 0x00, 0x10]);
        stream.extend(pg_typed(b'Q', b"COMMIT\0"));
        let (frames, framer) = frames_pg(&stream, 3);
        assert!(framer.is_opaque());
        assert_eq!(frames.len(), 1, "only the SSLRequest is framed");
    }

    #[test]
    fn pg_long_query_is_not_a_commit() {
        let mut sql = b"COMMIT".to_vec();
        sql.extend(std::iter::repeat_n(b' ', 100));
        sql.push(0);
        let mut stream = pg_startup();
        stream.extend(pg_typed(b'Q', &sql));
        let (frames, _) = frames_pg(&stream, 10);
        assert_eq!(frames.len(), 2);
        assert!(!frames[1].commit, "only short messages are inspected");
    }

    #[test]
    fn pg_malformed_length_gives_up() {
        let mut stream = pg_startup();
        stream.extend([b'Q', 0, 0, 0, 2]);
        let (_, framer) = frames_pg(&stream, 4);
        assert!(framer.is_opaque());
    }

    fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_le_bytes();
        let mut p = vec![len[0], len[1], len[2], seq];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn mysql_commands_are_framed_however_the_bytes_arrive() {
        let mut handshake = vec![0u8; 40];
        handshake[0] = 0x0f; // capabilities without CLIENT_SSL
        let mut stream = my_packet(1, &handshake);
        stream.extend(my_packet(0, b"\x03BEGIN"));
        stream.extend(my_packet(0, b"\x16SELECT ?"));
        stream.extend(my_packet(0, b"\x03COMMIT"));
        let commit_end = stream.len();
        stream.extend(my_packet(0, b"\x01"));
        for size in [1, 2, 5, stream.len()] {
            let (frames, framer) = frames_my(&stream, size);
            assert!(!framer.is_opaque());
            assert_eq!(frames.len(), 5, "chunk size {size}");
            let commits: Vec<_> = frames.iter().filter(|f| f.commit).collect();
            assert_eq!(commits.len(), 1);
            assert_eq!(commits[0].end, commit_end);
        }
    }

    #[test]
    fn mysql_continued_packets_are_one_message() {
        let big = vec![b'x'; MYSQL_MAX_PACKET];
        let mut stream = my_packet(1, &[0u8; 40]);
        let mut first = vec![MYSQL_COM_QUERY];
        first.extend_from_slice(&big[1..]);
        stream.extend(my_packet(0, &first));
        stream.extend(my_packet(1, b"tail"));
        stream.extend(my_packet(0, b"\x03commit;"));
        let (frames, _) = frames_my(&stream, CHUNK);
        assert_eq!(frames.len(), 3);
        assert!(!frames[1].commit);
        assert!(frames[2].commit);
    }

    #[test]
    fn mysql_ssl_request_is_opaque() {
        let mut ssl = vec![0u8; MYSQL_SSL_REQUEST_LEN];
        ssl[1] = 0x08; // CLIENT_SSL, little-endian bit 11
        let mut stream = my_packet(1, &ssl);
        stream.extend([0x16, 0x03, 0x01, 0x00, 0x20]);
        stream.extend(my_packet(0, b"\x03COMMIT"));
        let (frames, framer) = frames_my(&stream, 3);
        assert!(framer.is_opaque());
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn commit_in_a_handshake_position_is_not_a_command() {
        // A packet with sequence id 1 is not a command, whatever its bytes.
        let mut stream = my_packet(1, b"\x03COMMIT");
        stream.extend(my_packet(2, b"\x03COMMIT"));
        let (frames, _) = frames_my(&stream, 4);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| !f.commit));
    }

    #[tokio::test]
    async fn proxy_forwards_cuts_and_blackholes() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = echo.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let proxy = Proxy::start(target, Protocol::Raw).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 5];
        c.write_all(b"hello").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");

        proxy.set_mode(Mode::Blackhole);
        c.write_all(b"stuck").await.unwrap();
        let starved = tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await;
        assert!(starved.is_err(), "nothing flows through a blackhole");
        proxy.set_mode(Mode::PassThrough);
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"stuck", "held bytes flow again");

        assert_eq!(proxy.cut_all(), 1);
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("a cut connection ends")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert_eq!(proxy.stats().connections_cut, 1);

        assert!(
            Proxy::start("10.0.0.1:5432".parse().unwrap(), Protocol::Raw)
                .await
                .is_err()
        );
    }

    #[test]
    fn url_for_rewrites_host_port_and_tls() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let proxy = Proxy::for_url("postgres://postgres@127.0.0.1:5432/test")
                .await
                .unwrap();
            let port = proxy.addr().port();
            assert_eq!(
                proxy.url_for("postgres://postgres@127.0.0.1:5432/db_1"),
                format!("postgres://postgres@127.0.0.1:{port}/db_1?sslmode=disable")
            );
            let proxy = Proxy::for_url("mysql://root@localhost/test").await.unwrap();
            assert_eq!(proxy.target().port(), 3306);
            let port = proxy.addr().port();
            assert_eq!(
                proxy.url_for("mysql://root@localhost:3306/x?ssl-mode=REQUIRED"),
                format!("mysql://root@127.0.0.1:{port}/x?ssl-mode=REQUIRED")
            );
            assert!(Proxy::for_url("postgres://db.example.com/x").await.is_err());
        });
    }
}
