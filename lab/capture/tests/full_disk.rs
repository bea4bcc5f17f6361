//! A full disk is an error, not a silently cut-off capture: /dev/full takes the place of a
//! file on a full filesystem (every write fails with ENOSPC), no root or mount needed.
use lvslab_capture::files::{write_merged_pcapng, write_pcap};
use lvslab_capture::{CapturedPacket, Hop, HopCapture};
use std::path::Path;
use std::time::Duration;

fn capture() -> HopCapture {
    HopCapture {
        hop: Hop::new("client", "eth0"),
        packets: vec![CapturedPacket {
            ts: Duration::from_secs(1),
            data: vec![0; 60],
            orig_len: 60,
        }],
    }
}

#[test]
fn writing_a_capture_to_a_full_disk_fails_naming_the_file() {
    let full = Path::new("/dev/full");
    for (what, r) in [
        ("pcap", write_pcap(full, &capture())),
        ("pcapng", write_merged_pcapng(full, &[capture()])),
    ] {
        let e = r.expect_err(what).to_string();
        assert!(
            e.contains("/dev/full") && e.contains("No space left on device"),
            "{what}: {e}"
        );
    }
}
