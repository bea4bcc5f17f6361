//! The script `lvslab commands nat-topology --backend userspace` prints really builds the
//! lab: run in bash (the userspace director started by hand, this host has no IPVS), its
//! requests are answered by each real server, every tcpdump of step 4 sees the traffic,
//! and its teardown leaves no namespace and no process behind.
mod common;
use common::hand_lab::{namespaces_with, HandLab};
use std::time::Duration;

#[test]
fn the_printed_nat_script_builds_a_lab_every_real_server_answers() {
    if !nix::unistd::Uid::effective().is_root() {
        let msg = "\n*** SKIPPED commands_lab: building namespaces needs root ***\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
        return;
    }
    let lab = HandLab::print("nat-topology", "userspace", "u");
    let stdout = lab.up();
    // Step 4's own two requests: one answer from each real server.
    let mut answers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("rs")).collect();
    answers.sort_unstable();
    assert_eq!(answers, ["rs1", "rs2"], "step 4 printed:\n{stdout}");
    // And from the test: two more requests through the VIP, round robin over both.
    let mut again = vec![
        lab.curl("http://192.168.1.250/"),
        lab.curl("http://192.168.1.250/"),
    ];
    again.sort();
    assert_eq!(again, ["rs1", "rs2"]);
    for (dump, out) in lab.watch("http://192.168.1.250/", Duration::from_secs(20)) {
        assert!(out.contains(" IP "), "{dump} printed {out:?}");
    }
    let prefix = lab.prefix.clone();
    lab.down();
    assert!(namespaces_with(&prefix).is_empty());
}
