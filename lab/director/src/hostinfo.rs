//! What the director's own namespace looks like: interfaces, addresses and routes, read from
//! the kernel of the calling thread's namespace so the userspace director forwards exactly
//! as that host is configured.

use crate::Error;
use ipnet::Ipv6Net;
use lvslab_core::director::{Interface, Route, Route6};
use lvslab_core::wire::{Ipv4Cidr, MacAddr};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 addresses per interface (lo excluded), from getifaddrs(3).
pub fn ipv4_addrs() -> Result<BTreeMap<String, Vec<Ipv4Cidr>>, Error> {
    let (v4, _) = ip_addrs()?;
    Ok(v4)
}

/// Addresses per interface of both families.
type Addrs = (
    BTreeMap<String, Vec<Ipv4Cidr>>,
    BTreeMap<String, Vec<Ipv6Net>>,
);

/// IPv4 and IPv6 addresses per interface (lo excluded), from getifaddrs(3). Link-local
/// IPv6 addresses are left out: they are the kernel's (ND for them, router
/// advertisements), never a connected subnet the director forwards to.
pub fn ip_addrs() -> Result<Addrs, Error> {
    let mut out: BTreeMap<String, Vec<Ipv4Cidr>> = BTreeMap::new();
    let mut out6: BTreeMap<String, Vec<Ipv6Net>> = BTreeMap::new();
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
        // SAFETY: ifa_name is a C string for the list's lifetime.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to a sockaddr.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET6 {
            // SAFETY: the family is AF_INET6, so both are sockaddr_in6.
            let (addr, mask) = unsafe {
                let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                (Ipv6Addr::from(a.sin6_addr.s6_addr), m.sin6_addr.s6_addr)
            };
            let prefix = mask.iter().map(|b| b.count_ones()).sum::<u32>() as u8;
            if name != "lo" && !addr.is_unicast_link_local() {
                if let Ok(net) = Ipv6Net::new(addr, prefix) {
                    out6.entry(name).or_default().push(net);
                }
            }
            continue;
        }
        if family != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so both are sockaddr_in.
        let (addr, mask) = unsafe {
            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
            (
                u32::from_be(a.sin_addr.s_addr),
                u32::from_be(m.sin_addr.s_addr),
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
    Ok((out, out6))
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

/// Gateway routes of the main IPv6 table from /proc/thread-self/net/ipv6_route (this
/// thread's namespace). A namespace without IPv6 has no such file: no routes.
pub fn gateway_routes6() -> Result<Vec<Route6>, Error> {
    match std::fs::read_to_string("/proc/thread-self/net/ipv6_route") {
        Ok(text) => Ok(parse_proc_ipv6_route(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read /proc/thread-self/net/ipv6_route", e)),
    }
}

/// Parse /proc/net/ipv6_route (destination, its prefix length, source, its prefix length,
/// next hop, metric, refcount, use, flags, device; all hex), keeping routes with a gateway
/// (flag RTF_GATEWAY) through a global next hop: a link-local one (from a router
/// advertisement) names no subnet the director's routing knows.
pub fn parse_proc_ipv6_route(text: &str) -> Vec<Route6> {
    let addr = |s: &str| -> Option<Ipv6Addr> {
        if s.len() != 32 {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
    };
    let mut out: Vec<Route6> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = addr(f.first()?)?;
            let plen = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let via = addr(f.get(4)?)?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            if flags & 0x2 == 0 || via.is_unspecified() || via.is_unicast_link_local() {
                return None;
            }
            Some(Route6 {
                dest: Ipv6Net::new(dest, plen).ok()?,
                via,
            })
        })
        .collect();
    out.dedup();
    out
}

/// The director's interfaces: every interface with an IPv4 or a global IPv6 address but
/// lo. It answers ARP and Neighbour Solicitations for the VIPs on the interface of its
/// default route (either family) and on any interface whose subnet holds a VIP (the sides
/// clients come from).
pub fn interfaces(
    routes: &[Route],
    routes6: &[Route6],
    vips: &[IpAddr],
) -> Result<Vec<Interface>, Error> {
    let default_gw = routes.iter().find(|r| r.dest.prefix == 0).map(|r| r.via);
    let default_gw6 = routes6
        .iter()
        .find(|r| r.dest.prefix_len() == 0)
        .map(|r| r.via);
    let (v4, mut v6) = ip_addrs()?;
    let mut names: Vec<String> = v4.keys().chain(v6.keys()).cloned().collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let addrs = v4.get(&name).cloned().unwrap_or_default();
        let addrs6 = v6.remove(&name).unwrap_or_default();
        let faces_clients = addrs.iter().any(|a| {
            default_gw.is_some_and(|gw| a.contains(gw))
                || vips
                    .iter()
                    .any(|v| matches!(v, IpAddr::V4(v) if a.contains(*v)))
        }) || addrs6.iter().any(|a| {
            default_gw6.is_some_and(|gw| a.contains(&gw))
                || vips
                    .iter()
                    .any(|v| matches!(v, IpAddr::V6(v) if a.contains(v)))
        });
        out.push(Interface {
            mac: MacAddr(crate::ifconf::mac(&name)?),
            mtu: crate::ifconf::mtu(&name)?,
            name,
            addrs,
            addrs6,
            answers_vip_arp: faces_clients,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_ipv6_route_keeps_global_gateways() {
        // As `ip -6 route add default via 2001:db8:203::1` and a connected /64 show there,
        // plus an RA default route through a link-local router, which is left out.
        let text = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8020300000000000000000001 00000400 00000001 00000000 00000003     eth0
20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
20010db8000200000000000000000000 40 00000000000000000000000000000000 00 20010db8020300000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth0
";
        let r = parse_proc_ipv6_route(text);
        let gw: Ipv6Addr = "2001:db8:203::1".parse().unwrap();
        assert_eq!(
            r,
            vec![
                Route6 {
                    dest: "::/0".parse().unwrap(),
                    via: gw
                },
                Route6 {
                    dest: "2001:db8:2::/64".parse().unwrap(),
                    via: gw
                }
            ]
        );
    }

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
