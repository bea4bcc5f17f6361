//! `lvslab serve`: the real-server program `up` starts on every real server.
//!
//! Protocol (documented in `lvslab serve --help`):
//! - TCP, HTTP request (starts with an HTTP method): `HTTP/1.1 200 OK`, body `<node>\n`, close.
//! - TCP, anything else: echoed back byte for byte until the client closes its side.
//! - UDP: each datagram is answered with `<node>\n` followed by the datagram's own bytes.
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    bind, listen, recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily, Backlog,
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, SockaddrIn6,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use lvslab_netns::{netns, Lab, Protocol};

/// Real-server program: answers HTTP with its node name, echoes other TCP payloads, and
/// answers each UDP datagram with "<node>\n" followed by the datagram. It listens on
/// 0.0.0.0, and in a lab with IPv6 also on [::] (so DR/TUN traffic for a VIP on lo is
/// served), on TCP and UDP, on every port of the
/// services that name this node (default 80). `lvslab up` starts it; run it by hand with
/// `lvslab exec NODE -- lvslab serve --name NODE --port 8080`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Lab whose topology says which ports to serve.
    #[arg(long)]
    pub lab: Option<String>,
    /// Node this runs as (read from the lab; also the name it answers with).
    #[arg(long)]
    pub node: Option<String>,
    /// Name to answer with (default: --node).
    #[arg(long)]
    pub name: Option<String>,
    /// Ports to serve instead of the topology's (TCP and UDP each).
    #[arg(long)]
    pub port: Vec<u16>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let name = args
        .name
        .clone()
        .or(args.node.clone())
        .context("give --node (or --name)")?;
    let mut ports = args.port.clone();
    // Without a lab, IPv6 is served where the namespace has it (a bind that fails is
    // skipped); in a lab, exactly when its topology asks for IPv6.
    let mut ipv6 = None;
    if let Some(lab) = &args.lab {
        ipv6 = Some(Lab::load(lab)?.state.topology.has_ipv6());
    }
    if ports.is_empty() {
        if let (Some(lab), Some(node)) = (&args.lab, &args.node) {
            let lab = Lab::load(lab)?;
            ports = lab
                .state
                .topology
                .served_ports(node)
                .into_iter()
                .map(|(_, p): (Protocol, u16)| p)
                .collect();
        }
    }
    if ports.is_empty() {
        ports.push(80);
    }
    ports.sort_unstable();
    ports.dedup();
    let mut threads = Vec::new();
    let mut served_v6 = false;
    for port in &ports {
        let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, *port))
            .with_context(|| format!("bind tcp port {port}"))?;
        let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, *port))
            .with_context(|| format!("bind udp port {port}"))?;
        let n = name.clone();
        threads.push(std::thread::spawn(move || tcp_loop(tcp, n)));
        let n = name.clone();
        threads.push(std::thread::spawn(move || udp_loop(udp, n)));
        if ipv6 == Some(false) {
            continue;
        }
        match bind_v6(*port) {
            Ok((tcp, udp)) => {
                served_v6 = true;
                let n = name.clone();
                threads.push(std::thread::spawn(move || tcp_loop(tcp, n)));
                let n = name.clone();
                threads.push(std::thread::spawn(move || udp_loop6(udp, n)));
            }
            Err(e) if ipv6 == Some(true) => {
                return Err(e).with_context(|| format!("bind IPv6 port {port}"))
            }
            Err(_) => {}
        }
    }
    if served_v6 {
        println!("serve {name}: listening on tcp+udp ports {ports:?} (IPv4 and IPv6)");
    } else {
        println!("serve {name}: listening on tcp+udp ports {ports:?}");
    }
    netns::notify_ready();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// TCP and UDP sockets on [::]:port that take IPv6 only (IPV6_V6ONLY), so they sit beside
/// the IPv4 ones on 0.0.0.0 whatever net.ipv6.bindv6only says.
fn bind_v6(port: u16) -> Result<(TcpListener, UdpSocket)> {
    let addr = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    let make = |ty: SockType| -> Result<std::os::fd::OwnedFd> {
        let fd = socket(AddressFamily::Inet6, ty, SockFlag::SOCK_CLOEXEC, None)?;
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        bind(fd.as_raw_fd(), &addr)?;
        Ok(fd)
    };
    let tcp = make(SockType::Stream)?;
    listen(&tcp, Backlog::new(1024)?)?;
    let udp = make(SockType::Datagram)?;
    Ok((TcpListener::from(tcp), UdpSocket::from(udp)))
}

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

fn tcp_loop(l: TcpListener, name: String) {
    for conn in l.incoming() {
        let Ok(s) = conn else { continue };
        let n = name.clone();
        std::thread::spawn(move || {
            let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            match handle_tcp(s, &n) {
                Ok(kind) => println!("tcp {peer} {kind}"),
                Err(e) => println!("tcp {peer} error: {e}"),
            }
        });
    }
}

