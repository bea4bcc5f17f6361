//! keepalived.conf syntax as keepalived 2.2.7 reads it: includes, glued and one-line
//! braces, comments, quotes, the whitespace people paste, defaults, and located refusals.
//! These inputs are written here for the purpose (the real-world files are in fixtures.rs).
use std::path::Path;

use lvslab_keepalived::{import_keepalived, import_keepalived_str, ImportError, Imported};
use lvslab_netns::{ForwardMethod, HealthCheck, Protocol, Scheduler};

fn ok(text: &str) -> Imported {
    import_keepalived_str(Path::new("/nonexistent/k.conf"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match import_keepalived_str(Path::new("/nonexistent/k.conf"), text) {
        Err(ImportError::Unsupported { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn warnings(i: &Imported) -> Vec<String> {
    i.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn glued_and_one_line_braces_read_as_multi_line() {
    let one = ok("virtual_server 10.0.0.1 80{ protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 80 { weight 2 }\n real_server 10.0.0.3 80 {weight 3}}\n");
    let multi = ok("virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 80 {\n  weight 2\n }\n real_server 10.0.0.3 80 {\n  weight 3\n }\n}\n");
    assert_eq!(one.services, multi.services);
    let s = &one.services[0];
    assert_eq!((s.method, s.scheduler), (ForwardMethod::Dr, Scheduler::Rr));
    let w: Vec<(String, u32)> = s
        .real_servers
        .iter()
        .map(|r| (r.node.clone(), r.weight))
        .collect();
    assert_eq!(w, [("rs1".to_string(), 2), ("rs2".to_string(), 3)]);
}

#[test]
fn keepalived_defaults_from_its_source() {
    // No protocol: UDP (check_data.c), no lb_algo: wlc, no lb_kind: NAT, each with the
    // warning keepalived prints; bare persistence_timeout: 360 s; no weight: 1.
    let i = ok("virtual_server 10.0.0.1 80 {\n persistence_timeout\n real_server 10.0.0.2 8080 {\n  TCP_CHECK {\n  }\n }\n}\n");
    let s = &i.services[0];
    assert_eq!(s.protocol, Protocol::Udp);
    assert_eq!(s.scheduler, Scheduler::Wlc);
    assert_eq!(s.method, ForwardMethod::Nat);
    assert_eq!(s.persistence, Some(360));
    assert_eq!(
        (s.real_servers[0].weight, s.real_servers[0].port),
        (1, 8080)
    );
    let h = s.health.as_ref().unwrap();
    // delay_loop 60 s, connect_timeout 5 s, retry 1, delay_before_retry 1 s.
    assert_eq!(
        (
            h.interval_ms,
            h.timeout_ms,
            h.retries,
            h.delay_before_retry_ms
        ),
        (60_000, 5_000, 1, 1_000)
    );
    let w = warnings(&i).join("\n");
    for m in ["defaults to UDP", "default wlc", "default NAT"] {
        assert!(w.contains("k.conf:1: warning: ") && w.contains(m), "{w}");
    }
    // HTTP_GET waits 3 s before a retry; MISC_CHECK retries 0 times and times out after
    // the virtual server's delay_loop.
    let i = ok("virtual_server 10.0.0.1 80 {\n protocol TCP\n delay_loop 7\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /h\n    status_code 204\n   }\n  }\n }\n}\nvirtual_server 10.0.0.1 81 {\n protocol TCP\n delay_loop 9\n real_server 10.0.0.2 81 {\n  MISC_CHECK {\n   misc_path \"/bin/sh -c 'exit 0'\"\n  }\n }\n}\n");
    let h = i.services[0].health.as_ref().unwrap();
    assert_eq!((h.interval_ms, h.delay_before_retry_ms), (7_000, 3_000));
    assert_eq!(
        h.check,
        HealthCheck::Http {
            path: "/h".into(),
            status: 204,
            digest: None
        }
    );
    let h = i.services[1].health.as_ref().unwrap();
    assert_eq!((h.retries, h.timeout_ms), (0, 9_000));
    assert_eq!(
        h.check,
        HealthCheck::Command {
            command: vec!["/bin/sh".into(), "-c".into(), "exit 0".into()]
        }
    );
}

#[test]
fn timings_are_seconds_in_keepalived_and_ms_in_lvslab() {
    let i = ok("virtual_server 10.0.0.1 80 {\n protocol TCP\n delay_loop 0.5\n real_server 10.0.0.2 80 {\n  UDP_CHECK {\n   connect_timeout 0.25\n   retry 4\n   delay_before_retry 2\n   payload 70696e67\n   require_reply 706f6e67\n  }\n }\n}\n");
    let h = i.services[0].health.as_ref().unwrap();
    assert_eq!(
        (
            h.interval_ms,
            h.timeout_ms,
            h.retries,
            h.delay_before_retry_ms
        ),
        (500, 250, 4, 2_000)
    );
    assert_eq!(
        h.check,
        HealthCheck::Udp {
            payload: "ping".into(),
            expect: Some("pong".into())
        }
    );
}

#[test]
fn groups_expand_ranges_as_keepalived_does() {
    let i = ok("virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.1.5 8080\n}\nvirtual_server group G {\n protocol TCP\n lb_kind DR\n real_server 10.0.2.1 80 {\n }\n}\n");
    let got: Vec<String> = i
        .services
        .iter()
        .map(|s| format!("{}:{}", s.vip, s.port))
        .collect();
    assert_eq!(
        got,
        ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.1.5:8080"]
    );
    // DR cannot change the port: each service's real server takes its virtual port.
    assert_eq!(i.services[3].real_servers[0].port, 8080);
}

#[test]
fn vrrp_pairs_come_from_the_instance_holding_the_vip() {
    let i = ok("global_defs {\n vrrp_version 3\n lvs_sync_daemon eth1 VI_9 id 7\n}\nvrrp_instance VI_9 {\n state BACKUP\n interface eth0\n virtual_router_id 9\n priority 90\n advert_int 0.5\n virtual_ipaddress {\n  10.0.0.1/24 dev eth0 label eth0:1\n }\n}\nvirtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n");
    let s = &i.services[0];
    assert_eq!(s.backup.as_deref(), Some("director2"));
    let v = s.vrrp.as_ref().unwrap();
    assert_eq!((v.vrid, v.version, v.advert_int_ms), (9, 3, 500));
    assert_eq!((v.priority, v.backup_priority, v.preempt), (140, 90, true));
    assert_eq!((v.sync, v.sync_id), (true, 7));
    // A MASTER without priority is the address owner (255), which lvslab caps at 254.
    let i = ok("vrrp_instance V {\n state MASTER\n virtual_router_id 3\n virtual_ipaddress {\n  10.0.0.1\n }\n}\nvirtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n");
    let v = i.services[0].vrrp.as_ref().unwrap();
    assert_eq!((v.priority, v.sync, v.sync_id), (254, false, 3));
    assert!(warnings(&i).join("\n").contains("priority 255"));
}

#[test]
fn non_breaking_spaces_do_what_keepalived_does() {
    // Leading NBSP: the keyword is "\u{a0}weight", unknown to keepalived, so the weight
    // stays at its default; lvslab warns on that line and names the character.
    let i = ok("virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n \u{a0}weight 5\n }\n}\n");
    assert_eq!(i.services[0].real_servers[0].weight, 1);
    let w = warnings(&i).join("\n");
    assert!(
        w.contains("k.conf:4: warning: unknown keyword") && w.contains("U+00A0"),
        "{w}"
    );
    // NBSP between value words: `lb_algo\u{a0}rr` is one unknown keyword; the scheduler
    // falls back to wlc.
    let i = ok("virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo\u{a0}rr\n real_server 10.0.0.2 80 {\n }\n}\n");
    assert_eq!(i.services[0].scheduler, Scheduler::Wlc);
    // NBSP glued to the port: keepalived skips the whole virtual server; lvslab refuses.
    let e = errors("virtual_server 10.0.0.1 80\u{a0}{\n protocol TCP\n}\n");
    assert!(
        e[0].starts_with("/nonexistent/k.conf:1: error: invalid virtual server address/port")
            && e[0].contains("U+00A0"),
        "{e:?}"
    );
    // Tabs, form feeds and CRLF line ends are whitespace to keepalived.
    let i = ok("virtual_server\t10.0.0.1\t80 {\r\n\tprotocol\tTCP\x0c\r\n\treal_server 10.0.0.2 80 {\r\n\t\tweight\t4\r\n\t}\r\n}\r\n");
    assert_eq!(i.services[0].real_servers[0].weight, 4);
}

#[test]
fn refusals_name_file_and_line() {
    let e = errors("virtual_server fwmark 5 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n");
    assert!(
        e[0].starts_with("/nonexistent/k.conf:1: error: virtual_server fwmark 5"),
        "{e:?}"
    );
    let e =
        errors("virtual_server 10.0.0.1 80 {\n protocol SCTP\n real_server 10.0.0.2 80 {\n }\n}\n");
    assert!(
        e[0].starts_with("/nonexistent/k.conf:2: error: protocol SCTP"),
        "{e:?}"
    );
    let e = errors("virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_kind NAT\n real_server 10.0.0.2 80 {\n  lvs_method DR\n }\n}\n");
    assert!(
        e[0].starts_with("/nonexistent/k.conf:4: error: real server 10.0.0.2 forwards by dr"),
        "{e:?}"
    );
    let e = errors("$IP=10.0.0.1\nvirtual_server $IP 80 {\n}\n");
    assert!(
        e[0].starts_with("/nonexistent/k.conf:1: error: `$IP=10.0.0.1`"),
        "{e:?}"
    );
    let e = errors("virtual_server 10.0.0.1 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n");
    assert!(
        e[0].contains("k.conf:1: error:") && e[0].contains("without a port"),
        "{e:?}"
    );
}

#[test]
fn includes_are_relative_to_the_including_file_and_located() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("conf.d/vs")).unwrap();
    std::fs::write(
        p.join("keepalived.conf"),
        "global_defs {\n router_id x\n}\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    // Sorted as glob(3) sorts: a.conf before b.conf. The nested include is relative to
    // conf.d/, the directory of the file that names it (keepalived chdir()s there).
    std::fs::write(
        p.join("conf.d/b.conf"),
        "virtual_server 10.0.0.2 80 {\n protocol TCP\n real_server 10.0.1.2 80 {\n }\n}\n",
    )
    .unwrap();
    std::fs::write(p.join("conf.d/a.conf"), "include vs/{one,two}.inc\n").unwrap();
    std::fs::write(
        p.join("conf.d/vs/one.inc"),
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 {\n }\n}\n",
    )
    .unwrap();
    std::fs::write(p.join("conf.d/vs/two.inc"), "virtual_server 10.0.0.3 80 {\n protocol TCP\n bogus_word 1\n real_server 10.0.1.3 80 {\n }\n}\n").unwrap();
    let i = import_keepalived(&p.join("keepalived.conf")).unwrap();
    let vips: Vec<String> = i.services.iter().map(|s| s.vip.to_string()).collect();
    assert_eq!(vips, ["10.0.0.1", "10.0.0.3", "10.0.0.2"]);
    let w = warnings(&i).join("\n");
    assert!(
        w.contains(&format!(
            "{}:3: warning: unknown keyword `bogus_word`",
            p.join("conf.d/vs/two.inc").display()
        )),
        "{w}"
    );
    // An include that matches nothing is a located warning (keepalived skips it).
    std::fs::write(p.join("k2.conf"), "include nothing/*.conf\n").unwrap();
    let i = import_keepalived(&p.join("k2.conf")).unwrap();
    assert!(
        warnings(&i)[0].contains("k2.conf:1: warning: include nothing/*.conf: no file matches"),
        "{:?}",
        i.warnings
    );
}

#[test]
fn a_fwmark_virtual_server_takes_its_family_as_keepalived_does() {
    let fwm = |body: &str| {
        errors(&format!(
            "virtual_server fwmark 1 {{\n lb_algo dh\n lb_kind DR\n protocol TCP\n{body}}}\n"
        ))
    };
    let v6 = "k.conf:1: error: virtual_server fwmark 1 is IPv6";
    // IPv6 real servers make it IPv6 (rs_end_handler), and so does `ip_family inet6`.
    for body in [
        " real_server 2001:db8:1::201 80 {\n }\n real_server 2001:db8:1::203 80 {\n }\n",
        " ip_family inet6\n real_server 2001:db8:1::201 80 {\n }\n",
        // Tunnelled servers count only when no other names the family (vs_end_handler).
        " real_server 2001:db8:1::201 80 {\n  lvs_method TUN\n }\n",
    ] {
        let e = fwm(body);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].ends_with_located(v6), "{body}: {e:?}");
        assert!(
            e[0].contains("-A -f 1 -6") && e[0].contains("ip6tables"),
            "{e:?}"
        );
    }
    // IPv4 real servers (or tunnelled servers of both families) keep the IPv4 refusal.
    for body in [
        " real_server 192.168.1.201 80 {\n }\n",
        " real_server 2001:db8:1::201 80 {\n  lvs_method TUN\n }\n real_server 192.168.1.201 80 {\n  lvs_method TUN\n }\n",
    ] {
        let e = fwm(body);
        assert!(e[0].contains("virtual_server fwmark 1: which packets carry mark 1"), "{e:?}");
    }
}

/// Error lines read `PATH:LINE: error: ...`; compare from the file name on.
trait Located {
    fn ends_with_located(&self, want: &str) -> bool;
}

impl Located for String {
    fn ends_with_located(&self, want: &str) -> bool {
        self.split_once("/nonexistent/")
            .is_some_and(|(_, rest)| rest.starts_with(want))
    }
}
