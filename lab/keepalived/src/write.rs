//! lvslab services out: a keepalived.conf keepalived reads, and the `[[services]]` part of
//! a topology file (TOML or JSON).
use std::fmt::Write as _;

use lvslab_netns::{ForwardMethod, HealthCheck, HealthSpec, Protocol, ServiceSpec, VrrpSpec};
use serde::Serialize;

/// The interface the written vrrp_instances name (a lab's directors have an eth0).
const IFACE: &str = "eth0";

/// keepalived.conf for `services`: `global_defs`, one `vrrp_instance VI_<vrid>` per
/// virtual router id of the services that have a pair (the MASTER's side: `director`'s
/// priority; with `preempt = false` both start as BACKUP with `nopreempt`, as keepalived
/// requires), and one `virtual_server` per service with its real servers and checker.
/// Everything is written explicitly (no keepalived default is relied on), so importing the
/// result gives the same services back.
pub fn to_keepalived(services: &[ServiceSpec]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "! Written by lvslab: {} virtual server(s).",
        services.len()
    );
    let _ = writeln!(c, "! Check it with: keepalived --config-test -f FILE");
    let _ = writeln!(c);
    let _ = writeln!(c, "global_defs {{");
    let _ = writeln!(c, "    router_id lvslab");
    // keepalived runs one sync daemon: the first pair that syncs gets it.
    let sync = services
        .iter()
        .filter_map(|s| s.vrrp.as_ref())
        .find(|v| v.sync);
    if let Some(v) = sync {
        let _ = writeln!(
            c,
            "    lvs_sync_daemon {IFACE} inst VI_{} id {}",
            v.vrid, v.sync_id
        );
    }
    let _ = writeln!(c, "}}");
    let mut done: Vec<u8> = Vec::new();
    for s in services {
        let Some(v) = &s.vrrp else { continue };
        if done.contains(&v.vrid) {
            continue;
        }
        done.push(v.vrid);
        let vips: Vec<String> = services
            .iter()
            .filter(|o| o.vrrp.as_ref().is_some_and(|ov| ov.vrid == v.vrid))
            .flat_map(|o| o.all_vips())
            .fold(Vec::new(), |mut acc, ip| {
                let s = ip.to_string();
                if !acc.contains(&s) {
                    acc.push(s);
                }
                acc
            });
        instance(&mut c, v, &vips);
    }
    for s in services {
        virtual_server(&mut c, s);
    }
    c
}

fn instance(c: &mut String, v: &VrrpSpec, vips: &[String]) {
    let _ = writeln!(c);
    let _ = writeln!(c, "vrrp_instance VI_{} {{", v.vrid);
    // keepalived clears nopreempt on an initial MASTER, so a non-preempting pair starts
    // as BACKUP and the priorities elect the master.
    let state = if v.preempt { "MASTER" } else { "BACKUP" };
    let _ = writeln!(c, "    state {state}");
    let _ = writeln!(c, "    interface {IFACE}");
    let _ = writeln!(c, "    virtual_router_id {}", v.vrid);
    let _ = writeln!(c, "    version {}", v.version);
    let _ = writeln!(c, "    priority {}", v.priority);
    let _ = writeln!(c, "    advert_int {}", seconds(v.advert_int_ms));
    if !v.preempt {
        let _ = writeln!(c, "    nopreempt");
    }
    let _ = writeln!(c, "    virtual_ipaddress {{");
    for a in vips {
        let _ = writeln!(c, "        {a}");
    }
    let _ = writeln!(c, "    }}");
    let _ = writeln!(c, "}}");
}

fn virtual_server(c: &mut String, s: &ServiceSpec) {
    let _ = writeln!(c);
    match s.fwmark {
        Some(m) => {
            // The mark is set outside keepalived; say by what, for the reader.
            for vip in s.all_vips() {
                let _ =
                    writeln!(
                    c,
                    "! {} -t mangle -A PREROUTING -d {vip} -p {} --dport {} -j MARK --set-mark {m}",
                    if vip.is_ipv6() { "ip6tables" } else { "iptables" },
                    proto_word(s.protocol).to_ascii_lowercase(),
                    s.port
                );
            }
            let _ = writeln!(c, "virtual_server fwmark {m} {{");
        }
        None => {
            let _ = writeln!(c, "virtual_server {} {} {{", s.vip, s.port);
        }
    }
    let _ = writeln!(c, "    lb_algo {}", s.scheduler);
    let _ = writeln!(c, "    lb_kind {}", method_word(s.method));
    if s.fwmark.is_none() {
        let _ = writeln!(c, "    protocol {}", proto_word(s.protocol));
    }
    if let Some(p) = s.persistence {
        let _ = writeln!(c, "    persistence_timeout {p}");
    }
    if let Some(h) = &s.health {
        let _ = writeln!(c, "    delay_loop {}", seconds(h.interval_ms));
        if let Some(sorry) = h.sorry_server {
            let _ = writeln!(c, "    sorry_server {} {}", sorry.ip(), sorry.port());
        }
    }
    for r in &s.real_servers {
        let _ = writeln!(c, "    real_server {} {} {{", r.address, r.port);
        let _ = writeln!(c, "        weight {}", r.weight);
        if r.u_threshold != 0 {
            let _ = writeln!(c, "        uthreshold {}", r.u_threshold);
        }
        if r.l_threshold != 0 {
            let _ = writeln!(c, "        lthreshold {}", r.l_threshold);
        }
        if let Some(h) = &s.health {
            if h.inhibit_on_failure {
                let _ = writeln!(c, "        inhibit_on_failure");
            }
            checker(c, h);
        }
        let _ = writeln!(c, "    }}");
    }
    let _ = writeln!(c, "}}");
}

