//! `sendfile(2)`: the kernel copies a file's pages straight into a socket, never through our
//! memory. std's `io::copy` does the like between two files (`copy_file_range`), but copies a
//! file to a socket through a buffer, so we call the C library's `sendfile` ourselves; it is
//! part of the libc that std already links.
//!
//! This file is the program's one `unsafe` block. It is compiled only where its declaration
//! and its errno numbers are known to be right: Linux on x86_64 and aarch64 (64-bit `off_t`,
//! the asm-generic errno numbers). Everywhere else `send` sends nothing and `Conn::send_file`
//! copies with `io::copy`.

use std::fs::File;
use std::io;

/// Is `at` the end of the file (so a short send was the file ending, not a refusal)?
pub fn ended(file: &File, at: u64) -> io::Result<bool> {
    Ok(file.metadata()?.len() <= at)
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub use linux::send;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod linux {
    use std::ffi::c_int;
    use std::fs::File;
    use std::io;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    /// C's `off_t`, `size_t`, `ssize_t` on 64-bit Linux (glibc and musl alike): `long`,
    /// `unsigned long`, `long`.
    #[allow(non_camel_case_types)]
    type off_t = i64;
    #[allow(non_camel_case_types)]
    type size_t = usize;
    #[allow(non_camel_case_types)]
    type ssize_t = isize;

    // errno values of Linux's asm-generic/errno-base.h and errno.h, which x86_64 and aarch64
    // use (other architectures, MIPS and SPARC among them, number some differently).
    /// Interrupted by a signal before anything was sent: try again.
    const EINTR: i32 = 4;
    /// The socket's send timeout (`SO_SNDTIMEO`) ran out: the receiver is not reading.
    const EAGAIN: i32 = 11;
    /// This pair of descriptors cannot do `sendfile` (the file's system does not support it).
    const EINVAL: i32 = 22;
    /// The kernel has no `sendfile`.
    const ENOSYS: i32 = 38;

    unsafe extern "C" {
        /// `ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count);`
        fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t;
    }

    /// Send up to `len` bytes of `file` from `offset`; returns how many went. Fewer than `len`
    /// means the file ended, or (with 0) that `sendfile` is not available for these two.
    pub fn send(file: &File, socket: &TcpStream, offset: u64, len: u64) -> io::Result<u64> {
        let mut sent = 0;
        while sent < len {
            let mut at = off_t::try_from(offset + sent).map_err(io::Error::other)?;
            // At most 1 GiB a call: Linux sends at most 0x7ffff000 bytes at once anyway.
            let chunk = (len - sent).min(1 << 30) as size_t;
            // SAFETY: `sendfile` is declared above with the types of Linux's 64-bit ABI (this
            // module compiles only there). Both descriptors stay open for the call (we borrow
            // `file` and `socket`), and `at` is a live `off_t` the kernel reads and advances;
            // nothing else in our memory is touched.
            let n = unsafe { sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut at, chunk) };
            match n {
                0 => break,
                n if n > 0 => sent += n as u64,
                _ => {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(EINTR) => {}
                        // Not possible for this pair of descriptors: let the caller copy.
                        Some(EINVAL | ENOSYS) if sent == 0 => break,
                        Some(EAGAIN) => {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the receiver stopped reading (send timed out)",
                            ));
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(sent)
    }
}

/// Without a known-good `sendfile`: nothing is sent here, and the caller copies.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
pub fn send(_: &File, _: &std::net::TcpStream, _: u64, _: u64) -> io::Result<u64> {
    Ok(0)
}
