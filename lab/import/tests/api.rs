//! The import's behaviour on the cases the real-world fixtures do not cover: every refusal
//! names file:line and why; -E, -e, -d, -D and -C have their real effect; firewall-mark
//! services take their addresses from the file's MARK rules; the TOML writer's
//! `[[services]]` is read back by `Topology::parse`; the JSON is JSON.
use std::path::Path;

use lvslab_import::{
    import_ipvsadm, to_ipvsadm_rules, to_ipvsadm_save, to_json, to_toml, Imported,
};
use lvslab_netns::topology::Topology;

fn import(text: &str) -> Imported {
    import_ipvsadm(Path::new("lb.sh"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(text: &str) -> String {
    import_ipvsadm(Path::new("lb.sh"), text)
        .map(|i| panic!("imported: {i:?}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn every_refusal_names_file_line_and_why() {
    for (text, line, why) in [
        ("VIP=10.0.0.1\nipvsadm -A -t $VIP:80\nipvsadm -a -t $VIP:80 -r $RIP\n", 3, "$RIP"),
        ("ipvsadm -A -t 10.0.0.1:80 -s rr\nipvsadm -a -t 10.0.0.1:80 -s rr -r 10.0.0.2\n", 2, "Illegal 'scheduler' option with the 'add-server' command"),
        ("\n-A -t 10.0.0.1:gopher -s rr\n", 2, "not a tcp service name"),
        ("-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0\n-a -t 10.0.0.1:80 -r 10.0.0.2\n", 1, "no persistence netmask"),
        ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2 -m\n-a -t 10.0.0.1:80 -r 10.0.0.3 -g\n", 3, "one forwarding method"),
        ("ipvsadm -A -f 3 -s rr\nipvsadm -a -f 3 -r 10.0.0.2\n", 1, "needs its VIPs and port"),
        ("ipvsadm -C\nipvsadm -R < /etc/ipvsadm.rules\n", 2, "rules file itself"),
        ("while read l; do\n  ipvsadm $l\ndone < rules\n", 2, "`while` loop"),
        ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080\n", 2, "IP-in-IP tunnels only"),
        ("-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s wlc\n", 2, "already exists"),
        ("-a -t 10.0.0.1:80 -r 10.0.0.2\n", 1, "no such service"),
        ("-A -u 10.0.0.1:53 -s rr -o\n", 1, "-o (one-packet scheduling)"),
    ] {
        let e = refusal(text);
        assert!(e.starts_with(&format!("lb.sh:{line}: ")), "{e}\n--\n{text}");
        assert!(e.contains(why), "{e}\n--\n{text}");
    }
}

#[test]
fn edits_and_deletes_have_their_real_effect() {
    let i = import(
        "ipvsadm -A -t 10.0.0.1:80 -s rr\n\
         ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 2\n\
         ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.3 -m\n\
         ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.4 -m\n\
         ipvsadm -E -t 10.0.0.1:80 -s wlc -p\n\
         ipvsadm -e -t 10.0.0.1:80 -r 10.0.0.2 -m -x 100 -y 50\n\
         ipvsadm -d -t 10.0.0.1:80 -r 10.0.0.3\n\
         ipvsadm -A -t 10.0.0.9:80\n\
         ipvsadm -D -t 10.0.0.9:80\n\
         ipvsadm -Ln\n",
    );
    // -e sends every field: the weight went back to 1; -E made it wlc and persistent.
    assert_eq!(
        to_ipvsadm_save(&i.services),
        "-A -t 10.0.0.1:80 -s wlc -p 360\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:80 -m -w 1\n"
    );
    assert_eq!(
        to_ipvsadm_rules(&i.services),
        "-A -t 10.0.0.1:80 -s wlc -p 360\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1 -x 100 -y 50\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:80 -m -w 1\n"
    );
    let rs: Vec<&str> = i.services[0]
        .real_servers
        .iter()
        .map(|r| r.node.as_str())
        .collect();
    assert_eq!(rs, ["rs1", "rs2"]);
    assert_eq!(i.services[0].director, "director");
    let again = import(&to_ipvsadm_rules(&i.services));
    assert_eq!(again.services, i.services);
}

#[test]
fn clear_in_a_script_clears() {
    let i = import("-A -t 10.0.0.1:80 -s rr\n-C\n-A -t 10.0.0.2:80 -s rr\n");
    assert_eq!(to_ipvsadm_save(&i.services), "-A -t 10.0.0.2:80 -s rr\n");
}

#[test]
fn fwmark_services_take_their_vips_from_the_mark_rules() {
    let i = import(
        "VIP1=10.0.0.1\nVIP2=10.0.0.2\n\
         iptables -t mangle -A PREROUTING -d $VIP1/32 -p tcp --dport 80 -j MARK --set-mark 3\n\
         iptables -t mangle -A PREROUTING -d $VIP2/32 -p tcp --dport 80 -j MARK --set-mark 3\n\
         ipvsadm -A -f 3 -s lblc -p 600\n\
         ipvsadm -a -f 3 -r 10.0.1.220:80 -g\n\
         ipvsadm -a -f 3 -r 10.0.1.221 -g -w 2\n",
    );
    let s = &i.services[0];
    assert_eq!(s.fwmark, Some(3));
    assert_eq!(s.vip.to_string(), "10.0.0.1");
    assert_eq!(s.vips[0].to_string(), "10.0.0.2");
    assert_eq!(s.port, 80);
    // ipvsadm keeps a port given to a fwmark service's real server; without one it is 0.
    assert_eq!(
        to_ipvsadm_save(&i.services),
        "-A -f 3 -s lblc -p 600\n\
         -a -f 3 -r 10.0.1.220:80 -g -w 1\n\
         -a -f 3 -r 10.0.1.221:0 -g -w 2\n"
    );
}

#[test]
fn an_ipv6_fwmark_service_takes_its_vips_from_ip6tables_rules() {
    // A script marking with ip6tables feeds `-f 1 -6`, the IPv6 table of mark 1, beside an
    // IPv4 `-f 1` fed by iptables: the kernel looks marks up per family.
    let i = import(
        "ip6tables -t mangle -A PREROUTING -d 2001:db8:2::1/128 -p tcp --dport 80 -j MARK --set-mark 1
         ip6tables -t mangle -A PREROUTING -d 2001:db8:2::2 -p tcp --dport 80 -j MARK --set-mark 1
         iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 1
         ipvsadm -A -f 1 -6 -s lblc
         ipvsadm -a -f 1 -6 -r [2001:db8:1::201]:80 -m
         ipvsadm -A -f 1 -s dh
         ipvsadm -a -f 1 -r 10.0.1.220:80 -g
",
    );
    let v6 = i
        .services
        .iter()
        .find(|s| s.vip.is_ipv6())
        .expect("the IPv6 service");
    assert_eq!(v6.fwmark, Some(1));
    assert_eq!(v6.vip.to_string(), "2001:db8:2::1");
    assert_eq!(
        v6.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["2001:db8:2::2"]
    );
    let v4 = i.services.iter().find(|s| s.vip.is_ipv4()).expect("IPv4");
    assert_eq!((v4.vip.to_string(), v4.vips.len()), ("10.0.0.1".into(), 0));
    // Written back with -6, and the TOML is a topology's service again.
    let save = to_ipvsadm_save(&i.services);
    assert!(save.contains("-A -f 1 -6 -s lblc\n"), "{save}");
    assert!(
        save.contains("-a -f 1 -6 -r [2001:db8:1::201]:80 -m -w 1\n"),
        "{save}"
    );
}

#[test]
fn an_ipv6_fwmark_service_without_its_ip6tables_rule_is_refused_at_its_line() {
    // ipvsadm-save -n output has no MARK rules: the VIPs are unknown, so a located refusal
    // naming the rule to add, not a guess.
    let e = refusal(
        "-A -t 10.0.0.1:80 -s rr
         -A -f 1 -6 -s dh
         -a -f 1 -6 -r [2001:db8:1::201]:80 -g -w 1
",
    );
    assert!(e.starts_with("lb.sh:2: "), "{e}");
    assert!(
        e.contains("firewall-mark service 1 -6") && e.contains("ip6tables -t mangle"),
        "{e}"
    );
}

#[test]
fn ipv6_fwmark_mistakes_are_refused_at_their_line() {
    // ipvsadm's own refusals of -6 name their line too.
    let e = refusal(
        "-A -t 10.0.0.1:80 -s rr
-A -6 -f 1 -s dh
",
    );
    assert!(
        e.starts_with("lb.sh:2: ") && e.contains("-6 used before -f"),
        "{e}"
    );
    let e = refusal(
        "-A -f 1 -6 -s dh
-a -f 1 -6 -r 10.0.0.2:80 -g
",
    );
    assert!(
        e.starts_with("lb.sh:2: ") && e.contains("Different address family"),
        "{e}"
    );
    // An ip6tables rule with the same mark gives an IPv4 fwmark service no IPv6 VIP: the
    // kernel keys fwmark services by family, and iptables marks only IPv4 packets.
    let i = import(
        "ip6tables -t mangle -A PREROUTING -d 2001:db8:2::1 -p tcp --dport 80 -j MARK --set-mark 1
         iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 1
         ipvsadm -A -f 1 -s dh
         ipvsadm -a -f 1 -r 10.0.1.220:80 -g
",
    );
    let s = &i.services[0];
    assert_eq!(
        (s.vip.to_string(), s.vips.len()),
        ("10.0.0.1".to_string(), 0)
    );
}

#[test]
fn services_sort_as_libipvs_compares_them() {
    // ipvs_cmp_services subtracts addresses as ints: 192.168.x comes before 10.x, and TCP
    // before UDP, address services before fwmark ones.
    let i = import(
        "iptables -t mangle -A PREROUTING -d 10.9.9.9 -p tcp --dport 80 -j MARK --set-mark 1\n\
         -A -f 1 -s rr\n-A -u 10.0.0.1:53 -s rr\n-A -t 10.0.0.1:80 -s rr\n-A -t 192.168.1.1:80 -s rr\n-A -t 10.0.0.1:22 -s rr\n",
    );
    assert_eq!(
        to_ipvsadm_save(&i.services),
        "-A -t 192.168.1.1:80 -s rr\n-A -t 10.0.0.1:22 -s rr\n-A -t 10.0.0.1:80 -s rr\n-A -u 10.0.0.1:53 -s rr\n-A -f 1 -s rr\n"
    );
}

#[test]
fn ipvsadm_quirks_become_warnings_with_their_line() {
    let i = import(
        "#!/bin/sh\n-A -t 10.0.0.1:80 -s rr # web\n-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g\nipvsadm --start-daemon master --mcast-interface eth0\nipvsadm --set 900 120 300\n",
    );
    let w: Vec<String> = i.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w[0].starts_with("lb.sh:2: warning: a comment after the rule"),
        "{w:?}"
    );
    assert!(
        w[1].starts_with(
            "lb.sh:3: warning: real server 10.0.0.2 port 8080: ipvsadm uses the service port 80"
        ),
        "{w:?}"
    );
    assert!(
        w[2].starts_with("lb.sh:4: warning: `ipvsadm --start-daemon"),
        "{w:?}"
    );
    assert!(
        w[3].starts_with("lb.sh:5: warning: `--set` timeouts"),
        "{w:?}"
    );
    assert_eq!(
        to_ipvsadm_save(&i.services),
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n"
    );
}

/// A minimal lab around imported services: the director and every real server node on one
/// LAN, each holding its addresses (no client, so no paths are checked).
fn lab_around(i: &Imported) -> String {
    let mut nodes: Vec<(String, Vec<String>)> = Vec::new();
    for s in &i.services {
        for r in &s.real_servers {
            let plen = if r.address.is_ipv4() { 32 } else { 128 };
            let a = format!("{}/{plen}", r.address);
            match nodes.iter_mut().find(|(n, _)| *n == r.node) {
                Some((_, v)) if !v.contains(&a) => v.push(a),
                Some(_) => {}
                None => nodes.push((r.node.clone(), vec![a])),
            }
        }
    }
    let mut t = String::from("description = \"imported\"\n\n[nodes.director]\nrole = \"director\"\ninterfaces.eth0 = { addresses = [\"198.18.0.1/32\"] }\n");
    let mut members = vec!["\"director:eth0\"".to_string()];
    for (n, addrs) in &nodes {
        let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        t.push_str(&format!(
            "\n[nodes.{n}]\nrole = \"realserver\"\ninterfaces.eth0 = {{ addresses = [{}] }}\n",
            list.join(", ")
        ));
        members.push(format!("\"{n}:eth0\""));
    }
    t.push_str(&format!(
        "\n[lans.lan0]\nmembers = [{}]\n\n",
        members.join(", ")
    ));
    t.push_str(&to_toml(i));
    t
}

#[test]
fn the_toml_services_read_back_through_topology_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cases = vec![import(
        "iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp --dport 443 -j MARK --set-mark 7\n\
         -A -f 7 -s dh\n-a -f 7 -r 10.0.1.1:443 -m -w 3 -x 40 -y 10\n",
    )];
    for f in [
        "mypjb-ipvsadm.rules",
        "skygx-initial.sh",
        "xwqiang-vip.sh",
        "leizhnxp-vsnat-ds.sh",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).expect("fixture");
        cases.push(import_ipvsadm(Path::new(f), &text).expect("imports"));
    }
    for i in cases {
        let text = lab_around(&i);
        let t = Topology::parse("imported.toml", text.clone())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(t.services, i.services, "{text}");
    }
}

#[test]
fn json_carries_services_and_warnings() {
    let i = import(
        "ifconfig eth0:0 10.0.0.1 up\n-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2\n",
    );
    let v: serde_json::Value = serde_json::from_str(&to_json(&i)).expect("json");
    assert_eq!(v["services"][0]["vip"], "10.0.0.1");
    assert_eq!(v["services"][0]["real_servers"][0]["node"], "rs1");
    assert_eq!(v["warnings"][0]["line"], 1);
}
