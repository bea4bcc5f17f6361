//! The script `lvslab commands nat-topology` prints (kernel IPVS, ipvsadm: what a person at
//! a shell uses) really builds the lab where the kernel has IPVS: inside lvslab's VM
//! (scripts/test-kernel runs this binary there). On a host without IPVS it says SKIPPED.
mod common;
use common::hand_lab::{namespaces_with, HandLab};
use std::path::Path;
use std::time::Duration;

#[test]
fn the_printed_kernel_nat_script_builds_a_lab_every_real_server_answers() {
    if !Path::new("/proc/net/ip_vs").exists() {
        // Written past cargo's capture, so a run that never met the kernel is seen.
        let msg = "\n*** SKIPPED commands_kernel: this kernel has no IPVS (scripts/test-kernel runs it in lvslab's VM) ***\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the script builds namespaces: run this test as root"
    );
    let lab = HandLab::print("nat-topology", "ipvs", "k");
    let stdout = lab.up();
    // Step 2 showed the kernel's table: the service and both masqueraded real servers.
    assert!(
        stdout.contains("TCP  192.168.1.250:80 rr"),
        "ipvsadm -Ln printed:\n{stdout}"
    );
    for rip in ["192.168.1.201:80", "192.168.1.203:80"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(rip) && l.contains("Masq")),
            "{rip} is no Masq real server in:\n{stdout}"
        );
    }
    let mut answers: Vec<&str> = stdout
        .lines()
        .filter(|l| *l == "rs1" || *l == "rs2")
        .collect();
    answers.sort_unstable();
    assert_eq!(answers, ["rs1", "rs2"], "step 4 printed:\n{stdout}");
    let mut again = vec![
        lab.curl("http://192.168.1.250/"),
        lab.curl("http://192.168.1.250/"),
    ];
    again.sort();
    assert_eq!(again, ["rs1", "rs2"]);
    for (dump, out) in lab.watch("http://192.168.1.250/", Duration::from_secs(60)) {
        assert!(out.contains(" IP "), "{dump} printed {out:?}");
    }
    let prefix = lab.prefix.clone();
    lab.down();
    assert!(namespaces_with(&prefix).is_empty());
}
