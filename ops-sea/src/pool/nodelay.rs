//! `TCP_NODELAY` on every TCP connection ops opens to PostgreSQL or MySQL/MariaDB.
//!
//! sqlx 0.9.0 no longer sets it (launchbadge/sqlx#4022 removed it; #4335 reports the regression,
//! #4336 restores it, unreleased). Without it, any exchange in which the client writes twice
//! before reading waits for the server's delayed ACK: about 40 ms on Linux. Measured on the local
//! PostgreSQL (`bulk_curves threshold`, BENCHMARKS.md): `BEGIN`, `COPY ... FROM STDIN` of ten rows,
//! `COMMIT` took 48 ms instead of 4, and a multi-row `INSERT` of 1,000 rows 55 ms instead of 8.
//!
//! sqlx gives no access to its socket, so when a connection opens the server is asked which
//! client port it sees (`inet_client_port()`; MySQL's process list), and the socket of this
//! process with that local port and the configured server port gets the option. Where the two
//! cannot be matched (a Unix socket, a proxy or NAT in between, PgBouncer, a platform without
//! `/proc/self/fd`) nothing changes and the connection works as sqlx made it.

#![allow(unsafe_code)]

/// The descriptor of this process's TCP socket whose local port is `local` and whose peer port is
/// `peer`, found through `/proc/self/fd`.
#[cfg(target_os = "linux")]
fn find(local: u16, peer: u16) -> Option<i32> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    entries.flatten().find_map(|entry| {
        let fd = entry.file_name().to_str()?.parse::<i32>().ok()?;
        // The link of a socket reads `socket:[inode]`; anything else is skipped unprobed.
        let target = std::fs::read_link(entry.path()).ok()?;
        let is_socket = target
            .as_os_str()
            .as_encoded_bytes()
            .starts_with(b"socket:");
        (is_socket && port(fd, false) == Some(local) && port(fd, true) == Some(peer)).then_some(fd)
    })
}

/// Sets `TCP_NODELAY` on this process's TCP socket whose local port is `local` and whose peer
/// port is `peer`. Returns whether one was found and set.
#[cfg(target_os = "linux")]
pub(crate) fn set_on(local: u16, peer: u16) -> bool {
    let Some(fd) = find(local, peer) else {
        return false;
    };
    let on: libc::c_int = 1;
    // SAFETY: `setsockopt` reads `size_of::<c_int>()` bytes from a live local. The descriptor
    // is a plain integer to the kernel: if another thread closed it since `find` checked it,
    // the call fails with EBADF, or sets the option on the socket that reused the number,
    // which is harmless for a stream socket and a no-op error for any other.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            std::ptr::from_ref(&on).cast(),
            socklen(std::mem::size_of::<libc::c_int>()),
        )
    };
    set == 0
}

/// Without `/proc/self/fd` the socket cannot be found; sqlx's default stays.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_on(_local: u16, _peer: u16) -> bool {
    false
}

/// Whether this process's TCP socket with local port `local` and peer port `peer` has
/// `TCP_NODELAY` set; `None` when there is no such socket. For the tests.
#[cfg(target_os = "linux")]
pub(crate) fn is_set(local: u16, peer: u16) -> Option<bool> {
    let fd = find(local, peer)?;
    let mut value: libc::c_int = 0;
    let mut len = socklen(std::mem::size_of::<libc::c_int>());
    // SAFETY: `getsockopt` writes at most `len` bytes into the live local `value` and updates
    // `len`, a live local too.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            std::ptr::from_mut(&mut value).cast(),
            &raw mut len,
        )
    };
    (got == 0).then_some(value != 0)
}

/// Not available off Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn is_set(_local: u16, _peer: u16) -> Option<bool> {
    None
}

#[cfg(target_os = "linux")]
fn socklen(n: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(n).unwrap_or(libc::socklen_t::MAX)
}

/// The local (`peer == false`) or remote port of an IPv4 or IPv6 socket.
#[cfg(target_os = "linux")]
fn port(fd: i32, peer: bool) -> Option<u16> {
    // SAFETY: an all-zero `sockaddr_storage` is a valid value of this plain C struct.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = socklen(std::mem::size_of::<libc::sockaddr_storage>());
    let target = std::ptr::from_mut(&mut address).cast::<libc::sockaddr>();
    // SAFETY: both calls write at most `len` bytes into the live local `address`, which is large
    // enough for any address family, and update the live local `len`.
    let got = unsafe {
        if peer {
            libc::getpeername(fd, target, &raw mut len)
        } else {
            libc::getsockname(fd, target, &raw mut len)
        }
    };
    if got != 0 {
        return None;
    }
    match i32::from(address.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel filled an AF_INET address, whose layout is `sockaddr_in`,
            // and `sockaddr_storage` is aligned for it.
            let v4 = unsafe { &*std::ptr::from_ref(&address).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for AF_INET6 and `sockaddr_in6`.
            let v6 = unsafe { &*std::ptr::from_ref(&address).cast::<libc::sockaddr_in6>() };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}

/// The client port the server sees for this connection, when it is a TCP one.
pub(crate) trait ClientPort {
    /// Asks the server; `None` over a Unix socket or when the server will not say.
    fn client_port(&mut self) -> impl Future<Output = Option<u16>> + Send;
}

#[cfg(feature = "postgres")]
impl ClientPort for sqlx::PgConnection {
    async fn client_port(&mut self) -> Option<u16> {
        let port: Option<i32> = sqlx::query_scalar("SELECT inet_client_port()")
            .fetch_one(&mut *self)
            .await
            .ok()?;
        port.and_then(|p| u16::try_from(p).ok())
    }
}

#[cfg(feature = "mysql")]
impl ClientPort for sqlx::MySqlConnection {
    async fn client_port(&mut self) -> Option<u16> {
        // `host:port` for TCP clients, `localhost` over a socket.
        let host: String = sqlx::query_scalar(
            "SELECT CAST(HOST AS CHAR) FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
        )
        .fetch_one(&mut *self)
        .await
        .ok()?;
        host.rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
    }
}

/// Sets `TCP_NODELAY` on a connection that just opened to a server at `server_port`, if its
/// socket can be found. Costs one statement per new connection, never per call.
pub(crate) async fn apply<C: ClientPort>(conn: &mut C, server_port: u16) {
    if !cfg!(target_os = "linux") {
        return;
    }
    if let Some(local) = conn.client_port().await
        && !set_on(local, server_port)
    {
        tracing::debug!(
            local,
            server_port,
            "no socket of this process matches the connection's client port (a proxy or NAT in \
             between?); TCP_NODELAY stays unset"
        );
    }
}