fn handle_tcp(mut s: TcpStream, name: &str) -> std::io::Result<String> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16384];
    // Read enough to tell HTTP from raw bytes: a full method token, or EOF.
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let decided = buf.len() >= 8 || buf.contains(&b' ') || buf.contains(&b'\n');
        if decided {
            break;
        }
    }
    let is_http = HTTP_METHODS.iter().any(|m| buf.starts_with(m));
    if is_http {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(
            buf.split(|b| *b == b'\r' || *b == b'\n')
                .next()
                .unwrap_or_default(),
        )
        .to_string();
        let body = format!("{name}\n");
        let head = buf.starts_with(b"HEAD ");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nX-Lvslab-Node: {name}\r\n\r\n{}",
            body.len(),
            if head { "" } else { &body }
        );
        s.write_all(resp.as_bytes())?;
        let _ = s.shutdown(std::net::Shutdown::Write);
        return Ok(format!("http {line}"));
    }
    let mut total = buf.len();
    s.write_all(&buf)?;
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        total += n;
        s.write_all(&chunk[..n])?;
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(format!("echo {total} bytes"))
}

fn udp_loop(u: UdpSocket, name: String) {
    // Answer from the address the datagram was sent to: on a DR/TUN real server that is the
    // VIP (on lo), which routing alone would not pick as the source.
    let _ = setsockopt(&u, sockopt::Ipv4PacketInfo, &true);
    let mut buf = vec![0u8; 65536];
    loop {
        let Some((n, from, local)) = recv_with_dst(&u, &mut buf) else {
            continue;
        };
        let mut reply = Vec::with_capacity(name.len() + 1 + n);
        reply.extend_from_slice(name.as_bytes());
        reply.push(b'\n');
        reply.extend_from_slice(&buf[..n]);
        match send_from(&u, &reply, from, local) {
            Ok(_) => println!("udp {from} {n} bytes"),
            Err(e) => println!("udp {from} error: {e}"),
        }
    }
}

/// One datagram: length, sender, and the local address it was sent to (IP_PKTINFO).
fn recv_with_dst(
    u: &UdpSocket,
    buf: &mut [u8],
) -> Option<(usize, SockaddrIn, Option<libc::in_pktinfo>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(libc::in_pktinfo);
    let msg =
        recvmsg::<SockaddrIn>(u.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).ok()?;
    let local = msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4PacketInfo(p) => Some(p),
        _ => None,
    });
    Some((msg.bytes, msg.address?, local))
}

fn send_from(
    u: &UdpSocket,
    data: &[u8],
    to: SockaddrIn,
    local: Option<libc::in_pktinfo>,
) -> nix::Result<usize> {
    let iov = [IoSlice::new(data)];
    match local {
        Some(p) => {
            // ipi_spec_dst picks the source address; ifindex 0 lets routing pick the device.
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: p.ipi_addr,
                ipi_addr: p.ipi_addr,
            };
            sendmsg(
                u.as_raw_fd(),
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&to),
            )
        }
        None => sendmsg(u.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(&to)),
    }
}

fn udp_loop6(u: UdpSocket, name: String) {
    // As udp_loop: answer from the address the datagram was sent to (the VIP on lo).
    let _ = setsockopt(&u, sockopt::Ipv6RecvPacketInfo, &true);
    let mut buf = vec![0u8; 65536];
    loop {
        let Some((n, from, local)) = recv_with_dst6(&u, &mut buf) else {
            continue;
        };
        let mut reply = Vec::with_capacity(name.len() + 1 + n);
        reply.extend_from_slice(name.as_bytes());
        reply.push(b'\n');
        reply.extend_from_slice(&buf[..n]);
        let iov = [IoSlice::new(&reply)];
        let sent = match &local {
            Some(p) => {
                // ipi6_ifindex 0 lets routing pick the device; the address picks the source.
                let info = libc::in6_pktinfo {
                    ipi6_addr: p.ipi6_addr,
                    ipi6_ifindex: 0,
                };
                sendmsg(
                    u.as_raw_fd(),
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&from),
                )
            }
            None => sendmsg(u.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(&from)),
        };
        match sent {
            Ok(_) => println!("udp {from} {n} bytes"),
            Err(e) => println!("udp {from} error: {e}"),
        }
    }
}

/// One IPv6 datagram: length, sender, and the local address it was sent to (IPV6_PKTINFO).
fn recv_with_dst6(
    u: &UdpSocket,
    buf: &mut [u8],
) -> Option<(usize, SockaddrIn6, Option<libc::in6_pktinfo>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(libc::in6_pktinfo);
    let msg = recvmsg::<SockaddrIn6>(u.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
        .ok()?;
    let local = msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::Ipv6PacketInfo(p) => Some(p),
        _ => None,
    });
    Some((msg.bytes, msg.address?, local))
}
