//! `lvslab tunnel`: the TUN-mode real-server side, decapsulating IPIP in userspace.
//!
//! This host's kernel has no ipip module, so a real server cannot hold `tunl0`. Instead the
//! daemon puts the VIPs on a TUN device (so the kernel owns them and answers from them),
//! reads the director's IPIP packets from a raw IPPROTO_IPIP socket (which also keeps the
//! kernel from answering them with "protocol unreachable") and writes the inner packet into
//! the TUN device. Replies leave normally, source VIP, through the default route.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Arguments of `lvslab tunnel`.
#[derive(clap::Args, Debug)]
pub struct TunnelArgs {
    /// A virtual IP this real server answers for (repeatable).
    #[arg(long = "vip", required = true)]
    pub vips: Vec<Ipv4Addr>,
    /// Name of the TUN device to create.
    #[arg(long, default_value = "lvstun0")]
    pub dev: String,
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Run the decapsulator in the current network namespace until killed.
pub fn run(args: TunnelArgs) -> Result<()> {
    crate::director::logging::init();
    let tun = open_tun(&args.dev)?;
    // `up` already puts TUN VIPs on lo; a VIP this host does not hold yet goes on the TUN
    // device so the kernel accepts the decapsulated packets.
    for vip in args.vips.iter().filter(|v| !is_local(**v)) {
        lvslab_director::ifconf::add_ipv4(&args.dev, *vip, 32)?;
    }
    lvslab_director::ifconf::set_up(&args.dev)?;
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
    let raw = open_ipip_socket()?;
    tracing::info!(dev = %args.dev, vips = ?args.vips, "decapsulating IPIP into the TUN device");
    lvslab_netns::netns::notify_ready();
    let mut tun_file = tun;
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(
                raw.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("recv on the IPIP raw socket");
        }
        let pkt = &buf[..n as usize];
        let Some(inner) = inner_packet(pkt, &args.vips) else {
            tracing::debug!(
                len = pkt.len(),
                "ignoring an IPIP packet that is not for a VIP"
            );
            continue;
        };
        if let Err(e) = tun_file.write_all(inner) {
            tracing::warn!(error = %e, "writing to the TUN device");
        }
    }
}

/// Whether this namespace holds `ip` (binding to a non-local address fails).
fn is_local(ip: Ipv4Addr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
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

fn open_ipip_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_IPIP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_INET, SOCK_RAW, IPPROTO_IPIP)");
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
}
