//! `lvslab commands`: the printed scripts of the seed's three labs, reviewed as snapshots
//! (`cargo insta review`). The script is text only; lab/cli's commands_lab and
//! commands_kernel tests run it.
use std::path::Path;

use lvslab_engine::commands::{lab_commands, CommandsOptions};
use lvslab_engine::{director_lines, Backend, Topology};

fn topology(name: &str) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(format!("{name}.toml"));
    Topology::load(&p).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn script(name: &str, backend: Backend) -> String {
    let opts = CommandsOptions {
        backend,
        ..CommandsOptions::default()
    };
    lab_commands(&topology(name), &opts).expect("the default prefix is valid")
}

#[test]
fn nat_by_hand_on_kernel_ipvs() {
    insta::assert_snapshot!(script("nat-topology", Backend::Ipvs));
}

#[test]
fn dr_by_hand_on_kernel_ipvs() {
    insta::assert_snapshot!(script("dr-topology", Backend::Ipvs));
}

#[test]
fn tun_by_hand_on_kernel_ipvs() {
    insta::assert_snapshot!(script("tun-topology", Backend::Ipvs));
}

#[test]
fn nat_by_hand_with_the_userspace_director() {
    insta::assert_snapshot!(script("nat-topology", Backend::Userspace));
}

#[test]
fn the_director_table_is_the_engines_own() {
    // One source of truth: every line director_lines gives is in the script, as ipvsadm
    // for the kernel and as --rule for the userspace director.
    for name in ["nat-topology", "dr-topology", "tun-topology"] {
        let kernel = script(name, Backend::Ipvs);
        let user = script(name, Backend::Userspace);
        for l in director_lines(&topology(name), "director") {
            assert!(
                kernel.contains(&format!("ip netns exec lvsh-director ipvsadm {l}\n")),
                "{name}: {l}"
            );
            assert!(user.contains(&format!("--rule='{l}'")), "{name}: {l}");
        }
    }
}

#[test]
fn the_same_topology_prints_the_same_script() {
    assert_eq!(
        script("dr-topology", Backend::Ipvs),
        script("dr-topology", Backend::Ipvs)
    );
}

#[test]
fn a_prefix_of_lvslab_s_own_labs_is_refused() {
    let opts = CommandsOptions {
        prefix: "lvs-".into(),
        ..CommandsOptions::default()
    };
    let e = lab_commands(&topology("nat-topology"), &opts).expect_err("refused");
    assert!(e.to_string().contains("lvs-"), "{e}");
}
