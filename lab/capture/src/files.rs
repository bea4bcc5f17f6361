//! Capture files: one classic pcap per hop (`<node>-<iface>.pcap`) and one merged pcapng
//! (`path.pcapng`) whose interfaces are named `node:iface`.

use crate::roles::Hop;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, TsResolution};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the merged capture in a run directory.
pub const MERGED_NAME: &str = "path.pcapng";

/// Errors reading or writing capture files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file could not be opened, created or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid pcap, or could not be written as one.
    #[error("{path}: {source} (expected a classic pcap file as written by tcpdump -w)")]
    Pcap {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pcap_file::PcapError,
    },
    /// The capture's link type is not Ethernet.
    #[error("{path}: link type {link:?} is not Ethernet; lvslab captures veth interfaces only")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// What it has.
        link: DataLink,
    },
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPacket {
    /// Capture time (since the Unix epoch, nanosecond precision).
    pub ts: Duration,
    /// The frame, from the Ethernet header on.
    pub data: Vec<u8>,
    /// Length on the wire (larger than `data.len()` only when the snaplen cut it).
    pub orig_len: u32,
}

/// Everything captured at one hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopCapture {
    /// Where.
    pub hop: Hop,
    /// What, in capture order.
    pub packets: Vec<CapturedPacket>,
}

/// Opens (`create == false`) or creates a capture file, with the path in the error.
fn file(path: &Path, create: bool) -> Result<File, FileError> {
    let r = if create {
        File::create(path)
    } else {
        File::open(path)
    };
    r.map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Maps a pcap-file error to one that names the file.
fn pcap_err(path: &Path) -> impl Fn(pcap_file::PcapError) -> FileError + Copy + '_ {
    move |source| FileError::Pcap {
        path: path.to_owned(),
        source,
    }
}

/// File name of a hop's pcap inside a run directory.
pub fn hop_file_name(hop: &Hop) -> String {
    format!("{}-{}.pcap", hop.node, hop.iface)
}

/// Writes `capture` as a nanosecond-resolution classic pcap (Ethernet).
pub fn write_pcap(path: &Path, capture: &HopCapture) -> Result<(), FileError> {
    let file = file(path, true)?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: 262_144,
        ..Default::default()
    };
    let pcap_err = pcap_err(path);
    let mut w = PcapWriter::with_header(BufWriter::new(file), header).map_err(pcap_err)?;
    for p in &capture.packets {
        w.write_packet(&PcapPacket::new(p.ts, p.orig_len, &p.data))
            .map_err(pcap_err)?;
    }
    flush(path, w.into_writer())
}

/// Flushes a BufWriter explicitly: dropping it would ignore the error of its last write
/// (a full disk would leave a cut-off capture and no error).
fn flush(path: &Path, mut w: BufWriter<File>) -> Result<(), FileError> {
    use std::io::Write;
    w.flush().map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a classic pcap written by [`write_pcap`] or `tcpdump -w` (Ethernet only).
pub fn read_pcap(path: &Path, hop: Hop) -> Result<HopCapture, FileError> {
    let file = file(path, false)?;
    let pcap_err = pcap_err(path);
    let mut r = PcapReader::new(BufReader::new(file)).map_err(pcap_err)?;
    let link = r.header().datalink;
    if link != DataLink::ETHERNET {
        return Err(FileError::LinkType {
            path: path.to_owned(),
            link,
        });
    }
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(pcap_err)?;
        packets.push(CapturedPacket {
            ts: p.timestamp,
            orig_len: p.orig_len,
            data: p.data.into_owned(),
        });
    }
    Ok(HopCapture { hop, packets })
}

/// Reads every `<node>-<iface>.pcap` in a run directory, sorted by hop.
pub fn read_run_dir(dir: &Path) -> Result<Vec<HopCapture>, FileError> {
    let io = |source| FileError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(stem) = path
            .extension()
            .filter(|e| *e == "pcap")
            .and(path.file_stem())
            .and_then(|s| s.to_str())
        else {
            continue;
        };
        // Interface names hold no '-', node names may: split at the last one.
        let Some((node, iface)) = stem.rsplit_once('-') else {
            continue;
        };
        out.push(read_pcap(&path, Hop::new(node, iface))?);
    }
    out.sort_by(|a, b| a.hop.cmp(&b.hop));
    Ok(out)
}

/// Writes all hops into one pcapng, one interface per hop named `node:iface`, packets in
/// time order so Wireshark shows the whole path in one list.
pub fn write_merged_pcapng(path: &Path, captures: &[HopCapture]) -> Result<(), FileError> {
    let file = file(path, true)?;
    let pcap_err = pcap_err(path);
    let mut w = PcapNgWriter::new(BufWriter::new(file)).map_err(pcap_err)?;
    for c in captures {
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 262_144,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(c.hop.to_string())),
                // 10^-9 s: keep the nanosecond timestamps.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        w.write_pcapng_block(idb).map_err(pcap_err)?;
    }
    let mut all: Vec<(u32, &CapturedPacket)> = Vec::new();
    for (i, c) in captures.iter().enumerate() {
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        all.extend(c.packets.iter().map(|p| (id, p)));
    }
    all.sort_by_key(|(id, p)| (p.ts, *id));
    for (id, p) in all {
        let epb = EnhancedPacketBlock {
            interface_id: id,
            timestamp: p.ts,
            original_len: p.orig_len,
            data: Cow::Borrowed(&p.data),
            options: vec![],
        };
        w.write_pcapng_block(epb).map_err(pcap_err)?;
    }
    flush(path, w.into_inner())
}

/// Writes one pcap per hop plus the merged pcapng into `dir`; returns the paths written.
pub fn write_run_dir(dir: &Path, captures: &[HopCapture]) -> Result<Vec<PathBuf>, FileError> {
    std::fs::create_dir_all(dir).map_err(|source| FileError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for c in captures {
        let path = dir.join(hop_file_name(&c.hop));
        write_pcap(&path, c)?;
        written.push(path);
    }
    let merged = dir.join(MERGED_NAME);
    write_merged_pcapng(&merged, captures)?;
    written.push(merged);
    Ok(written)
}
