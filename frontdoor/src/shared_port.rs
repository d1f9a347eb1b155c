//! One socket per worker on a shared port (SO_REUSEPORT: the kernel spreads
//! connections over them), for the QUIC (UDP) and HTTP (TCP) listeners.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// A socket kind that workers can share a port with.
pub(crate) trait SharedPort: Sized {
    /// Binds `addr` exclusively and lets go at once: fails if anyone holds
    /// it.
    fn probe(addr: SocketAddr) -> io::Result<()>;
    /// A socket on `addr` that other workers' sockets may join.
    fn bind_shared(addr: SocketAddr) -> io::Result<Self>;
    /// The bound address (with the real port if 0 was asked).
    fn bound_addr(&self) -> io::Result<SocketAddr>;
}

/// `workers` sockets sharing `listen`. SO_REUSEPORT would also let a second
/// process (an old node still running) share the port silently, and the
/// kernel would split the callers between the two: a plain bind first
/// refuses that.
pub(crate) fn bind_per_worker<S: SharedPort>(
    listen: SocketAddr,
    workers: usize,
) -> io::Result<Vec<S>> {
    if listen.port() != 0 {
        S::probe(listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{listen}: {e} (is another node running?)"),
            )
        })?;
    }
    // The first bind settles the port (it may be 0); the others join it.
    let first = S::bind_shared(listen)?;
    let port = first.bound_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(S::bind_shared(port)?);
    }
    Ok(sockets)
}

fn shared_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

impl SharedPort for UdpSocket {
    fn probe(addr: SocketAddr) -> io::Result<()> {
        UdpSocket::bind(addr).map(drop)
    }

    fn bind_shared(addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = shared_socket(addr, Type::DGRAM, Protocol::UDP)?;
        // Bursts of a Monday morning: let the kernel hold them.
        let _ = socket.set_recv_buffer_size(8 << 20);
        let _ = socket.set_send_buffer_size(8 << 20);
        socket.bind(&addr.into())?;
        Ok(socket.into())
    }

    fn bound_addr(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }
}

impl SharedPort for TcpListener {
    fn probe(addr: SocketAddr) -> io::Result<()> {
        TcpListener::bind(addr).map(drop)
    }

    fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = shared_socket(addr, Type::STREAM, Protocol::TCP)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    }

    fn bound_addr(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }
}
