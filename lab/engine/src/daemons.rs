//! Which daemons a lab runs, and starting them as processes of the lvslab executable.
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use lvslab_netns::{Backend, ForwardMethod, Lab, Role, Topology};

use crate::Result;

/// How the engine starts a lab's daemons.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The lvslab executable the daemons are run from (`serve`, `director`, `tunnel`). The
    /// CLI passes its own executable; a cargo test passes `CARGO_BIN_EXE_lvslab`, because
    /// there the current executable is the test harness.
    pub exe: PathBuf,
    /// Environment variables set (`Some`) or removed (`None`) for every daemon.
    pub env: Vec<(OsString, Option<OsString>)>,
}

impl DaemonConfig {
    /// Daemons run from `exe` with the caller's environment.
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self {
            exe: exe.into(),
            env: Vec::new(),
        }
    }

    /// Set (`Some`) or remove (`None`) `key` in every daemon's environment.
    pub fn env(mut self, key: impl Into<OsString>, value: Option<impl Into<OsString>>) -> Self {
        self.env.push((key.into(), value.map(Into::into)));
        self
    }

    fn command(&self, spec: &DaemonSpec) -> Command {
        let mut cmd = match &spec.program {
            Some(p) => Command::new(p),
            None => Command::new(&self.exe),
        };
        let args = &spec.args;
        cmd.args(args);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }
}

/// One daemon of a lab: where it runs, its name in the lab state, and its lvslab arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// The node whose namespace it runs in.
    pub node: String,
    /// Its name in the lab state and its log file (`serve-rs1`, `director-director`).
    pub name: String,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// The program, when not the lvslab executable (keepalived).
    pub program: Option<String>,
}

/// Director nodes of `topo` that have services, in file order.
pub fn directors_with_services(topo: &Topology) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &topo.services {
        if !out.contains(&s.director) {
            out.push(s.director.clone());
        }
    }
    out
}

/// The daemons lab `lab` of `topo` runs, in start order: `serve` on every real server
/// (unless `serve = false`), the userspace director on every director node with services
/// (none with kernel IPVS: the kernel is the director), and the IPIP decapsulator on every
/// real server of a TUN service (this host's kernel has no ipip module; where a real
/// server's kernel has it, `up` brings its tunl0 up instead of starting this one).
pub fn daemon_plan(lab: &str, topo: &Topology, backend: Backend) -> Vec<DaemonSpec> {
    let mut plan = Vec::new();
    for n in topo
        .nodes
        .iter()
        .filter(|n| n.role == Role::Realserver && n.serve)
    {
        plan.push(DaemonSpec {
            node: n.name.clone(),
            name: format!("serve-{}", n.name),
            args: strings(&["serve", "--lab", lab, "--node", &n.name]),
            program: None,
        });
    }
    let userspace = backend == Backend::Userspace;
    let keepalived = crate::pair::keepalived_nodes(topo);
    let mut directors = directors_with_services(topo);
    for b in crate::pair::lvslab_backups(topo) {
        if !directors.contains(&b) {
            directors.push(b);
        }
    }
    for node in directors
        .into_iter()
        .filter(|n| userspace && !keepalived.contains(n))
    {
        plan.push(director_spec(lab, &node));
    }
    let mut tun_vips: Vec<(String, Vec<String>)> = Vec::new();
    // `lvslab tunnel` decapsulates IPIP for IPv4 VIPs and IPv6-in-IPv6 (next header 41)
    // for IPv6 VIPs, so every TUN service's VIP goes to it.
    for s in topo
        .services
        .iter()
        .filter(|s| s.method == ForwardMethod::Tun)
    {
        let vip = s.vip.to_string();
        for r in &s.real_servers {
            match tun_vips.iter_mut().find(|(n, _)| *n == r.node) {
                Some((_, v)) if !v.contains(&vip) => v.push(vip.clone()),
                Some(_) => {}
                None => tun_vips.push((r.node.clone(), vec![vip.clone()])),
            }
        }
    }
    for (node, vips) in tun_vips {
        let mut args = vec!["tunnel".to_owned()];
        for v in vips {
            args.push("--vip".to_owned());
            args.push(v);
        }
        plan.push(DaemonSpec {
            name: format!("tunnel-{node}"),
            node,
            args,
            program: None,
        });
    }
    // keepalived speaks VRRP for its node of a pair (it reads the conf `start` writes).
    for node in keepalived {
        plan.push(DaemonSpec {
            name: format!("keepalived-{node}"),
            args: crate::pair::keepalived_args(&lvslab_netns::state::run_dir(lab), &node),
            program: Some(crate::pair::KEEPALIVED.to_owned()),
            node,
        });
    }
    // Last: the checkers change the table through the director, which must be up first.
    for node in directors_with_services(topo) {
        if topo
            .services
            .iter()
            .any(|s| s.director == node && s.health.is_some())
        {
            plan.push(DaemonSpec {
                name: format!("health-{node}"),
                args: strings(&["health", "--lab", lab, "--node", &node]),
                node,
                program: None,
            });
        }
    }
    plan
}

