//! The guest's initramfs: busybox, the modules IPVS labs need, and an /init that mounts
//! the host's root over 9p and runs the agent loop.
use crate::cpio::CpioWriter;
use crate::error::{IoAt, VmError};
use crate::kernel::ModuleTree;
use std::io::BufWriter;
use std::path::Path;

/// Modules loaded at boot, roots only (their dependencies come from .modinfo). The
/// crc32c implementation goes before libcrc32c, which asks the crypto API for "crc32c"
/// at init (a softdep, not a symbol dependency). `ip_vs_twos` does not exist in 6.1.
pub const MODULE_ROOTS: &[&str] = &[
    "virtio_mmio",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "crc32c_generic",
    "libcrc32c",
    "nf_conntrack",
    "nf_defrag_ipv4",
    "nf_defrag_ipv6",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_mh",
    "ipip",
    "tunnel4",
    "ip_tunnel",
    // IPv6-in-IPv6 for TUN real servers of IPv6 services (its fallback ip6tnl0 decapsulates).
    "ip6_tunnel",
    "tunnel6",
    "tun",
    "veth",
    "bridge",
];

/// The virtio-serial port name the agent listens on.
pub const AGENT_PORT: &str = "lvslab.agent";
/// The 9p mount tag of the writable share.
pub const SHARE_TAG: &str = "lvslab.share";
/// The 9p mount tag of the host's root.
pub const ROOT_TAG: &str = "hostroot";

/// The guest's /init. The host's root becomes /host and commands run chrooted into it
/// (`/bin/sh -c SCRIPT`), so host programs find their own loader and libraries.
///
/// The agent protocol is one line per request, `PING id` or `RUN id BASE64-SCRIPT`;
/// answers are `PONG id release uptime` or `RES id status` followed by two lines, stdout
/// and stderr in base64. A virtio port reads EOF while no host client is connected, so
/// a failed read means "wait", not "quit".
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /host /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
log() { echo "lvslab-vm: $*"; }
die() { log "$*"; poweroff -f; }
for m in $(cat /modules/order); do
  insmod "/modules/$m.ko" || log "insmod $m failed"
done
log "$(wc -l < /modules/order) modules loaded"
# Without lo up the root namespace has no local routing table, inet_addr_type() calls
# every address broadcast, and IPVS refuses NAT real servers ("address not unicast").
ip link set lo up
CACHE=
SHARE=
for w in $(cat /proc/cmdline); do
  case "$w" in
  lvslab.cache=*) CACHE="${w#lvslab.cache=}" ;;
  lvslab.share=*) SHARE="${w#lvslab.share=}" ;;
  esac
done
H=/host
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,cache=@CACHEMODE@,msize=524288,ro @TAG@ $H; do
  i=$((i+1)); [ $i -gt 50 ] && die "cannot mount the host root over 9p"
  usleep 100000
done
log "host root mounted"
mount -t proc proc $H/proc
mount -t sysfs sysfs $H/sys
mount -t devtmpfs devtmpfs $H/dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts $H/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $H/dev/shm
# The host's /tmp and /root stay visible (read-only, like the rest): a checkout or a CI
# clone may live there. Commands get a writable TMPDIR and HOME under the guest's /run.
mount -t tmpfs -o mode=755 tmpfs $H/run
mkdir -p -m 1777 $H/run/tmp
mkdir -p -m 700 $H/run/home
[ -d $H/var/tmp ] && mount -t tmpfs -o mode=1777 tmpfs $H/var/tmp
mkdir -p $H/run/netns
# The writable share, at its host path; cache=none so the host sees writes at once.
if [ -n "$SHARE" ]; then
  mkdir -p "$H$SHARE" 2>/dev/null
  mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=524288 @SHARETAG@ "$H$SHARE" \
    || log "cannot mount the share at $SHARE"
fi
A=/tmp/agent
mkdir -p $A
P=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
L=
if [ -n "$CACHE" ]; then
  P=$CACHE/root/usr/sbin:$CACHE/root/sbin:$P
  L=$CACHE/root/usr/lib/x86_64-linux-gnu:$CACHE/root/lib/x86_64-linux-gnu
