// SPDX-License-Identifier: GPL-2.0

//! In-kernel IPv4 TCP sockets for replication (6.12's `kernel` crate has none).
//!
//! Sockets are blocking with timeouts: a thread receiving or accepting wakes up at
//! least every receive timeout (the call fails with `EAGAIN`) to check whether it
//! should stop, and [`TcpSocket::shutdown`] wakes it at once.

use super::bindings;
use super::pages::CountedPage;
use core::ptr::NonNull;
use kernel::error::{to_result, Error, Result};
use kernel::prelude::*;

/// An IPv4 address and TCP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockAddr {
    /// The address in network byte order, as in `struct in_addr`.
    pub addr_be: u32,
    /// The port in host byte order.
    pub port: u16,
}

impl SockAddr {
    /// The four octets, for printing.
    pub fn octets(&self) -> [u8; 4] {
        self.addr_be.to_ne_bytes()
    }
}

impl core::fmt::Display for SockAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let o = self.octets();
        write!(f, "{}.{}.{}.{}:{}", o[0], o[1], o[2], o[3], self.port)
    }
}

/// A kernel TCP socket, released on drop.
///
/// # Invariants
///
/// `sock` points to a live `struct socket` this value owns.
pub struct TcpSocket {
    sock: NonNull<bindings::socket>,
}

// SAFETY: a kernel socket is not tied to the task that created it; it may be used
// and released from any kernel thread.
unsafe impl Send for TcpSocket {}
// Concurrent senders could interleave their bytes: that breaks framing, not memory
// safety, and fvp's connections serialise senders for that reason (`Conn::send`).
// SAFETY: every `&self` method is a kernel socket operation (`kernel_accept`, `_sendmsg`,
// `_recvmsg`, `kernel_sock_shutdown`) that takes the socket's lock (`lock_sock`), or a
// timeout set with `WRITE_ONCE`: safe from several threads at once, whatever callers do.
unsafe impl Sync for TcpSocket {}

fn ret_len(ret: i32) -> Result<usize> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret as usize)
    }
}

impl TcpSocket {
    fn from_raw(sock: *mut bindings::socket) -> Result<Self> {
        // INVARIANT: the callers pass a socket just created for us.
        Ok(Self { sock: NonNull::new(sock).ok_or(EINVAL)? })
    }

    /// A socket listening on `local` (address reuse on, so a reload can rebind).
    pub fn listen(local: SockAddr, backlog: i32) -> Result<Self> {
        let mut sock = core::ptr::null_mut();
        // SAFETY: `sock` is a valid out-pointer; the helper creates and binds a new socket.
        to_result(unsafe { bindings::fvp_helper_tcp_listen(local.addr_be, local.port, backlog, &mut sock) })?;
        Self::from_raw(sock)
    }

    /// Waits for a connection for at most the receive timeout (`EAGAIN` then).
    pub fn accept(&self) -> Result<(TcpSocket, SockAddr)> {
        let mut sock = core::ptr::null_mut();
        let mut addr = 0u32;
        let mut port = 0u16;
        // SAFETY: our socket is live (invariant); the out-pointers are valid.
        to_result(unsafe { bindings::fvp_helper_tcp_accept(self.sock.as_ptr(), &mut sock, &mut addr, &mut port) })?;
        Ok((Self::from_raw(sock)?, SockAddr { addr_be: addr, port }))
    }

    /// Connects to `remote`, waiting at most `timeout_ms`.
    pub fn connect(remote: SockAddr, timeout_ms: u32) -> Result<Self> {
        let mut sock = core::ptr::null_mut();
        // SAFETY: `sock` is a valid out-pointer.
        to_result(unsafe { bindings::fvp_helper_tcp_connect(remote.addr_be, remote.port, timeout_ms, &mut sock) })?;
        Self::from_raw(sock)
    }

    /// Sets how long a receive (or accept) and a send may block.
    pub fn set_timeouts(&self, recv_ms: u32, send_ms: u32) {
        // SAFETY: our socket is live (invariant).
        unsafe { bindings::fvp_helper_sock_set_timeouts(self.sock.as_ptr(), recv_ms, send_ms) };
    }

    /// Sends all of `head`, then all of `tail`. An error (including a send timeout)
    /// leaves the stream unusable.
    pub fn send(&self, head: &[u8], tail: &[u8]) -> Result {
        // SAFETY: our socket is live; both buffers are valid for reads of their length.
        to_result(unsafe {
            bindings::fvp_helper_sock_send(
                self.sock.as_ptr(),
                head.as_ptr().cast(),
                head.len(),
                tail.as_ptr().cast(),
                tail.len(),
            )
        })
    }

    /// Receives up to `buf.len()` bytes, waiting for all of them until the receive
    /// timeout. Returns how many arrived; 0 means the peer closed the connection.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: our socket is live; `buf` is valid for writes of its length.
        ret_len(unsafe { bindings::fvp_helper_sock_recv(self.sock.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    /// As [`Self::recv`], into `page` at `offset`. The caller must be the page's only
    /// writer (a page it just allocated).
    pub fn recv_page(&self, page: &CountedPage, offset: u32, len: u32) -> Result<usize> {
        if offset as usize + len as usize > kernel::page::PAGE_SIZE {
            return Err(EINVAL);
        }
        // SAFETY: our socket is live; the page is held and the range lies within it.
        ret_len(unsafe { bindings::fvp_helper_sock_recv_page(self.sock.as_ptr(), page.as_raw(), offset, len as usize) })
    }

    /// Shuts both directions down: blocked receives and sends return at once.
    pub fn shutdown(&self) {
        // SAFETY: our socket is live (invariant).
        unsafe { bindings::fvp_helper_sock_shutdown(self.sock.as_ptr()) };
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        // SAFETY: we own the socket (invariant) and nobody uses it after this.
        unsafe { bindings::fvp_helper_sock_release(self.sock.as_ptr()) };
    }
}

/// Fills `buf` with random bytes from the kernel's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}

/// The wall clock (`CLOCK_REALTIME`) in ns: what a host's incarnation number is made of.
pub fn wall_clock_ns() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bindings::fvp_helper_wall_clock_ns() }
}
