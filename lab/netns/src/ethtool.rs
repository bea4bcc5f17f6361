//! Switch veth offloads off with the legacy SIOCETHTOOL ioctls, so captured frames carry real
//! checksums and wire-sized segments.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
/// 32 features per block; 8 blocks cover every feature bit the kernel defines today.
const BLOCKS: usize = 8;

#[repr(C)]
struct GetFeatures {
    cmd: u32,
    size: u32,
    // available, requested, active, never_changed per block
    blocks: [[u32; 4]; BLOCKS],
}

#[repr(C)]
struct SetFeatures {
    cmd: u32,
    size: u32,
    // valid, requested per block
    blocks: [[u32; 2]; BLOCKS],
}

/// A datagram socket used only as an ioctl handle; it belongs to the namespace it was opened in.
pub struct Ethtool {
    fd: OwnedFd,
}

impl Ethtool {
    /// Open in the current thread's namespace.
    pub fn open() -> Result<Ethtool> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::Io {
                context: "ethtool socket".into(),
                error: io::Error::last_os_error(),
            });
        }
        // SAFETY: fd is a fresh, valid descriptor.
        Ok(Ethtool {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Turn every changeable offload off on `ifname` (checksums, SG, TSO and its newer
    /// variants, GSO, GRO, ...): what `ethtool -K IF tx off rx off sg off tso off gso off gro off`
    /// does, without missing features newer than the legacy per-feature ioctls.
    pub fn offloads_off(&self, ifname: &str) -> Result<()> {
        let ctx = |e| Error::Io {
            context: format!("ethtool -K {ifname} (all offloads off)"),
            error: e,
        };
        let mut get = GetFeatures {
            cmd: ETHTOOL_GFEATURES,
            size: BLOCKS as u32,
            blocks: [[0; 4]; BLOCKS],
        };
        self.ioctl(ifname, (&mut get as *mut GetFeatures).cast())
            .map_err(ctx)?;
        // The kernel wants exactly its own block count back, which GFEATURES reported in size.
        let words = (get.size as usize).min(BLOCKS);
        let mut set = SetFeatures {
            cmd: ETHTOOL_SFEATURES,
            size: words as u32,
            blocks: [[0; 2]; BLOCKS],
        };
        for (s, g) in set.blocks.iter_mut().zip(get.blocks.iter()).take(words) {
            s[0] = g[0]; // valid = every feature the device lets us change
            s[1] = 0; // requested = off
        }
        self.ioctl(ifname, (&mut set as *mut SetFeatures).cast())
            .map_err(ctx)
    }

    fn ioctl(&self, ifname: &str, data: *mut libc::c_char) -> io::Result<()> {
        // SAFETY: zeroed ifreq is valid; we fill name and data pointer below.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr
            .ifr_name
            .iter_mut()
            .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = data;
        // SAFETY: SIOCETHTOOL reads ifreq and the ethtool struct it points to, both alive here.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