fi
PORT=
i=0
while [ -z "$PORT" ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = @PORT@ ] && PORT=/dev/${p##*/}
  done
  if [ -z "$PORT" ]; then
    i=$((i+1)); [ $i -gt 100 ] && die "no virtio-serial port named @PORT@"
    usleep 50000
  fi
done
exec 3<>"$PORT"
log "agent ready on $PORT ($(uname -r))"
while :; do
  if ! read -r verb id arg <&3; then usleep 20000; continue; fi
  case "$verb" in
  PING) echo "PONG $id $(uname -r) $(cut -d' ' -f1 /proc/uptime)" >&3 ;;
  RUN)
    echo "$arg" | base64 -d >$A/cmd 2>/dev/null
    env -i HOME=/run/home TMPDIR=/run/tmp TERM=dumb LANG=C.UTF-8 PATH="$P" LD_LIBRARY_PATH="$L" \
      chroot $H /bin/sh -c "$(cat $A/cmd)" sh </dev/null >/tmp/out 2>/tmp/err
    rc=$?
    { echo "RES $id $rc"; base64 -w 0 /tmp/out; echo; base64 -w 0 /tmp/err; echo; } >&3
    rm -f /tmp/out /tmp/err
    ;;
  "") ;;
  *) echo "ERR $id unknown request" >&3 ;;
  esac
done
"#;

/// The guest's /init text.
pub fn init_script() -> String {
    INIT.replace("@TAG@", ROOT_TAG)
        .replace("@SHARETAG@", SHARE_TAG)
        .replace("@PORT@", AGENT_PORT)
        // Loose caching makes a warm command 5-10 times faster than "mmap" (which reads
        // every page from the host, ~1 s per exec under TCG) at the price of staleness:
        // the host side drops the guest's dentries when a program it runs has changed
        // (see Vm::run).
        .replace("@CACHEMODE@", "loose")
}

/// Write the initramfs to `out`; returns the modules in load order.
pub fn build(tree: &ModuleTree, busybox: &Path, out: &Path) -> Result<Vec<String>, VmError> {
    let order = tree.load_order(MODULE_ROOTS)?;
    let bb = std::fs::read(busybox).at(busybox)?;
    let tmp = out.with_extension("cpio.tmp");
    let f = std::fs::File::create(&tmp).at(&tmp)?;
    let mut w = CpioWriter::new(BufWriter::new(f));
    let mut write = || -> std::io::Result<()> {
        for d in ["bin", "dev", "modules", "proc", "sys", "tmp", "host", "run"] {
            w.dir(d, 0o755)?;
        }
        w.char_dev("dev/console", 0o600, 5, 1)?;
        w.file("bin/busybox", 0o755, &bb)?;
        w.file("init", 0o755, init_script().as_bytes())?;
        w.file("modules/order", 0o644, (order.join("\n") + "\n").as_bytes())?;
        Ok(())
    };
    write().at(&tmp)?;
    for m in &order {
        let data = tree.read(m)?;
        w.file(&format!("modules/{m}.ko"), 0o644, &data).at(&tmp)?;
    }
    w.finish().at(&tmp)?;
    std::fs::rename(&tmp, out).at(out)?;
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_parses_and_names_its_channels() {
        let script = init_script();
        assert!(
            !script.contains('@'),
            "unreplaced placeholder in:\n{script}"
        );
        assert!(script.contains("= lvslab.agent ]"));
        assert!(script.contains("hostroot $H"));
        // The guest runs it with busybox ash; the host's POSIX sh catches syntax slips.
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .expect("run sh -n");
        assert!(
            out.status.success(),
            "init script does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn modules_cover_every_61_scheduler() {
        for s in [
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
        ] {
            assert!(MODULE_ROOTS.contains(&format!("ip_vs_{s}").as_str()), "{s}");
        }
    }
}