fn director_spec(lab: &str, node: &str) -> DaemonSpec {
    DaemonSpec {
        name: format!("director-{node}"),
        args: strings(&["director", "--lab", lab, "--node", node]),
        node: node.to_owned(),
        program: None,
    }
}

/// Starts daemon `kind` (`serve`, `director`) on `node` again, as `up` started it.
fn restart(lab: &mut Lab, node: &str, kind: &str, cfg: &DaemonConfig) -> Result<u32> {
    let d = daemon_plan(lab.name(), &lab.state.topology, lab.state.backend)
        .into_iter()
        .find(|d| {
            d.node == node && d.program.is_none() && d.args.first().is_some_and(|a| a == kind)
        })
        .ok_or_else(|| {
            lvslab_netns::Error::Msg(format!("{node} runs no {kind} daemon in this lab"))
        })?;
    Ok(lab.spawn_daemon(&d.node, &d.name, cfg.command(&d), true)?)
}

/// Starts `serve` on real server `node` again, as `up` started it (after it was stopped).
pub fn restart_serve(lab: &mut Lab, node: &str, cfg: &DaemonConfig) -> Result<u32> {
    restart(lab, node, "serve", cfg)
}

/// Starts the userspace director on `node` again (after it was killed): it rejoins its
/// pair as BACKUP and takes the VIPs back if it has the higher priority and preempts.
pub fn restart_director(lab: &mut Lab, node: &str, cfg: &DaemonConfig) -> Result<u32> {
    restart(lab, node, "director", cfg)
}

/// Starts keepalived on `node` again (after a `kill_director`), as `up` started it: the
/// same configuration and command line. It comes up as BACKUP (every instance's initial
/// state) and preempts if its priority is the higher one. The previous keepalived of the
/// node must have exited: two would fight over the VIPs.
pub fn restart_keepalived(lab: &mut Lab, node: &str, cfg: &DaemonConfig) -> Result<u32> {
    let name = format!("keepalived-{node}");
    let d = daemon_plan(lab.name(), &lab.state.topology, lab.state.backend)
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            lvslab_netns::Error::Msg(format!(
                "{node} runs no keepalived in this lab (no vrrp.keepalived of its services names it)"
            ))
        })?;
    if let Some(old) = lab
        .state
        .daemons
        .iter()
        .find(|d| d.name == name && d.alive())
    {
        return Err(lvslab_netns::Error::Msg(format!(
            "keepalived on {node} (pid {}) is still running; stop it first",
            old.pid
        ))
        .into());
    }
    // A SIGKILLed keepalived leaves its pid files behind; keepalived refuses to start when
    // the pid in one belongs to a live process, which a recycled pid could be.
    for f in [
        format!("keepalived-{node}.pid"),
        format!("keepalived-{node}-vrrp.pid"),
    ] {
        let _ = std::fs::remove_file(lab.run_dir().join(f));
    }
    spawn_keepalived(lab, &d, cfg)
}