fn checker(c: &mut String, h: &HealthSpec) {
    let (name, connects) = match &h.check {
        HealthCheck::Tcp => ("TCP_CHECK", true),
        HealthCheck::Http { .. } => ("HTTP_GET", true),
        HealthCheck::Udp { .. } => ("UDP_CHECK", true),
        HealthCheck::Command { .. } => ("MISC_CHECK", false),
    };
    let _ = writeln!(c, "        {name} {{");
    match &h.check {
        HealthCheck::Tcp => {}
        HealthCheck::Http {
            path,
            status,
            digest,
        } => {
            let _ = writeln!(c, "            url {{");
            let _ = writeln!(c, "                path {path}");
            let _ = writeln!(c, "                status_code {status}");
            if let Some(d) = digest {
                let _ = writeln!(c, "                digest {d}");
            }
            let _ = writeln!(c, "            }}");
        }
        HealthCheck::Udp { payload, expect } => {
            if !payload.is_empty() {
                let _ = writeln!(c, "            payload {}", hex(payload));
            }
            match expect {
                Some(e) if !e.is_empty() => {
                    let _ = writeln!(c, "            require_reply {}", hex(e));
                }
                _ => {}
            }
        }
        HealthCheck::Command { command } => {
            let words: Vec<String> = command.iter().map(|w| quote_word(w)).collect();
            let _ = writeln!(c, "            misc_path \"{}\"", words.join(" "));
            // misc_timeout is whole seconds.
            let _ = writeln!(
                c,
                "            misc_timeout {}",
                h.timeout_ms.div_ceil(1000).max(1)
            );
        }
    }
    if connects {
        let _ = writeln!(c, "            connect_timeout {}", seconds(h.timeout_ms));
    }
    let _ = writeln!(c, "            delay_loop {}", seconds(h.interval_ms));
    let _ = writeln!(c, "            retry {}", h.retries);
    let _ = writeln!(
        c,
        "            delay_before_retry {}",
        seconds(h.delay_before_retry_ms)
    );
    let _ = writeln!(c, "        }}");
}

/// A misc_path word: single-quoted when it holds whitespace or quotes, backslash-escaped
/// inside, as alloc_strvec_quoted_escaped reads it back; `"` and `\` are escaped for the
/// surrounding double quotes.
fn quote_word(w: &str) -> String {
    let needs = w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c));
    let mut out = String::new();
    if needs {
        out.push('\'');
    }
    for ch in w.chars() {
        match ch {
            '\'' | '\\' | '"' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    if needs {
        out.push('\'');
    }
    out
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds as keepalived's decimal seconds (read_timer takes up to six decimals).
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        s.trim_end_matches('0').to_string()
    }
}

fn method_word(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Nat => "NAT",
        ForwardMethod::Dr => "DR",
        ForwardMethod::Tun => "TUN",
    }
}

fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

// The `[[services]]` table as lab/netns/src/topology/write.rs writes it, so
// `Topology::parse` reads it back (the netns writer's struct is private to it).
#[derive(Serialize)]
struct Services<'a> {
    services: Vec<Service<'a>>,
}

#[derive(Serialize)]
struct Service<'a> {
    director: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<&'a str>,
    vip: String,
    port: u16,
    protocol: Protocol,
    scheduler: lvslab_netns::Scheduler,
    method: ForwardMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a HealthSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vrrp: Option<&'a VrrpSpec>,
    real_servers: Vec<RealServer<'a>>,
}

#[derive(Serialize)]
struct RealServer<'a> {
    node: &'a str,
    address: String,
    port: u16,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
}

fn table(services: &[ServiceSpec]) -> Services<'_> {
    Services {
        services: services
            .iter()
            .map(|s| Service {
                director: &s.director,
                backup: s.backup.as_deref(),
                vip: s.vip.to_string(),
                port: s.port,
                protocol: s.protocol,
                scheduler: s.scheduler,
                method: s.method,
                persistence: s.persistence,
                fwmark: s.fwmark,
                vips: s.vips.iter().map(ToString::to_string).collect(),
                health: s.health.as_ref(),
                vrrp: s.vrrp.as_ref(),
                real_servers: s
                    .real_servers
                    .iter()
                    .map(|r| RealServer {
                        node: &r.node,
                        address: r.address.to_string(),
                        port: r.port,
                        weight: r.weight,
                        u_threshold: r.u_threshold,
                        l_threshold: r.l_threshold,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The `[[services]]` part of a topology file, as `Topology::to_toml` writes it.
pub fn to_toml(services: &[ServiceSpec]) -> Result<String, toml::ser::Error> {
    toml::to_string(&table(services))
}

/// The same as JSON: `{"services": [...]}` with the topology file's field names.
pub fn to_json(services: &[ServiceSpec]) -> String {
    // Serialising plain strings, numbers and derived structs cannot fail.
    serde_json::to_string_pretty(&table(services)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_words() {
        assert_eq!(seconds(1000), "1");
        assert_eq!(seconds(1500), "1.5");
        assert_eq!(seconds(10), "0.01");
        assert_eq!(quote_word("exit 0"), "'exit 0'");
        assert_eq!(quote_word("/bin/true"), "/bin/true");
        assert_eq!(hex("ping"), "70696e67");
    }
}
