//! External evidence for lvslab-core's VRRP frames: tcpdump (and tshark, when installed)
//! must decode the adverts and gratuitous ARP our builders make, checksums included.

use lvslab_capture::files::write_pcap;
use lvslab_capture::{CapturedPacket, Hop, HopCapture};
use lvslab_core::vrrp::{advert_frame, garp_frame, Advert, VrrpVersion};
use lvslab_core::wire::MacAddr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a]);
const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 201);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);

fn frames() -> Vec<Vec<u8>> {
    let v2 = Advert {
        version: VrrpVersion::V2,
        vrid: 51,
        priority: 150,
        advert_int: Duration::from_secs(1),
        addrs: vec![VIP],
    };
    let v3 = Advert {
        version: VrrpVersion::V3,
        vrid: 51,
        priority: 100,
        advert_int: Duration::from_millis(100),
        addrs: vec![VIP, Ipv4Addr::new(192, 168, 1, 251)],
    };
    let v2_stop = Advert {
        priority: 0,
        ..v2.clone()
    };
    vec![
        advert_frame(MAC, SRC, &v2),
        advert_frame(MAC, SRC, &v3),
        garp_frame(MAC, VIP),
        advert_frame(MAC, SRC, &v2_stop),
    ]
}

fn write(path: &Path, frames: &[Vec<u8>]) {
    let packets = frames
        .iter()
        .enumerate()
        .map(|(i, f)| CapturedPacket {
            ts: Duration::from_secs(1_700_000_000) + Duration::from_millis(i as u64),
            data: f.clone(),
            orig_len: f.len() as u32,
        })
        .collect();
    let cap = HopCapture {
        hop: Hop::new("director", "eth0"),
        packets,
    };
    write_pcap(path, &cap).unwrap();
}

/// `tool args... FILE` output, or `None` when the tool is not installed.
fn run(tool: &str, args: &[&str], file: &Path) -> Option<String> {
    let out = match Command::new(tool).args(args).arg(file).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running {tool}: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text)
}

#[test]
fn tcpdump_decodes_our_vrrp_and_garp_frames() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("vrrp.pcap");
    write(&good, &frames());
    let Some(text) = run("tcpdump", &["-n", "-v", "-r"], &good) else {
        println!("SKIPPED: tcpdump is not installed");
        return;
    };
    println!("{text}");
    for want in [
        "IP (tos 0xc0, ttl 255, id 0, offset 0, flags [none], proto VRRP (112), length 40)",
        "192.168.1.201 > 224.0.0.18: VRRPv2, Advertisement, vrid 51, prio 150, authtype none, intvl 1s, length 20, addrs: 192.168.1.250",
        "IP (tos 0xc0, ttl 255, id 0, offset 0, flags [none], proto VRRP (112), length 36)",
        "192.168.1.201 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 100, intvl 10cs, length 16, addrs(2): 192.168.1.250,192.168.1.251",
        "ARP, Ethernet (len 6), IPv4 (len 4), Request who-has 192.168.1.250 (ff:ff:ff:ff:ff:ff) tell 192.168.1.250, length 28",
        "VRRPv2, Advertisement, vrid 51, prio 0, authtype none, intvl 1s, length 20, addrs: 192.168.1.250",
    ] {
        assert!(text.contains(want), "tcpdump -v lacks\n  {want}\nin\n{text}");
    }
    // tcpdump -v verifies the IPv4 header and VRRP checksums and flags failures with "bad".
    assert!(!text.contains("bad"), "{text}");

    // The same check must catch a broken checksum, or the assertion above proves nothing.
    let mut broken = frames();
    broken[0][14 + 20 + 7] ^= 0xff;
    broken[1][14 + 20 + 7] ^= 0xff;
    let bad = dir.path().join("bad.pcap");
    write(&bad, &broken);
    let text = run("tcpdump", &["-n", "-v", "-r"], &bad).unwrap();
    println!("{text}");
    assert_eq!(text.matches("bad vrrp cksum").count(), 2, "{text}");
}

#[test]
fn tshark_decodes_our_vrrp_frames() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("vrrp.pcap");
    write(&good, &frames());
    // Wireshark checks v3 with the pseudo-header by default (vrrp.v3_checksum_as_in_v2 off).
    let args = ["-n", "-V", "-r"];
    let Some(text) = run("tshark", &args, &good) else {
        println!("SKIPPED: tshark is not installed");
        return;
    };
    println!("{text}");
    assert!(
        text.contains("Virtual Router Redundancy Protocol"),
        "{text}"
    );
    assert!(!text.contains("[incorrect"), "{text}");
}
