//! `lvslab tunnel`: the TUN-mode real-server side, decapsulating IPIP (and, for IPv6 VIPs,
//! IPv6-in-IPv6) in userspace.
//!
//! This host's kernel has no ipip module, so a real server cannot hold `tunl0` (nor
//! `ip6tnl0`). Instead the daemon puts the VIPs on a TUN device (so the kernel owns them and
//! answers from them), reads the director's tunnelled packets from a raw IPPROTO_IPIP
//! socket, and from a raw AF_INET6 socket for next header 41 when a VIP is IPv6 (either
//! also keeps the kernel from answering them with "protocol unreachable" / "parameter
//! problem"), and writes the inner packet into the TUN device. Replies leave normally,
//! source VIP, through the default route.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Arguments of `lvslab tunnel`.
#[derive(clap::Args, Debug)]
pub struct TunnelArgs {
    /// A virtual IP (IPv4 or IPv6) this real server answers for (repeatable).
    #[arg(long = "vip", required = true)]
    pub vips: Vec<IpAddr>,
    /// Name of the TUN device to create.
    #[arg(long, default_value = "lvstun0")]
    pub dev: String,
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Run the decapsulator in the current network namespace until killed.
pub fn run(args: TunnelArgs) -> Result<()> {
    crate::director::logging::init();
    let tun = open_tun(&args.dev)?;
    let vips4: Vec<Ipv4Addr> = args
        .vips
        .iter()
        .filter_map(|v| match v {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
        .collect();
    let vips6: Vec<Ipv6Addr> = args
        .vips
        .iter()
        .filter_map(|v| match v {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        })
        .collect();
    if !vips6.is_empty() {
        // The TUN device must take IPv6 for the decapsulated packets to be accepted.
        write_sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", args.dev), "0")?;
    }
    // `up` already puts TUN VIPs on lo; a VIP this host does not hold yet goes on the TUN
    // device so the kernel accepts the decapsulated packets.
    for vip in vips4.iter().filter(|v| !is_local(IpAddr::V4(**v))) {
        lvslab_director::ifconf::add_ipv4(&args.dev, *vip, 32)?;
    }
    lvslab_director::ifconf::set_up(&args.dev)?;
    for vip in vips6.iter().filter(|v| !is_local(IpAddr::V6(**v))) {
        lvslab_director::ifconf::add_ipv6(&args.dev, *vip, 128)?;
    }
    // The decapsulated packet enters on the TUN device while the route back to the client
    // leaves by eth0: reverse-path filtering would drop it. The VIP must not be answered
    // for by ARP on the LAN either (as in DR).
    for (key, value) in [
        ("net/ipv4/conf/all/rp_filter", "0"),
        (&format!("net/ipv4/conf/{}/rp_filter", args.dev), "0"),
        ("net/ipv4/conf/all/arp_ignore", "1"),
        ("net/ipv4/conf/all/arp_announce", "2"),
    ] {
        write_sysctl(key, value)?;
    }
    // One socket per family a VIP has; an IPv4-only lab opens exactly what it did before.
    let mut socks: Vec<(OwnedFd, bool)> = Vec::new();
    if !vips4.is_empty() {
        socks.push((open_raw(libc::AF_INET, libc::IPPROTO_IPIP)?, false));
    }
    if !vips6.is_empty() {
        socks.push((open_raw(libc::AF_INET6, libc::IPPROTO_IPV6)?, true));
    }
    tracing::info!(dev = %args.dev, vips = ?args.vips, "decapsulating IPIP / IPv6-in-IPv6 into the TUN device");
    lvslab_netns::netns::notify_ready();
    let mut tun_file = tun;
    let mut buf = vec![0u8; 65536];
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|(s, _)| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: fds is a valid array of its length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll on the tunnel sockets");
        }
        for (pfd, (sock, v6)) in fds.iter_mut().zip(&socks) {
            if pfd.revents == 0 {
                continue;
            }
            pfd.revents = 0;
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    sock.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
                return Err(e).context("recv on a tunnel raw socket");
            }
            let pkt = &buf[..n as usize];
            let inner = if *v6 {
                inner_packet6(pkt, &vips6)
            } else {
                inner_packet(pkt, &vips4)
            };
            let Some(inner) = inner else {
                tracing::debug!(
                    len = pkt.len(),
                    "ignoring a tunnelled packet that is not for a VIP"
                );
                continue;
            };
            if let Err(e) = tun_file.write_all(inner) {
                tracing::warn!(error = %e, "writing to the TUN device");
            }
        }
    }
}

