//! What the director's own namespace looks like: interfaces, addresses and routes, read from
//! the kernel of the calling thread's namespace so the userspace director forwards exactly
//! as that host is configured.

use crate::Error;
use lvslab_core::director::{Interface, Route};
use lvslab_core::wire::{Ipv4Cidr, MacAddr};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// IPv4 addresses per interface (lo excluded), from getifaddrs(3).
pub fn ipv4_addrs() -> Result<BTreeMap<String, Vec<Ipv4Cidr>>, Error> {
    let mut out: BTreeMap<String, Vec<Ipv4Cidr>> = BTreeMap::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return Err(Error::io("getifaddrs", std::io::Error::last_os_error()));
    }
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: cur points into the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so both are sockaddr_in; ifa_name is a C string.
        let (addr, mask, name) = unsafe {
            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
            let n = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            (
                u32::from_be(a.sin_addr.s_addr),
                u32::from_be(m.sin_addr.s_addr),
                n,
            )
        };
        if name == "lo" {
            continue;
        }
        let prefix = mask.count_ones() as u8;
        out.entry(name)
            .or_default()
            .push(Ipv4Cidr::new(Ipv4Addr::from(addr), prefix));
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    Ok(out)
}

/// Gateway routes of the main table from /proc/thread-self/net/route (this thread's
/// namespace, not the process's).
pub fn gateway_routes() -> Result<Vec<Route>, Error> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route")
        .map_err(|e| Error::io("read /proc/thread-self/net/route", e))?;
    Ok(parse_proc_route(&text))
}

/// Parse /proc/net/route, keeping routes with a gateway (flag RTF_GATEWAY).
pub fn parse_proc_route(text: &str) -> Vec<Route> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(u32::from_be(v)))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gw, flags, mask) =
                (hex(f.get(1)?)?, hex(f.get(2)?)?, f.get(3)?, hex(f.get(7)?)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if flags & 0x2 == 0 {
                return None;
            }
            let prefix = u32::from(mask).count_ones() as u8;
            Some(Route {
                dest: Ipv4Cidr::new(dest, prefix),
                via: gw,
            })
        })
        .collect()
}

/// The director's interfaces: every interface with an IPv4 address but lo. It answers ARP
/// for the VIPs on the interface of its default route and on any interface whose subnet
/// holds a VIP (the sides clients come from).
pub fn interfaces(routes: &[Route], vips: &[Ipv4Addr]) -> Result<Vec<Interface>, Error> {
    let default_gw = routes.iter().find(|r| r.dest.prefix == 0).map(|r| r.via);
    let mut out = Vec::new();
    for (name, addrs) in ipv4_addrs()? {
        let faces_clients = addrs.iter().any(|a| {
            default_gw.is_some_and(|gw| a.contains(gw)) || vips.iter().any(|v| a.contains(*v))
        });
        out.push(Interface {
            mac: MacAddr(crate::ifconf::mac(&name)?),
            mtu: crate::ifconf::mtu(&name)?,
            name,
            addrs,
            answers_vip_arp: faces_clients,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_route_default_and_gateway_routes() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t017100CB\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t007100CB\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_proc_route(text);
        assert_eq!(
            r,
            vec![Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                via: Ipv4Addr::new(203, 0, 113, 1)
            }]
        );
    }
}
