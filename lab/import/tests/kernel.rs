//! The kernel check: for every real-world fixture, what lvslab writes (`to_ipvsadm_save`)
//! is what Debian's ipvsadm and the kernel make of it. In a network namespace of its own:
//! `ipvsadm -C`, `ipvsadm -R` fed lvslab's output, then `ipvsadm-save -n`, which must print
//! exactly lvslab's text. No order is normalised: ipvsadm-save sorts services and real
//! servers itself (libipvs ipvs_sort_services / ipvs_sort_dests), so its order is no hash
//! order, and lvslab writes that same order. Needs root and kernel IPVS: inside lvslab's
//! VM (scripts/test-kernel runs it there); elsewhere it says loudly that it did not run.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lvslab_import::{import_ipvsadm, to_ipvsadm_save};

fn skip(why: &str) {
    // Printed past cargo's capture so a run that never met the kernel is seen.
    let msg =
        format!("\n*** SKIPPED the_kernel_restores_and_saves_what_lvslab_writes: {why} ***\n");
    let _ = std::io::stderr().write_all(msg.as_bytes());
}

struct Gone(String);
impl Drop for Gone {
    fn drop(&mut self) {
        let _ = lvslab_netns::netns::delete(&self.0);
    }
}

fn run_in(ns: &str, prog: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = lvslab_netns::netns::command_in(ns, c).map_err(|e| e.to_string())?;
    let mut child = c.spawn().map_err(|e| format!("{prog}: {e}"))?;
    if let (Some(text), Some(mut sin)) = (stdin, child.stdin.take()) {
        sin.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| PathBuf::from(format!("{}.source", p.display())).exists())
        .collect();
    v.sort();
    v
}

#[test]
fn the_kernel_restores_and_saves_what_lvslab_writes() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip("needs root (a network namespace of its own)");
    }
    if !Path::new("/proc/net/ip_vs").exists() {
        return skip("no kernel IPVS here; scripts/test-kernel runs it in lvslab's VM");
    }
    let ns = format!("lvs-import-{}", std::process::id());
    lvslab_netns::netns::create_with(&ns, || Ok(())).expect("namespace");
    let _gone = Gone(ns.clone());
    // IPVS refuses a NAT real server while lo is down.
    run_in(&ns, "ip", &["link", "set", "lo", "up"], None).expect("lo up");
    // A case of lvslab's own joins the real-world ones: the -f save path, IPv6, and addresses
    // more than 2^31 apart (libipvs compares them by an int subtraction: 192.168.x first).
    let mut cases: Vec<(String, String)> = fixtures()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("fixture");
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let i = import_ipvsadm(Path::new(&name), &text).unwrap_or_else(|e| panic!("{e}"));
            (name, to_ipvsadm_save(&i.services))
        })
        .collect();
    let own = import_ipvsadm(
        Path::new("fwmark"),
        "iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 3\n\
         -A -f 3 -s wlc -p 600\n-a -f 3 -r 10.0.1.220:80 -g\n-a -f 3 -r 10.0.1.221 -g -w 2\n\
         -A -u [2001:db8::1]:53 -s sh\n-a -u [2001:db8::1]:53 -r [2001:db8::2]:5353 -m\n\
         -A -t 10.0.0.1:80 -s rr\n-A -t 192.168.1.1:80 -s rr\n-A -t 10.0.0.1:22 -s rr\n\
         -a -t 10.0.0.1:22 -r 192.168.1.9 -g\n-a -t 10.0.0.1:22 -r 10.0.0.9 -g\n",
    )
    .expect("own fixture");
    cases.push(("fwmark+ipv6".into(), to_ipvsadm_save(&own.services)));
    // ipvsadm-save is a shell script that runs `ipvsadm -S -n` with a PATH of its own, which
    // misses the VM's ipvsadm; then the same command is run directly.
    let save_cmd = if run_in(&ns, "ipvsadm-save", &["-n"], None).is_ok() {
        ("ipvsadm-save", vec!["-n"])
    } else {
        ("ipvsadm", vec!["-S", "-n"])
    };
    let mut failures = Vec::new();
    for (name, ours) in &cases {
        run_in(&ns, "ipvsadm", &["-C"], None).expect("ipvsadm -C");
        if let Err(e) = run_in(&ns, "ipvsadm", &["-R"], Some(ours)) {
            failures.push(format!(
                "{name}: ipvsadm -R refused lvslab's output: {e}\n{ours}"
            ));
            continue;
        }
        let kernel = run_in(&ns, save_cmd.0, &save_cmd.1, None).expect("ipvsadm-save");
        if &kernel != ours {
            failures.push(format!(
                "{name}: {} printed\n{kernel}lvslab wrote\n{ours}",
                save_cmd.0
            ));
        }
    }
    let _ = run_in(&ns, "ipvsadm", &["-C"], None);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
