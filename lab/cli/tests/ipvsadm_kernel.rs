//! `lvslab ipvsadm` against kernel IPVS, next to Debian's ipvsadm 1.31 reading the same
//! table (inside lvslab's VM: scripts/test-kernel runs this binary there; a host without
//! IPVS prints SKIPPED). The version line comes from the kernel for both (`IP Virtual
//! Server version 1.2.1 (size=4096)`), so every listing is compared whole.
mod ipvsadm_common;
use ipvsadm_common::*;
use std::path::Path;

fn skipped() -> bool {
    if Path::new("/proc/net/ip_vs").exists() {
        return false;
    }
    let msg = "\n*** SKIPPED ipvsadm_kernel: this kernel has no IPVS (scripts/test-kernel runs it in lvslab's VM) ***\n";
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
    true
}

#[test]
fn lvslab_ipvsadm_prints_what_ipvsadm_prints_for_the_same_kernel_table() {
    if skipped() {
        return;
    }
    let lab = Lab::up("ipvs", "ik");
    for line in TABLE {
        let (code, out, err) = lab.ipvsadm(line);
        assert_eq!(code, 0, "ipvsadm {line}: {out}{err}");
    }
    // Byte for byte, exit code included, with no traffic yet (every counter 0).
    for (name, args) in LISTINGS {
        let real = lab.ipvsadm(args);
        assert_eq!(
            real.1,
            fixture(name),
            "ipvsadm {args}: the fixture {name}.txt is not what ipvsadm prints now"
        );
        let mine = lab.lvslab_ipvsadm(args, "");
        assert_eq!(mine, real, "lvslab ipvsadm {args}");
    }
    // With traffic: the same layout, the kernel's counters, the same connections.
    lab.traffic("6");
    for args in ["-Ln", "-Ln --thresholds", "-Ln --persistent-conn", "-S -n"] {
        assert_eq!(lab.lvslab_ipvsadm(args, ""), lab.ipvsadm(args), "{args}");
    }
    for args in ["-Ln --stats", "-Ln --stats --exact", "-Ln --rate"] {
        let real = lab.ipvsadm(args);
        let mine = lab.lvslab_ipvsadm(args, "");
        assert_eq!((mine.0, &mine.2), (real.0, &real.2), "{args}");
        assert_same_counter_layout(&real.1, &mine.1);
    }
    let real = lab.ipvsadm("-Lnc");
    let mine = lab.lvslab_ipvsadm("-Lnc", "");
    assert!(real.1.lines().count() > 2, "no connections:\n{}", real.1);
    assert_eq!(without_expire(&mine.1), without_expire(&real.1));
}

#[test]
fn lvslab_ipvsadm_refuses_as_ipvsadm_does_and_its_changes_are_the_kernels() {
    if skipped() {
        return;
    }
    let lab = Lab::up("ipvs", "ie");
    for args in [
        "-A -t 192.168.1.250:80",
        "-D -t 1.1.1.1:80",
        "-a -t 192.168.1.250:80 -r 192.168.1.201",
        "-e -t 192.168.1.250:80 -r 192.168.1.9 -m",
        "-d -t 192.168.1.250:80 -r 192.168.1.9",
        "-a -t 1.1.1.1:80 -r 192.168.1.9",
        "-Z -t 1.1.1.1:80",
        "-A -t 1.1.1.1:80 -s nosuch",
        "-L -t 1.1.1.1:80",
        "-Lx",
        "-Q",
        "-n -L",
        "-L --bogus",
        "--set 1 2",
        "-A -t 1.2.3.4:0",
        "-A -t 1.2.3.4:80 -o",
        "-A -t 1.2.3.4:80 -r 10.0.0.1",
        "-a -t 1.2.3.4:80",
        "-Lc --stats",
        "-E -t 1.2.3.4:80 -s rr -s rr",
        "-a -m -t 1.2.3.4:80 -r 10.0.0.1 --tun-type ipip",
    ] {
        let real = lab.ipvsadm(args);
        assert_ne!(real.0, 0, "ipvsadm {args} succeeded");
        assert_eq!(lab.lvslab_ipvsadm(args, ""), real, "{args}");
    }
    // What lvslab ipvsadm changes, ipvsadm reads back.
    for args in [
        "-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 5",
        "--add-service --udp-service=192.168.1.250:53 --scheduler=wrr --persistent",
        "-a -u 192.168.1.250:53 -r 192.168.1.203 -mw 2",
        "-d -t 192.168.1.250:80 -r 192.168.1.203:80",
        "--set 1000 100 200",
    ] {
        assert_eq!(lab.lvslab_ipvsadm(args, "").0, 0, "{args}");
    }
    assert_eq!(
        lab.ipvsadm("-S -n").1,
        "-A -t 192.168.1.250:80 -s rr\n\
         -a -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 5\n\
         -A -u 192.168.1.250:53 -s wrr -p 360\n\
         -a -u 192.168.1.250:53 -r 192.168.1.203:53 -m -w 2\n"
    );
    assert_eq!(
        lab.ipvsadm("-L --timeout").1,
        "Timeout (tcp tcpfin udp): 1000 100 200\n"
    );
    // -R reads ipvsadm-save's form from stdin, as ipvsadm-restore does.
    assert_eq!(lab.lvslab_ipvsadm("-C", "").0, 0);
    let rules = fixture("S_n");
    let restored = lab.lvslab_ipvsadm("-R", &rules);
    assert_eq!(restored.0, 0, "-R: {restored:?}");
    assert_eq!(lab.ipvsadm("-S -n").1, rules);
}
