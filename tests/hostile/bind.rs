//! Connecting *from* a chosen loopback address, so one test process can be many LAN hosts:
//! all of 127.0.0.0/8 is this machine, and a server sees each client's source address.
//!
//! std's `TcpStream` cannot bind before it connects, and no crate may be added, so this calls
//! the C library's `socket`, `bind` and `connect` (which std links anyway) and hands the
//! connected descriptor to `TcpStream`. Linux only (the constants below are Linux's). The
//! alternative, clients in network namespaces, needs root and a shell script per run; this
//! stays in the test process and costs one small `unsafe` file, used by tests only.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;

/// `struct sockaddr_in` as Linux lays it out.
#[repr(C)]
struct SockaddrIn {
    family: u16,
    /// Network byte order.
    port: u16,
    /// Network byte order.
    addr: [u8; 4],
    zero: [u8; 8],
}

const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const SOCK_CLOEXEC: i32 = 0o2_000_000;

unsafe extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn connect(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn close(fd: i32) -> i32;
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> SockaddrIn {
    SockaddrIn {
        family: AF_INET as u16,
        port: port.to_be(),
        addr: ip.octets(),
        zero: [0; 8],
    }
}

/// A TCP connection to `to` (IPv4 loopback) whose source address is `from` (any port).
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    assert!(from.is_loopback(), "tests connect from loopback only");
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::other("IPv4 only"));
    };
    assert!(to.ip().is_loopback(), "tests connect to loopback only");
    let (local, remote) = (sockaddr(from, 0), sockaddr(*to.ip(), to.port()));
    let len = std::mem::size_of::<SockaddrIn>() as u32;
    // SAFETY: `socket` takes plain integers. `bind` and `connect` read `len` bytes from a live,
    // properly laid out `sockaddr_in` on our stack and keep no pointer to it. The descriptor
    // is closed on every error path, and on success owned by exactly one `TcpStream`.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        if bind(fd, &local, len) != 0 || connect(fd, &remote, len) != 0 {
            let e = io::Error::last_os_error();
            close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// `127.0.0.n`.
pub fn lo(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}
