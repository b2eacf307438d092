//! Receiving several UDP datagrams with one system call (`recvmmsg(2)`): under load the DNS
//! server's socket holds many queries at once, and one call per query was a good part of what a
//! query cost.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

/// Buffers for up to `count` datagrams and their senders. The message headers point into the
/// other vectors' heap storage, which never grows or moves after `new`.
pub struct BatchReceiver {
    buffers: Vec<Vec<u8>>,
    senders: Vec<libc::sockaddr_storage>,
    /// Kept alive for `headers`, which point at them.
    _iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// How many entries the last `receive` filled.
    filled: usize,
}

impl BatchReceiver {
    /// `count` datagrams of up to `size` bytes each.
    pub fn new(count: usize, size: usize) -> Self {
        let mut buffers: Vec<Vec<u8>> = (0..count).map(|_| vec![0u8; size]).collect();
        // SAFETY: all-zero is a valid sockaddr_storage (plain integers and arrays).
        let mut senders: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; count];
        let mut iovecs: Vec<libc::iovec> =
            buffers.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
        let headers = senders
            .iter_mut()
            .zip(iovecs.iter_mut())
            .map(|(sender, iovec)| {
                // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths); the fields
                // that matter are set below.
                let mut header: libc::msghdr = unsafe { zeroed() };
                header.msg_name = (sender as *mut libc::sockaddr_storage).cast();
                header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                header.msg_iov = iovec;
                header.msg_iovlen = 1;
                libc::mmsghdr { msg_hdr: header, msg_len: 0 }
            })
            .collect();
        Self { buffers, senders, _iovecs: iovecs, headers, filled: 0 }
    }

    /// Waits for a datagram (as long as the socket's read timeout allows), then takes every other
    /// one already queued, up to the batch. Returns how many arrived.
    pub fn receive(&mut self, socket: &std::net::UdpSocket) -> io::Result<usize> {
        self.filled = 0;
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        let count = libc::c_uint::try_from(self.headers.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `headers` holds `count` initialised mmsghdr whose buffers and address fields
        // point into `buffers` and `senders`, alive and unmoved for as long as `self`; the kernel
        // writes at most the lengths given.
        let received =
            unsafe { libc::recvmmsg(socket.as_raw_fd(), self.headers.as_mut_ptr(), count, libc::MSG_WAITFORONE, std::ptr::null_mut()) };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        self.filled = received as usize;
        Ok(self.filled)
    }

    /// Datagram `i` of the last `receive` and its sender; None for one cut short by the buffer
    /// or from an address family other than IPv4 and IPv6.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let header = &self.headers[i];
        if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (header.msg_len as usize).min(self.buffers[i].len());
        Some((&self.buffers[i][..len], socket_addr(&self.senders[i])?))
    }
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the kernel wrote a sockaddr_in, which sockaddr_storage is
            // large and aligned enough to hold.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)), u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn receives_every_queued_datagram_with_its_sender_in_one_call() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            client.send_to(&[i; 3], server.local_addr().unwrap()).unwrap();
        }
        let mut batch = BatchReceiver::new(4, 2);
        // Four fit in the batch; each is cut to 2 bytes, so flagged and left out.
        assert_eq!(batch.receive(&server).unwrap(), 4);
        assert!((0..4).all(|i| batch.datagram(i).is_none()));
        let mut batch = BatchReceiver::new(4, 16);
        assert_eq!(batch.receive(&server).unwrap(), 1, "the fifth one is still queued");
        assert_eq!(batch.datagram(0), Some((&[4u8; 3][..], client.local_addr().unwrap())));
        assert_eq!(batch.datagram(1), None);
        // Nothing queued: the read timeout ends the wait.
        server.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert!(batch.receive(&server).is_err());
    }

    #[test]
    fn ipv6_senders_are_read() {
        let Ok(server) = UdpSocket::bind("[::1]:0") else { return };
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let client = UdpSocket::bind("[::1]:0").unwrap();
        client.send_to(b"hi", server.local_addr().unwrap()).unwrap();
        let mut batch = BatchReceiver::new(2, 16);
        assert_eq!(batch.receive(&server).unwrap(), 1);
        assert_eq!(batch.datagram(0), Some((&b"hi"[..], client.local_addr().unwrap())));
    }
}