/// Whether this namespace holds `ip` (binding to a non-local address fails).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// The inner IPv6 packet of what a raw AF_INET6 socket for next header 41 receives (the
/// payload after the outer header: IPv6 raw sockets never include it), if it is addressed
/// to one of `vips`.
pub fn inner_packet6<'a>(payload: &'a [u8], vips: &[Ipv6Addr]) -> Option<&'a [u8]> {
    if payload.len() < 40 || payload[0] >> 4 != 6 {
        return None;
    }
    let tot = 40 + usize::from(u16::from_be_bytes([payload[4], payload[5]]));
    let mut d = [0u8; 16];
    d.copy_from_slice(&payload[24..40]);
    if !vips.contains(&Ipv6Addr::from(d)) || tot > payload.len() {
        return None;
    }
    Some(&payload[..tot])
}

/// The inner IPv4 packet of an outer IPv4/IPIP packet, if it is addressed to one of `vips`.
pub fn inner_packet<'a>(outer: &'a [u8], vips: &[Ipv4Addr]) -> Option<&'a [u8]> {
    let ohl = usize::from(*outer.first()? & 0x0f) * 4;
    if outer.first()? >> 4 != 4 || outer.get(9) != Some(&4) {
        return None;
    }
    let inner = outer.get(ohl..)?;
    if inner.len() < 20 || inner[0] >> 4 != 4 {
        return None;
    }
    let tot = usize::from(u16::from_be_bytes([inner[2], inner[3]]));
    let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
    if !vips.contains(&dst) || tot > inner.len() {
        return None;
    }
    Some(&inner[..tot])
}

fn open_tun(name: &str) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("open /dev/net/tun (is the tun driver available?)")?;
    // SAFETY: zeroed ifreq is valid; the name is copied with room for the NUL.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        bail!("TUN device name {name} is longer than 15 bytes");
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF takes a pointer to an ifreq.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("TUNSETIFF {name}"));
    }
    Ok(file)
}

fn open_raw(family: libc::c_int, protocol: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("socket({family}, SOCK_RAW, {protocol})"));
    }
    // SAFETY: fd is fresh and owned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Write a sysctl of the current network namespace (`key` like `net/ipv4/conf/all/rp_filter`).
pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).with_context(|| format!("write {value} to {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_packet_only_for_vips() {
        let vip = Ipv4Addr::new(192, 168, 1, 250);
        let mut inner = vec![0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 198, 51, 100, 10];
        inner.extend_from_slice(&vip.octets());
        let mut outer = vec![
            0x45u8, 0, 0, 40, 0, 0, 0, 0, 64, 4, 0, 0, 192, 168, 1, 202, 192, 168, 1, 201,
        ];
        outer.extend_from_slice(&inner);
        assert_eq!(inner_packet(&outer, &[vip]), Some(&inner[..]));
        assert_eq!(inner_packet(&outer, &[Ipv4Addr::new(10, 0, 0, 1)]), None);
        outer[9] = 6;
        assert_eq!(inner_packet(&outer, &[vip]), None);
    }

    #[test]
    fn inner_packet6_only_for_vips() {
        let vip: Ipv6Addr = "2001:db8:1::250".parse().unwrap();
        let cip: Ipv6Addr = "2001:db8:100::10".parse().unwrap();
        let mut inner = vec![0x60u8, 0, 0, 0, 0, 2, 59, 63];
        inner.extend_from_slice(&cip.octets());
        inner.extend_from_slice(&vip.octets());
        inner.extend_from_slice(&[0, 0]);
        let mut with_pad = inner.clone();
        with_pad.extend_from_slice(&[9, 9]);
        assert_eq!(inner_packet6(&with_pad, &[vip]), Some(&inner[..]));
        assert_eq!(inner_packet6(&inner, &[cip]), None);
        assert_eq!(inner_packet6(&inner[..41], &[vip]), None, "cut short");
        let mut v4 = inner.clone();
        v4[0] = 0x45;
        assert_eq!(inner_packet6(&v4, &[vip]), None);
    }
}