/// Writes keepalived's configuration for `d`'s node and starts it. keepalived cannot say
/// "ready"; whoever needs its state waits for the pair's election instead.
fn spawn_keepalived(lab: &mut Lab, d: &DaemonSpec, cfg: &DaemonConfig) -> Result<u32> {
    let conf = lab.run_dir().join(format!("keepalived-{}.conf", d.node));
    let text = crate::pair::keepalived_conf(&lab.state.topology, &d.node);
    std::fs::write(&conf, text)
        .map_err(|e| lvslab_netns::Error::Msg(format!("write {}: {e}", conf.display())))?;
    Ok(lab
        .spawn_daemon(&d.node, &d.name, cfg.command(d), false)
        .map_err(|e| keepalived_missing(e, &d.node))?)
}

/// A missing keepalived is a setup problem with a known fix.
fn keepalived_missing(e: lvslab_netns::Error, node: &str) -> lvslab_netns::Error {
    let text = e.to_string();
    if text.contains("No such file") || text.contains("not found") {
        lvslab_netns::Error::Msg(format!(
            "{node} runs keepalived (vrrp.keepalived in the topology) but there is no keepalived executable: install Debian's package (apt-get install keepalived; scripts/deps does) or remove {node} from keepalived = [...]"
        ))
    } else {
        e
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// Start every daemon of [`daemon_plan`], each waited for until it reports ready.
pub(crate) fn start(lab: &mut Lab, cfg: &DaemonConfig) -> Result<()> {
    for d in daemon_plan(lab.name(), &lab.state.topology, lab.state.backend) {
        // Where the real server's kernel has ipip and ip6_tunnel (the VM's does), it
        // decapsulates itself.
        if d.args.first().is_some_and(|a| a == "tunnel") {
            let vips: Vec<std::net::IpAddr> =
                d.args.iter().filter_map(|a| a.parse().ok()).collect();
            let v4 = vips.iter().any(std::net::IpAddr::is_ipv4);
            let v6 = vips.iter().any(std::net::IpAddr::is_ipv6);
            if lvslab_netns::enable_kernel_tunnels(&lab.netns_of(&d.node)?, v4, v6)? {
                tracing::info!(node = %d.node, "TUN: the kernel's tunnel drivers decapsulate");
                continue;
            }
        }
        if d.program.is_some() {
            // keepalived: the pair's election is what `up` waits for afterwards.
            spawn_keepalived(lab, &d, cfg)?;
            continue;
        }
        lab.spawn_daemon(&d.node, &d.name, cfg.command(&d), true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(name: &str) -> Topology {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies")
            .join(format!("{name}.toml"));
        Topology::load(&p).expect("shipped topology")
    }

    fn names(plan: &[DaemonSpec]) -> Vec<&str> {
        plan.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn nat_runs_serve_on_each_real_server_then_the_director() {
        let plan = daemon_plan("x", &topo("nat-topology"), Backend::Userspace);
        assert_eq!(
            names(&plan),
            ["serve-rs1", "serve-rs2", "director-director"]
        );
        assert_eq!(
            plan[2].args,
            ["director", "--lab", "x", "--node", "director"]
        );
        assert_eq!(plan[0].args, ["serve", "--lab", "x", "--node", "rs1"]);
    }

    #[test]
    fn the_kernel_backend_runs_no_userspace_director() {
        let plan = daemon_plan("x", &topo("nat-topology"), Backend::Ipvs);
        assert_eq!(names(&plan), ["serve-rs1", "serve-rs2"]);
        let plan = daemon_plan("x", &topo("tun-topology"), Backend::Ipvs);
        assert!(plan.iter().all(|d| !d.name.starts_with("director-")));
        assert!(plan.iter().any(|d| d.name.starts_with("tunnel-")));
    }

    #[test]
    fn the_director_is_the_named_one_or_the_only_one() {
        let t = topo("nat-topology");
        assert_eq!(crate::pick_director(&t, None).unwrap(), "director");
        let e = crate::pick_director(&t, Some("router"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("router") && e.contains("directors: director"),
            "{e}"
        );
    }

    #[test]
    fn a_director_with_checked_services_gets_a_health_daemon_last() {
        let mut t = topo("nat-topology");
        assert!(daemon_plan("x", &t, Backend::Userspace)
            .iter()
            .all(|d| !d.name.starts_with("health-")));
        let h = "[[services]]\ndirector = \"director\"\nvip = \"192.168.1.250\"\nport = 80\nscheduler = \"rr\"\nmethod = \"nat\"\nhealth = { check = \"tcp\" }\nreal_servers = [{ node = \"rs1\" }]\n";
        let text = std::fs::read_to_string(&t.path).expect("file");
        let cut = text.find("[[services]]").expect("a service");
        t = Topology::parse("t.toml", format!("{}{h}", &text[..cut])).expect("valid");
        for backend in [Backend::Userspace, Backend::Ipvs] {
            let plan = daemon_plan("x", &t, backend);
            let last = plan.last().expect("daemons");
            assert_eq!(last.name, "health-director");
            assert_eq!(last.args, ["health", "--lab", "x", "--node", "director"]);
        }
        assert_eq!(
            names(&daemon_plan("x", &t, Backend::Userspace)),
            [
                "serve-rs1",
                "serve-rs2",
                "director-director",
                "health-director"
            ]
        );
    }

    #[test]
    fn tun_adds_a_decapsulator_per_real_server_with_its_vips() {
        let t = topo("tun-topology");
        let plan = daemon_plan("x", &t, Backend::Userspace);
        let tunnels: Vec<&DaemonSpec> = plan
            .iter()
            .filter(|d| d.name.starts_with("tunnel-"))
            .collect();
        assert!(!tunnels.is_empty(), "{plan:?}");
        let vip = t.services[0].vip.to_string();
        for d in tunnels {
            assert_eq!(d.args, ["tunnel", "--vip", vip.as_str()], "{d:?}");
        }
    }

    #[test]
    fn a_dual_stack_tun_lab_decapsulates_both_families() {
        let t = topo("tun6-topology");
        let plan = daemon_plan("x", &t, Backend::Userspace);
        let d = plan
            .iter()
            .find(|d| d.name == "tunnel-rs1")
            .expect("a decapsulator on rs1");
        assert_eq!(
            d.args,
            [
                "tunnel",
                "--vip",
                "192.168.1.250",
                "--vip",
                "2001:db8:1::250"
            ],
            "{d:?}"
        );
    }

    #[test]
    fn a_keepalived_node_runs_keepalived_instead_of_the_director() {
        let t = topo("ha-topology");
        let text = std::fs::read_to_string(&t.path).expect("file");
        let text = text.replacen(
            "method = \"dr\"",
            "method = \"dr\"\nvrrp = { keepalived = [\"director2\"] }",
            1,
        );
        let t = Topology::parse("t.toml", text).expect("valid");
        let plan = daemon_plan("x", &t, Backend::Userspace);
        assert!(names(&plan).contains(&"director-director"), "{plan:?}");
        assert!(!names(&plan).contains(&"director-director2"), "{plan:?}");
        let k = plan
            .iter()
            .find(|d| d.name == "keepalived-director2")
            .expect("keepalived in the plan");
        assert_eq!(k.program.as_deref(), Some(crate::pair::KEEPALIVED));
        assert_eq!(k.node, "director2");
        assert!(k.args.iter().any(|a| a == "--vrrp"), "{:?}", k.args);
    }

    #[test]
    fn daemon_environment_is_set_or_removed() {
        let cfg = DaemonConfig::new("/bin/true")
            .env("A", Some("1"))
            .env("B", None::<&str>);
        let cmd = cfg.command(&DaemonSpec {
            node: "rs1".into(),
            name: "serve-rs1".into(),
            args: strings(&["serve"]),
            program: None,
        });
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(
            envs,
            [
                (std::ffi::OsStr::new("A"), Some(std::ffi::OsStr::new("1"))),
                (std::ffi::OsStr::new("B"), None)
            ]
        );
    }
}
