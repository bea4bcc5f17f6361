//! `lvslab ipvsadm`, and `ipvsadm` typed in the director's namespace, against the
//! userspace director of a real lab (root; run on the host). The table and its listings
//! are the ones Debian's ipvsadm printed from kernel IPVS (tests/fixtures/ipvsadm, checked
//! against the kernel by ipvsadm_kernel in lvslab's VM): the userspace lab must print the
//! same bytes.
mod ipvsadm_common;
use ipvsadm_common::*;

#[test]
fn ipvsadm_in_the_director_namespace_reaches_the_userspace_director() {
    let lab = Lab::up("userspace", "iu");
    let (code, out, err) = lab.ipvsadm("-Ln");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.168.1.250:80 rr\n\
         \x20 -> 192.168.1.201:80             Masq    1      0          0         \n\
         \x20 -> 192.168.1.203:80             Masq    1      0          0         \n"
    );
    // Typed in the namespace, the table changes.
    let (code, _, err) = lab.ipvsadm("-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 2");
    assert_eq!(code, 0, "{err}");
    assert!(lab
        .ipvsadm("-Ln")
        .1
        .contains("  -> 192.168.1.201:80             Masq    2      0          0"));
    let (code, _, err) = lab.ipvsadm("-A -t 192.168.1.250:80");
    assert_eq!((code, err.as_str()), (255, "Service already exists\n"));
    let (code, _, err) = lab.ipvsadm("-a -t 192.168.1.250:80 -r 192.168.1.201");
    assert_eq!((code, err.as_str()), (255, "Destination already exists\n"));

    // The kernel selftest's NAT lines (tools/testing/selftests/net/netfilter/ipvs.sh,
    // test_nat) unchanged, with this lab's VIP, RIP and port, through sh and PATH.
    assert_eq!(lab.ipvsadm("-C").0, 0);
    let script = r#"vip_v4=192.168.1.250; rip_v4=192.168.1.201; port=80
ipvsadm -A -t "${vip_v4}:${port}" -s rr
ipvsadm -a -m -t "${vip_v4}:${port}" -r "${rip_v4}:${port}""#;
    let (code, out, err) = lvslab(
        &[
            "exec", "--lab", &lab.name, "director", "--", "sh", "-ec", script,
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let served = lab.traffic("4");
    // Every connection goes to the selftest's one real server.
    assert!(served.contains("4 ok, 0 failed"), "{served}");
    assert!(
        served
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["rs1", "4"])),
        "{served}"
    );
    assert!(!served.contains("rs2"), "{served}");
}

#[test]
fn the_userspace_director_lists_as_ipvsadm_lists_the_kernel_table() {
    let lab = Lab::up("userspace", "il");
    for line in TABLE {
        let (code, out, err) = lab.ipvsadm(line);
        assert_eq!(code, 0, "ipvsadm {line}: {out}{err}");
    }
    for (name, args) in LISTINGS {
        let (code, out, err) = lab.ipvsadm(args);
        assert_eq!(code, 0, "ipvsadm {args}: {err}");
        assert_eq!(out, fixture(name), "ipvsadm {args} (fixture {name}.txt)");
    }
    // With traffic: counters and connections in ipvsadm's columns.
    lab.traffic("4");
    let stats = lab.lvslab_ipvsadm("-Ln --stats", "").1;
    assert_same_counter_layout(&fixture("Ln_stats"), &stats);
    assert!(
        stats.contains("TCP  192.168.1.250:80                    4"),
        "{stats}"
    );
    let conns = lab.lvslab_ipvsadm("-Lnc", "").1;
    let rows: Vec<&str> = conns.lines().skip(2).collect();
    assert_eq!(rows.len(), 4, "{conns}");
    for r in rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(
            (f[0], f[2], f[4]),
            ("TCP", "TIME_WAIT", "192.168.1.250:80"),
            "{r}"
        );
        assert_eq!(&r[3..4], " ");
        assert_eq!(&r[9..11], "  ", "expire is %-6s: {r}");
    }
    // -Z zeroes, -R restores the save form, -S gives it back.
    assert_eq!(lab.lvslab_ipvsadm("-Z", "").0, 0);
    assert_eq!(lab.lvslab_ipvsadm("-Ln --stats", "").1, fixture("Ln_stats"));
    assert_eq!(lab.lvslab_ipvsadm("-C", "").0, 0);
    let rules = fixture("S_n");
    let restored = lab.lvslab_ipvsadm("-R", &rules);
    assert_eq!(restored.0, 0, "-R: {restored:?}");
    assert_eq!(lab.lvslab_ipvsadm("-S -n", "").1, rules);
}
