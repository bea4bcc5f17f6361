//! Interface settings through classic ioctls on the calling thread's namespace: enough for
//! the director and tunnel daemons (MAC, MTU, an address, up) without a netlink stack.

use crate::Error;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn ctl_socket() -> Result<OwnedFd, Error> {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::io(
            "socket(AF_INET, SOCK_DGRAM)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is fresh and owned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> Result<libc::ifreq, Error> {
    // SAFETY: zeroed ifreq is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(Error::BadInterfaceName(name.to_string()));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(ifr)
}

fn ioctl(req: libc::c_ulong, ifr: &mut libc::ifreq, what: &str, name: &str) -> Result<(), Error> {
    let s = ctl_socket()?;
    // SAFETY: every request used here takes a pointer to an ifreq.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), req as _, ifr as *mut libc::ifreq) };
    if rc < 0 {
        return Err(Error::io(
            format!("{what} on {name}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The MAC address of `name`.
pub fn mac(name: &str) -> Result<[u8; 6], Error> {
    let mut ifr = ifreq(name)?;
    ioctl(libc::SIOCGIFHWADDR, &mut ifr, "SIOCGIFHWADDR", name)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
    let data = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
    let mut out = [0u8; 6];
    for (o, d) in out.iter_mut().zip(data.iter()) {
        *o = *d as u8;
    }
    Ok(out)
}

/// The MTU of `name`.
pub fn mtu(name: &str) -> Result<u16, Error> {
    let mut ifr = ifreq(name)?;
    ioctl(libc::SIOCGIFMTU, &mut ifr, "SIOCGIFMTU", name)?;
    // SAFETY: SIOCGIFMTU filled the mtu member.
    let m = unsafe { ifr.ifr_ifru.ifru_mtu };
    Ok(u16::try_from(m).unwrap_or(u16::MAX))
}

/// Bring `name` up.
pub fn set_up(name: &str) -> Result<(), Error> {
    let mut ifr = ifreq(name)?;
    ioctl(libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS", name)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(libc::SIOCSIFFLAGS, &mut ifr, "SIOCSIFFLAGS", name)
}

/// Give `name` the IPv4 address `addr/prefix` (its primary address).
pub fn add_ipv4(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), Error> {
    let sin = |a: Ipv4Addr| {
        // SAFETY: zeroed sockaddr_in is valid.
        let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        s.sin_family = libc::AF_INET as libc::sa_family_t;
        s.sin_addr.s_addr = u32::from(a).to_be();
        // SAFETY: sockaddr_in fits in sockaddr (same size, 16 bytes).
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(s) }
    };
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_addr = sin(addr);
    ioctl(libc::SIOCSIFADDR, &mut ifr, "SIOCSIFADDR", name)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_netmask = sin(Ipv4Addr::from(mask));
    ioctl(libc::SIOCSIFNETMASK, &mut ifr, "SIOCSIFNETMASK", name)
}

/// The kernel's `struct in6_ifreq` (linux/ipv6.h): SIOCSIFADDR on an AF_INET6 socket takes
/// it instead of an ifreq.
#[repr(C)]
struct In6Ifreq {
    addr: libc::in6_addr,
    prefixlen: u32,
    ifindex: libc::c_int,
}

/// Give `name` the IPv6 address `addr/prefix`.
pub fn add_ipv6(name: &str, addr: std::net::Ipv6Addr, prefix: u8) -> Result<(), Error> {
    let c_name = std::ffi::CString::new(name).map_err(|_| Error::BadInterfaceName(name.into()))?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(Error::io(
            format!("if_nametoindex {name}"),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::io(
            "socket(AF_INET6, SOCK_DGRAM)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is fresh and owned.
    let s = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = In6Ifreq {
        addr: libc::in6_addr {
            s6_addr: addr.octets(),
        },
        prefixlen: u32::from(prefix.min(128)),
        ifindex: ifindex as libc::c_int,
    };
    // SAFETY: SIOCSIFADDR on an AF_INET6 socket takes a pointer to an in6_ifreq.
    let rc = unsafe {
        libc::ioctl(
            s.as_raw_fd(),
            libc::SIOCSIFADDR as _,
            &mut req as *mut In6Ifreq,
        )
    };
    if rc < 0 {
        return Err(Error::io(
            format!("SIOCSIFADDR (IPv6) on {name}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
